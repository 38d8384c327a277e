{#- This run's leads export, typed. The stage times arrive as ISO 8601 dates or timestamps,
    with or without an offset; they are kept as instants in UTC (a value without an offset
    is read as UTC). -#}
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
    cast(trim(created_at) as timestamptz) as created_at,
    cast(nullif(trim(qualified_at), '') as timestamptz) as qualified_at,
    cast(nullif(trim(proposal_at), '') as timestamptz) as proposal_at,
    cast(nullif(trim(closed_at), '') as timestamptz) as closed_at,
    delivery_id
from source
