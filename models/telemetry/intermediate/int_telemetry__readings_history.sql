{{ config(materialized='incremental', incremental_strategy='append', full_refresh=false) }}

{#- Every batch's readings, appended and stamped with the batch id (dbt's invocation id).
    Append-only on purpose: a batch that fails or is killed is rolled back by deleting its
    rows (the publisher, or the next run's reconciliation, does it), so the history never
    holds a half-applied merge. Never rebuilt by --full-refresh (it is the only copy of
    every delivery). Which delivery counts is decided on read
    (int_telemetry__readings_deduplicated). #}
select
    *,
    '{{ invocation_id }}' as batch_id,
    now() as loaded_at
from {{ ref('int_telemetry__readings_si') }}
