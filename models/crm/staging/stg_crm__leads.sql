with

source as (
    select * from {{ source('crm_raw', 'leads') }}
)

select
    cast(trim(id) as integer) as lead_id,
    cast(trim(customer_id) as integer) as customer_id,
    lower(trim(stage)) as stage,
    cast(trim(amount) as decimal(18, 2)) as amount,
    nullif(trim(owner), '') as owner,
    cast(trim(created_at) as date) as created_at,
    cast(nullif(trim(qualified_at), '') as date) as qualified_at,
    cast(nullif(trim(proposal_at), '') as date) as proposal_at,
    cast(nullif(trim(closed_at), '') as date) as closed_at
from source
