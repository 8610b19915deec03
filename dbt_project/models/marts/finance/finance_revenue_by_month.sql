{{ config(tags=['finance']) }}

-- Monthly revenue summary for finance, with order counts pivoted by status. The status columns
-- follow the data: every status with at least 1% of orders gets a column.
{%- set statuses = get_column_values_with_threshold(
    ref('stg_orders'), 'order_status', threshold=0.01,
    default=['completed', 'cancelled', 'returned', 'shipped', 'placed']
) %}

select
    cast({{ dbt.date_trunc('month', 'order_date') }} as date) as revenue_month,
    count(*) as orders,
    {{ pivot('order_status', statuses, prefix='orders_') }},
    sum(case when is_completed then gross_amount else 0 end) as gross_revenue,
    sum(case when is_completed then total_discount else 0 end) as discounts,
    sum(case when is_completed then net_amount else 0 end) as revenue,
    {{ audit_columns() }}
from {{ ref('fct_orders') }}
group by 1
