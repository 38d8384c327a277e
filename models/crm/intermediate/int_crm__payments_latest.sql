{#- The latest delivered version of every payment (payment_id),
    across every payments export taken in
    (macro crm_latest_state). Never rebuilt by --full-refresh: the raw tables hold only the
    last run's files, so a rebuild would forget every earlier delivery. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='payment_id',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{{
    crm_latest_state(
        'stg_crm__payments',
        'payment_id',
        ['order_id', 'payment_method', 'amount_cents', 'amount']
    )
}}
