{{ config(tags=['core', 'orders']) }}

with orders as (
    select * from {{ ref('stg_orders') }}
),

customers as (
    select
        customer_key,
        customer_id
    from {{ ref('dim_customers') }}
),

totals as (
    select * from {{ ref('int_order_totals') }}
),

joined as (
    select
        {{ surrogate_key(['o.order_id']) }} as order_key,
        c.customer_key,
        o.order_id,
        o.customer_id,
        o.order_date,
        o.order_status,
        o.order_status = 'completed' as is_completed,
        t.total_items,
        t.total_quantity,
        t.gross_amount,
        t.total_discount,
        t.net_amount
    from orders as o
    -- Inner joins: only orders of valid customers, and only orders with lines, are facts.
    inner join customers as c on o.customer_id = c.customer_id
    inner join totals as t on o.order_id = t.order_id
)

select
    *,
    -- Position of the order among the customer's completed orders (1 = first purchase);
    -- null for orders that are not completed. Ties on a day are broken by order_id.
    case
        when is_completed then row_number() over (
            partition by customer_id, is_completed order by order_date, order_id
        )
    end as completed_order_number,
    extract(year from order_date) as order_year,
    extract(month from order_date) as order_month,
    extract(quarter from order_date) as order_quarter,
    extract(dow from order_date) as order_day_of_week,
    {{ audit_columns() }}
from joined
