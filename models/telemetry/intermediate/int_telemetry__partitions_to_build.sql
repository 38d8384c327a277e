{{ config(materialized='table') }}

{#- The (site, month) partitions this batch rebuilds: every month its readings touch, plus
    the partitions a rolled-back batch left to rebuild (telemetry_meta.rebuild_partitions),
    or every partition in the history with telemetry_rebuild_all. A partition is rebuilt
    whole, from all committed history, and published whole. -#}
with

history as (
    select * from {{ ref('int_telemetry__readings_history') }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

touched as (
    select distinct
        site_id,
        date_trunc('month', sample_at) as month_start
    from history
    where
        batch_id = '{{ invocation_id }}'
        or (
            {{ 'true' if var('telemetry_rebuild_all') else 'false' }}
            and batch_id in (select committed.batch_id from committed)
        )
),

left_to_rebuild as (
    select
        site_id,
        month_start
    from {{ source('telemetry_meta', 'rebuild_partitions') }}
),

unioned as (
    select * from touched
    union
    select * from left_to_rebuild
)

select * from unioned
