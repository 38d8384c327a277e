{#- Per order: the amount paid with each method and in total (dollars), over every payment
    delivered so far (int_crm__payments_latest), so a payment that arrives after its order
    counts. -#}
{%- set payment_methods = ['credit_card', 'coupon', 'bank_transfer', 'gift_card'] %}
with

payments as (
    select * from {{ ref('int_crm__payments_latest') }}
)

select
    order_id,
    {%- for method in payment_methods %}
        cast(
            sum(amount) filter (where payment_method = '{{ method }}') as decimal(18, 2)
        ) as {{ method }}_amount,
    {%- endfor %}
    cast(sum(amount) as decimal(18, 2)) as amount
from payments
group by order_id
