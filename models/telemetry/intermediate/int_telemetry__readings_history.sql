{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        on_schema_change='fail',
        pre_hook=[
            "{{ telemetry_migrate_history_devices() }}",
            "{{ telemetry_migrate_history_rows() }}"
        ]
    )
}}
-- depends_on: {{ ref('telemetry_points') }}
-- depends_on: {{ ref('telemetry_point_map') }}

{#- Every batch's deliveries, appended and stamped with the batch id (dbt's invocation id): one
    row per source row that delivered a value, its delivered cells a list. Append-only on
    purpose: a batch that fails or is killed is rolled back by deleting its rows (the
    publisher, or the next run's reconciliation, does it), so the history never holds a
    half-applied merge. Never rebuilt by --full-refresh (it is the only copy of every
    delivery). Which delivery counts is decided on read (int_telemetry__cell_deliveries). A
    history written before devices were data, or one row per cell, is migrated in place by the
    pre-hooks (telemetry_migrate_history_devices, then telemetry_migrate_history_rows). #}
select
    *,
    '{{ invocation_id }}' as batch_id,
    now() as loaded_at
from {{ ref('int_telemetry__readings_si') }}
