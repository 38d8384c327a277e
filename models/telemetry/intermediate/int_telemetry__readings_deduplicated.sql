{{ config(materialized='table') }}

{#- The readings that count, for the partitions being rebuilt (with telemetry_context_hours
    of history around them, so that windows at a month's edge see their neighbours): from
    committed batches and this one, one delivery per (site, sample time). When several files
    deliver the same sample, the file modified last wins (a re-delivery corrects an earlier
    one), then the greatest relative path, then the latest batch; all of the winner's cells
    for that time are kept. Deterministic for a given set of files. -#}
with

history as (
    select * from {{ ref('int_telemetry__readings_history') }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

partitions as (
    select * from {{ ref('int_telemetry__partitions_to_build') }}
),

visible as (
    select history.*
    from history
    where
        history.batch_id = '{{ invocation_id }}'
        or history.batch_id in (select committed.batch_id from committed)
),

in_scope as (
    select visible.*
    from visible
    semi join partitions
        on
            visible.site_id = partitions.site_id
            and visible.sample_at
            >= partitions.month_start - interval '{{ var("telemetry_context_hours") }} hours'
            and visible.sample_at < partitions.month_start + interval 1 month
            + interval '{{ var("telemetry_context_hours") }} hours'
),

-- rank deliveries per sample row (one per file and batch), not per cell: far fewer rows
deliveries as (
    select distinct
        site_id,
        sample_at,
        batch_id,
        file_id,
        modified_at,
        relative_path,
        loaded_at
    from in_scope
),

winning_deliveries as (
    select
        site_id,
        sample_at,
        batch_id,
        file_id
    from deliveries
    qualify row_number() over (
        partition by site_id, sample_at
        order by modified_at desc, relative_path desc, loaded_at desc
    ) = 1
),

winners as (
    select
        in_scope.site_id,
        in_scope.point_id,
        in_scope.channel_class,
        in_scope.sample_at,
        in_scope.reading_at,
        in_scope.file_id,
        in_scope.source_file,
        in_scope.source_line,
        in_scope.relative_path,
        in_scope.modified_at,
        in_scope.raw_value,
        in_scope.invalid_reason,
        in_scope.value_si,
        in_scope.violated_limit,
        in_scope.out_of_range_value
    from in_scope
    semi join winning_deliveries
        on
            in_scope.site_id = winning_deliveries.site_id
            and in_scope.sample_at = winning_deliveries.sample_at
            and in_scope.batch_id = winning_deliveries.batch_id
            and in_scope.file_id = winning_deliveries.file_id
)

select * from winners
