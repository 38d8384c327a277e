with

source as (
    select * from {{ source('crm_raw', 'orders') }}
)

select
    cast(trim(id) as integer) as order_id,
    cast(trim(user_id) as integer) as customer_id,
    cast(trim(order_date) as date) as order_date,
    lower(trim(status)) as status
from source
