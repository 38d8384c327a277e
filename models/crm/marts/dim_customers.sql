{#- One row per customer delivered so far, with their order history summarized over every
    order and payment delivered so far. -#}
{{ config(materialized='table') }}

with

customers as (
    select * from {{ ref('int_crm__customers_latest') }}
),

customer_orders as (
    select * from {{ ref('int_crm__customer_orders') }}
)

select
    customers.customer_id,
    customers.first_name,
    customers.last_name,
    customers.email,
    customer_orders.first_order_at,
    customer_orders.most_recent_order_at,
    customer_orders.first_order,
    customer_orders.most_recent_order,
    coalesce(customer_orders.number_of_orders, 0) as number_of_orders,
    coalesce(customer_orders.customer_lifetime_value, 0) as customer_lifetime_value
from customers
left join customer_orders on customers.customer_id = customer_orders.customer_id
