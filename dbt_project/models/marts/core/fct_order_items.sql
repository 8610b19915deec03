{{ config(tags=['core', 'orders']) }}

select
    {{ surrogate_key(['i.order_item_id']) }} as order_item_key,
    i.order_item_id,
    i.order_id,
    o.customer_id,
    i.product_id,
    o.order_date,
    o.order_status,
    o.is_completed,
    i.quantity,
    i.unit_price,
    i.discount_amount,
    i.line_gross_amount,
    i.line_net_amount,
    p.unit_cost,
    i.quantity * p.unit_cost as line_cost,
    i.line_net_amount - i.quantity * p.unit_cost as line_margin,
    {{ audit_columns() }}
from {{ ref('stg_order_items') }} as i
-- Only lines of orders that are facts (valid customers).
inner join {{ ref('fct_orders') }} as o on i.order_id = o.order_id
inner join {{ ref('dim_products') }} as p on i.product_id = p.product_id
