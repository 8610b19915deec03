{{ config(tags=['staging', 'orders']) }}

select
    order_item_id,
    order_id,
    product_id,
    quantity,
    unit_price,
    discount_amount,
    unit_price * quantity as line_gross_amount,
    unit_price * quantity - discount_amount as line_net_amount
from {{ source('raw', 'order_items') }}
where order_item_id is not null
