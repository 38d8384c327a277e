{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        full_refresh=false,
        on_schema_change='fail',
        pre_hook="{{ telemetry_migrate_history_devices() }}"
    )
}}
-- depends_on: {{ ref('telemetry_points') }}
-- depends_on: {{ ref('telemetry_point_map') }}

{#- Every batch's readings, appended and stamped with the batch id (dbt's invocation id).
    Append-only on purpose: a batch that fails or is killed is rolled back by deleting its
    rows (the publisher, or the next run's reconciliation, does it), so the history never
    holds a half-applied merge. Never rebuilt by --full-refresh (it is the only copy of
    every delivery). Which delivery counts is decided on read
    (int_telemetry__readings_deduplicated). A history written before devices were data is
    migrated in place by the pre-hook (telemetry_migrate_history_devices). #}
select
    *,
    '{{ invocation_id }}' as batch_id,
    now() as loaded_at
from {{ ref('int_telemetry__readings_si') }}
