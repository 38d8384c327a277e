{#- The latest delivered version of every customer (customer_id),
    across every customers export taken in
    (macro crm_latest_state). -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='customer_id',
        on_schema_change='fail',
    )
}}

{{
    crm_latest_state(
        'stg_crm__customers',
        'customer_id',
        ['first_name', 'last_name', 'email']
    )
}}
