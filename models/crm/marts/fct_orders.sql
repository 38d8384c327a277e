{#- One row per order with what was paid by each method. Incremental: orders are
    append-mostly, so a run merges only new orders and orders whose status or payments
    changed. -#}
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
    select * from {{ ref('stg_crm__orders') }}
),

order_payments as (
    select * from {{ ref('int_crm__order_payments') }}
),

joined as (
    select
        orders.order_id,
        orders.customer_id,
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
        select * from joined where false
    {%- endif %}
),

changed as (
    select joined.*
    from joined
    left join existing on joined.order_id = existing.order_id
    where
        existing.order_id is null
        or existing.status != joined.status
        or existing.amount != joined.amount
        {%- for method in payment_methods %}
            or existing.{{ method }}_amount != joined.{{ method }}_amount
        {%- endfor %}
        or existing.order_date != joined.order_date
        or existing.customer_id != joined.customer_id
)

select
    *,
    '{{ invocation_id }}' as batch_id
from changed
