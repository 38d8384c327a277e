{#- Per customer: first and most recent order (instant and UTC date), number of orders,
    lifetime value (everything paid for the customer's orders, as jaffle-shop defines it),
    over every order and payment delivered so far. -#}
with

orders as (
    select * from {{ ref('int_crm__orders_latest') }}
),

order_payments as (
    select * from {{ ref('int_crm__order_payments') }}
)

select
    orders.customer_id,
    min(orders.order_at) as first_order_at,
    max(orders.order_at) as most_recent_order_at,
    min(orders.order_date) as first_order,
    max(orders.order_date) as most_recent_order,
    count(*) as number_of_orders,
    cast(coalesce(sum(order_payments.amount), 0) as decimal(18, 2)) as customer_lifetime_value
from orders
left join order_payments on orders.order_id = order_payments.order_id
group by orders.customer_id
