{#- The latest delivered version of every lead (lead_id), across every leads export taken in
    (macro crm_latest_state). Never rebuilt by --full-refresh: the raw tables hold only the
    last run's files, so a rebuild would forget every earlier delivery. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='lead_id',
        on_schema_change='fail',
        full_refresh=false,
    )
}}

{{
    crm_latest_state(
        'stg_crm__leads',
        'lead_id',
        [
            'customer_id',
            'stage',
            'amount',
            'owner',
            'created_at',
            'qualified_at',
            'proposal_at',
            'closed_at',
        ]
    )
}}
