{{ config(tags=['analytics', 'cohorts']) }}

-- One row per (cohort month, period number), dense: every period from 0 up to the month of
-- as_of_date exists, with 0 retained customers where nobody came back. The brief's version only
-- had periods with activity, which makes retention curves skip months.
with completed_orders as (
    select
        customer_id,
        order_date,
        net_amount
    from {{ ref('fct_orders') }}
    where is_completed
),

cohorts as (
    select
        customer_id,
        cohort_month
    from {{ ref('dim_customers') }}
    where cohort_month is not null
),

activity as (
    select
        c.cohort_month,
        -- cast: months between two dates are a whole number (a float on some warehouses)
        cast(
            {{ dbt.datediff('c.cohort_month', dbt.date_trunc('month', 'o.order_date'), 'month') }}
            as integer
        ) as period_number,
        count(distinct o.customer_id) as customers,
        sum(o.net_amount) as revenue
    from completed_orders as o
    inner join cohorts as c on o.customer_id = c.customer_id
    group by 1, 2
),

cohort_sizes as (
    select
        cohort_month,
        count(*) as cohort_size
    from cohorts
    group by 1
),

months as (
    select distinct cast({{ dbt.date_trunc('month', 'date_day') }} as date) as period_month
    from {{ ref('metricflow_time_spine') }}
    where date_day <= {{ as_of_date() }}
),

grid as (
    select
        s.cohort_month,
        s.cohort_size,
        m.period_month,
        cast({{ dbt.datediff('s.cohort_month', 'm.period_month', 'month') }} as integer)
            as period_number
    from cohort_sizes as s
    inner join months as m on s.cohort_month <= m.period_month
)

select
    {{ surrogate_key(['g.cohort_month', 'g.period_number']) }} as cohort_period_key,
    g.cohort_month,
    g.period_number,
    g.period_month,
    g.cohort_size,
    coalesce(a.customers, 0) as customers,
    coalesce(a.customers, 0) * 1.0 / g.cohort_size as retention_rate,
    coalesce(a.revenue, 0) as revenue,
    coalesce(a.revenue, 0) / nullif(a.customers, 0) as revenue_per_customer,
    {{ audit_columns() }}
from grid as g
left join activity as a
    on g.cohort_month = a.cohort_month and g.period_number = a.period_number
