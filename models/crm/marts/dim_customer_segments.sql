{#- Customers per value segment, from dim_customers: what depends on the customers mart. The
    example event listener rebuilds it whenever crm.customers completes. -#}
{{ config(materialized='table') }}

with

customers as (
    select * from {{ ref('dim_customers') }}
),

segmented as (
    select
        customer_lifetime_value,
        case
            when number_of_orders = 0 then 'no_orders'
            when customer_lifetime_value >= {{ var('crm_vip_lifetime_value') }} then 'vip'
            when number_of_orders > 1 then 'returning'
            else 'one_time'
        end as segment
    from customers
)

select
    segment,
    count(*) as customers,
    cast(sum(customer_lifetime_value) as decimal(18, 2)) as lifetime_value
from segmented
group by segment
