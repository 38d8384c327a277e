{#- Every delivered source row that counts for the partitions being rebuilt (with
    telemetry_context_hours of history around them): from committed batches and this one, with
    its delivered cells. The merge (int_telemetry__contested_cells,
    int_telemetry__cell_deliveries) reads them from here. A view: only the history's row
    groups around the partitions are read, where it is used. -#}
{%- set partitions_relation = ref('int_telemetry__partitions_to_build') -%}
{%- set partitions_window -%}
    select
        min(month_start) - interval '{{ var("telemetry_context_hours") }} hours',
        max(month_start) + interval 1 month + interval '{{ var("telemetry_context_hours") }} hours'
    from {{ partitions_relation }}
{%- endset %}

with

history as not materialized (
    select * from {{ ref('int_telemetry__readings_history') }}
    -- only the row groups around the partitions being rebuilt are read
    where {{ telemetry_history_window(partitions_relation, partitions_window) }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

partitions as (
    select * from {{ partitions_relation }}
),

visible as not materialized (
    select history.*
    from history
    where
        history.batch_id = '{{ invocation_id }}'
        or history.batch_id in (select committed.batch_id from committed)
),

in_scope as not materialized (
    select visible.*
    from visible
    semi join partitions
        on
            visible.site_id = partitions.site_id
            and visible.sample_at
            >= partitions.month_start - interval '{{ var("telemetry_context_hours") }} hours'
            and visible.sample_at < partitions.month_start + interval 1 month
            + interval '{{ var("telemetry_context_hours") }} hours'
)

select * from in_scope
