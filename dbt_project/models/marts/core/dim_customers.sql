{{
    config(
        tags=['core', 'customers']
    )
}}

with customers as (
    select * from {{ ref('stg_customers') }}
),

completed as (
    select * from {{ ref('int_customer_completed_orders') }}
),

final as (
    select
        {{ surrogate_key(['c.customer_id']) }} as customer_key,
        c.customer_id,
        c.email,
        c.first_name,
        c.last_name,
        c.phone_number,
        c.country,
        c.created_at,
        c.is_active,
        coalesce(cm.total_orders, 0) as total_orders,
        coalesce(cm.lifetime_value, 0) as lifetime_value,
        cm.first_order_date,
        cm.last_order_date,
        cast({{ dbt.date_trunc('month', 'cm.first_order_date') }} as date) as cohort_month,
        case
            when coalesce(cm.lifetime_value, 0) >= 1000 then 'High Value'
            when coalesce(cm.lifetime_value, 0) >= 500 then 'Medium Value'
            when coalesce(cm.lifetime_value, 0) >= 100 then 'Low Value'
            else 'New Customer'
        end as customer_segment,
        case
            when cm.last_order_date is null then 'Prospect'
            when cm.last_order_date >= {{ dbt.dateadd('day', -30, as_of_date()) }} then 'Active'
            when cm.last_order_date >= {{ dbt.dateadd('day', -90, as_of_date()) }} then 'At Risk'
            when cm.last_order_date >= {{ dbt.dateadd('day', -365, as_of_date()) }} then 'Dormant'
            else 'Churned'
        end as customer_status,
        {{ audit_columns() }}
    from customers as c
    left join completed as cm on c.customer_id = cm.customer_id
    -- Only valid customers reach the marts (docs/data.md: cleaning rules).
    where c.has_valid_email and c.has_valid_name
)

select * from final
