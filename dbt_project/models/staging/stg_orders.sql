{{ config(tags=['staging', 'orders']) }}

select
    order_id,
    customer_id,
    cast(order_date as date) as order_date,
    lower(trim(order_status)) as order_status,
    cast(updated_at as timestamp) as updated_at
from {{ source('raw', 'orders') }}
where order_id is not null
