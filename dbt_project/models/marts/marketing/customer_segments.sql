{{ config(tags=['marketing']) }}

-- Customer counts by country and status, with segments pivoted into columns, for the marketing
-- team's targeting sheet.
{%- set segments = ['High Value', 'Medium Value', 'Low Value', 'New Customer'] %}

select
    country,
    customer_status,
    count(*) as customers,
    {{ pivot('customer_segment', segments, suffix='_customers') }},
    sum(lifetime_value) as lifetime_value,
    {{ audit_columns() }}
from {{ ref('dim_customers') }}
group by country, customer_status
