{#- One row per order with what was paid by each method. Incremental, merged on order_id:
    every order delivered so far (int_crm__orders_latest) is joined with every payment
    delivered so far, and the orders whose figures differ from the stored row are written,
    so an order whose payments arrive in a later export (or in another task's run) is
    re-merged, and an order delivered again unchanged is not touched. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='order_id',
        on_schema_change='fail',
    )
}}
{%- set payment_methods = ['credit_card', 'coupon', 'bank_transfer', 'gift_card'] %}

with

orders as (
    select * from {{ ref('int_crm__orders_latest') }}
),

order_payments as (
    select * from {{ ref('int_crm__order_payments') }}
),

joined as (
    select
        orders.order_id,
        orders.customer_id,
        orders.order_at,
        orders.order_date,
        orders.status,
        {%- for method in payment_methods %}
            coalesce(order_payments.{{ method }}_amount, 0) as {{ method }}_amount,
        {%- endfor %}
        coalesce(order_payments.amount, 0) as amount
    from orders
    left join order_payments on orders.order_id = order_payments.order_id
),

existing as (
    {%- if is_incremental() %}
        select * exclude (batch_id) from {{ this }}
    {%- else %}
        select * from joined
        where false
    {%- endif %}
),

changed as (
    select joined.*
    from joined
    left join existing on joined.order_id = existing.order_id
    where
        existing.order_id is null
        or existing.status is distinct from joined.status
        or existing.amount is distinct from joined.amount
        {%- for method in payment_methods %}
            or existing.{{ method }}_amount is distinct from joined.{{ method }}_amount
        {%- endfor %}
        or existing.order_at is distinct from joined.order_at
        or existing.customer_id is distinct from joined.customer_id
)

select
    *,
    '{{ invocation_id }}' as batch_id
from changed
