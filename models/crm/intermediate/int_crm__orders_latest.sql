{#- The latest delivered version of every order (order_id), across every orders export taken in
    (macro crm_latest_state). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='order_id',
        on_schema_change='fail',
    )
}}

{{
    crm_latest_state(
        'stg_crm__orders',
        'order_id',
        ['customer_id', 'order_at', 'order_date', 'status']
    )
}}
