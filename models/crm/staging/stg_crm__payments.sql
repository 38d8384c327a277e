{#- This run's payments export, typed; amounts arrive in cents. -#}
with

source as (
    select * from {{ source('crm_raw', 'payments') }}
)

select
    cast(trim(id) as integer) as payment_id,
    cast(trim(order_id) as integer) as order_id,
    lower(trim(payment_method)) as payment_method,
    cast(trim(amount) as bigint) as amount_cents,
    cast(cast(trim(amount) as bigint) * 0.01 as decimal(18, 2)) as amount,
    delivery_id
from source
