{{ config(tags=['analytics', 'clv']) }}

-- One row per valid customer with at least one completed order; the brief's CLV formula, on
-- completed orders only, with its integer-division and lateral-alias slips fixed.
with customer_metrics as (
    select
        customer_id,
        min(order_date) as first_order_date,
        max(order_date) as last_order_date,
        count(*) as total_orders,
        sum(net_amount) as total_revenue,
        avg(net_amount) as avg_order_value,
        cast({{ dbt.datediff('min(order_date)', 'max(order_date)', 'day') }} as integer)
            as active_days
    from {{ ref('fct_orders') }}
    where is_completed
    group by customer_id
),

clv_inputs as (
    select
        *,
        cast(active_days as {{ type_double() }}) / nullif(total_orders - 1, 0)
            as avg_days_between_orders
    from customer_metrics
),

clv_calculation as (
    select
        customer_id,
        first_order_date,
        last_order_date,
        total_orders,
        total_revenue,
        avg_order_value,
        avg_days_between_orders,
        -- Orders per year; a one-order customer (or all orders on one day) counts its orders.
        case
            when avg_days_between_orders > 0 then 365 / avg_days_between_orders
            else total_orders
        end as purchase_frequency,
        -- Lifespan in years, at least one day.
        -- In doubles: a decimal division rounds to 6 digits of scale on some engines (Spark).
        case
            when active_days > 0 then cast(active_days as {{ type_double() }}) / 365
            else cast(1 as {{ type_double() }}) / 365
        end as customer_lifespan,
        total_revenue as historical_clv
    from clv_inputs
),

predicted as (
    select
        *,
        avg_order_value * purchase_frequency * customer_lifespan as predicted_clv
    from clv_calculation
)

select
    *,
    case
        when predicted_clv >= 1000 then 'High Value'
        when predicted_clv >= 500 then 'Medium Value'
        when predicted_clv >= 100 then 'Low Value'
        else 'Minimal Value'
    end as clv_segment,
    {{ audit_columns() }}
from predicted
