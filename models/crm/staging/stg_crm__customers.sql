{#- This run's customers export, typed. -#}
with

source as (
    select * from {{ source('crm_raw', 'customers') }}
)

select
    cast(trim(id) as integer) as customer_id,
    nullif(trim(first_name), '') as first_name,
    nullif(trim(last_name), '') as last_name,
    nullif(lower(trim(email)), '') as email,
    delivery_id
from source
