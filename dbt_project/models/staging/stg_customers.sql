{{ config(tags=['staging', 'customers']) }}

with source_data as (
    select * from {{ source('raw', 'customers') }}
),

cleaned as (
    select
        customer_id,
        lower(trim(email)) as email,
        lower(trim(first_name)) as first_name,
        lower(trim(last_name)) as last_name,
        trim(phone_number) as phone_number,
        upper(trim(country)) as country,
        cast(created_at as timestamp) as created_at,
        cast(updated_at as timestamp) as updated_at,
        cast(is_active as boolean) as is_active
    from source_data
    where customer_id is not null
)

select
    *,
    -- Validity is judged on the cleaned values: '  ' is as empty as ''.
    coalesce(email <> '' and email like '%@%', false) as has_valid_email,
    coalesce(first_name <> '' and last_name <> '', false) as has_valid_name
from cleaned
