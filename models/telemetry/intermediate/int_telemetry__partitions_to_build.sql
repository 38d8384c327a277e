{{ config(materialized='table') }}

{#- The (site, month) partitions this batch rebuilds: every month its readings touch (and a
    neighbouring month whose edge they fall within telemetry_context_hours of), plus
    the partitions a rolled-back batch left to rebuild (telemetry_meta.rebuild_partitions),
    or every partition in the history with telemetry_rebuild_all. A partition is rebuilt
    whole, from all committed history, and published whole. -#}
{%- set history_relation = ref('int_telemetry__readings_history') -%}
{%- set months_window -%}
    select
        date_trunc('month', min(sample_at) - interval '{{ var("telemetry_context_hours") }} hours'),
        date_trunc('month', max(sample_at) + interval '{{ var("telemetry_context_hours") }} hours')
        + interval 1 month
    from {{ history_relation }}
    where batch_id = '{{ invocation_id }}'
{%- endset %}
{%- if var('telemetry_rebuild_all') -%}
    {%- set months_filter = 'true' -%}
{%- else -%}
    {%- set months_filter = telemetry_history_window(history_relation, months_window) -%}
{%- endif %}

with

history as (
    select * from {{ history_relation }}
),

-- the history of the months this batch's readings can touch (every month with
-- telemetry_rebuild_all); only those row groups of the history are read
history_in_reach as (
    select * from history
    where {{ months_filter }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

batch_rows as (
    select
        site_id,
        sample_at
    from history
    where
        batch_id = '{{ invocation_id }}'
        or (
            {{ 'true' if var('telemetry_rebuild_all') else 'false' }}
            and batch_id in (select committed.batch_id from committed)
        )
),

-- months that have readings to publish (committed ones, or this batch's)
months_with_history as (
    select distinct
        site_id,
        date_trunc('month', sample_at) as month_start
    from history_in_reach
    where
        batch_id = '{{ invocation_id }}'
        or batch_id in (select committed.batch_id from committed)
),

-- a reading also changes the neighbouring month when it lies within the context of its edge
-- (gap rows, windows and runs there see it), so that month is rebuilt too
touched as (
    select distinct
        site_id,
        date_trunc('month', sample_at) as month_start
    from batch_rows
    union
    select distinct
        site_id,
        date_trunc(
            'month', sample_at - interval '{{ var("telemetry_context_hours") }} hours'
        ) as month_start
    from batch_rows
    union
    select distinct
        site_id,
        date_trunc(
            'month', sample_at + interval '{{ var("telemetry_context_hours") }} hours'
        ) as month_start
    from batch_rows
),

touched_with_history as (
    select touched.*
    from touched
    semi join months_with_history
        on
            touched.site_id = months_with_history.site_id
            and touched.month_start = months_with_history.month_start
),

left_to_rebuild as (
    select
        site_id,
        month_start
    from {{ source('telemetry_meta', 'rebuild_partitions') }}
),

unioned as (
    select * from touched_with_history
    union
    select * from left_to_rebuild
)

select * from unioned
