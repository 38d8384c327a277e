{#- The latest delivered version of every payment (payment_id),
    across every payments export taken in
    (macro crm_latest_state). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='payment_id',
        on_schema_change='fail',
    )
}}

{{
    crm_latest_state(
        'stg_crm__payments',
        'payment_id',
        ['order_id', 'payment_method', 'amount_cents', 'amount']
    )
}}
