-- Customer-level figures over completed orders only (docs/data.md: revenue and every customer-level
-- figure count completed orders only). Built from staging, not from fct_orders, so that
-- dim_customers does not depend on the fact table that joins to it.
with completed as (
    select
        o.customer_id,
        o.order_date,
        t.net_amount
    from {{ ref('stg_orders') }} as o
    inner join {{ ref('int_order_totals') }} as t on o.order_id = t.order_id
    where o.order_status = 'completed'
)

select
    customer_id,
    count(*) as total_orders,
    sum(net_amount) as lifetime_value,
    min(order_date) as first_order_date,
    max(order_date) as last_order_date
from completed
group by customer_id
