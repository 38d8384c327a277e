{#- One row per lead delivered so far: days spent in each stage (between UTC dates), and
    whether it converted into an order (the customer's first order placed at or after the
    lead's creation, within crm_conversion_window_days), over every order delivered so far. -#}
{{ config(materialized='table') }}

with

leads as (
    select * from {{ ref('int_crm__leads_latest') }}
),

orders as (
    select * from {{ ref('int_crm__orders_latest') }}
),

conversions as (
    select
        leads.lead_id,
        orders.order_id,
        orders.order_at,
        row_number() over (
            partition by leads.lead_id order by orders.order_at asc, orders.order_id asc
        ) as order_rank
    from leads
    inner join orders
        on
            leads.customer_id = orders.customer_id
            and leads.created_at <= orders.order_at
            and leads.created_at + to_days({{ var('crm_conversion_window_days') }})
            > orders.order_at
)

select
    leads.lead_id,
    leads.customer_id,
    leads.stage,
    leads.amount,
    leads.owner,
    leads.created_at,
    leads.qualified_at,
    leads.proposal_at,
    leads.closed_at,
    {{ crm_utc_days('leads.created_at', 'coalesce(leads.qualified_at, leads.closed_at)') }}
        as days_in_new,
    {{ crm_utc_days('leads.qualified_at', 'coalesce(leads.proposal_at, leads.closed_at)') }}
        as days_in_qualified,
    {{ crm_utc_days('leads.proposal_at', 'leads.closed_at') }} as days_in_proposal,
    {{ crm_utc_days('leads.created_at', 'leads.closed_at') }} as days_to_close,
    leads.stage in ('won', 'lost') as is_closed,
    leads.stage = 'won' as is_won,
    conversions.order_id as converted_order_id,
    {{ crm_utc_days('leads.created_at', 'conversions.order_at') }} as days_to_conversion,
    conversions.order_id is not null as is_converted
from leads
left join conversions on leads.lead_id = conversions.lead_id and conversions.order_rank = 1
