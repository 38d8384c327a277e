{#- This run's orders export, typed. order_date arrives as an ISO 8601 date or timestamp,
    with or without an offset (2018-01-01T23:30:45.000-0500): order_at keeps the instant in
    UTC (a value without an offset is read as UTC), order_date is its UTC date. -#}
with

source as (
    select * from {{ source('crm_raw', 'orders') }}
),

typed as (
    select
        cast(trim(id) as integer) as order_id,
        cast(trim(user_id) as integer) as customer_id,
        cast(trim(order_date) as timestamptz) as order_at,
        lower(trim(status)) as status,
        delivery_id
    from source
)

select
    order_id,
    customer_id,
    order_at,
    cast(timezone('UTC', order_at) as date) as order_date,
    status,
    delivery_id
from typed
