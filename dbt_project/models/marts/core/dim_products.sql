{{ config(tags=['core', 'products']) }}

select
    {{ surrogate_key(['product_id']) }} as product_key,
    product_id,
    product_name,
    category,
    unit_cost,
    list_price,
    list_price - unit_cost as unit_margin,
    is_active,
    {{ audit_columns() }}
from {{ ref('stg_products') }}
