{#- The latest delivered version of every order (order_id), across every orders export taken in
    (macro crm_latest_state). Never rebuilt by --full-refresh: the raw tables hold only the
    last run's files, so a rebuild would forget every earlier delivery. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='order_id',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{{
    crm_latest_state(
        'stg_crm__orders',
        'order_id',
        ['customer_id', 'order_at', 'order_date', 'status']
    )
}}
