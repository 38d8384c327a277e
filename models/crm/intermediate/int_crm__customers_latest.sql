{#- The latest delivered version of every customer (customer_id),
    across every customers export taken in
    (macro crm_latest_state). Never rebuilt by --full-refresh: the raw tables hold only the
    last run's files, so a rebuild would forget every earlier delivery. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='customer_id',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{{
    crm_latest_state(
        'stg_crm__customers',
        'customer_id',
        ['first_name', 'last_name', 'email']
    )
}}
