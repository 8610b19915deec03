{{ config(tags=['staging', 'products']) }}

select
    product_id,
    trim(product_name) as product_name,
    trim(category) as category,
    unit_cost,
    list_price,
    cast(is_active as boolean) as is_active
from {{ source('raw', 'products') }}
where product_id is not null
