-- One row per order with the sums over its lines (docs/data.md: "Orders and amounts").
select
    order_id,
    count(order_item_id) as total_items,
    sum(quantity) as total_quantity,
    sum(line_gross_amount) as gross_amount,
    sum(discount_amount) as total_discount,
    sum(line_net_amount) as net_amount
from {{ ref('stg_order_items') }}
group by order_id
