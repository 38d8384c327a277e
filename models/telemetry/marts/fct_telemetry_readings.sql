{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} using {{ ref('int_telemetry__partitions_to_build') }} as p where {{ this }}.site_id = p.site_id and date_trunc('month', {{ this }}.timestamp) = p.month_start{% endif %}",
        post_hook="{{ telemetry_publish_parquet() }}"
    )
}}
-- depends_on: {{ ref('telemetry_points') }}

{#- The contract of the telemetry dataset: one row per site and resample bucket over each
    site's whole range, every channel in SI units with the unit in its name, and
    quality_flags: a sorted, de-duplicated list of FROZEN, HEAT_IMBALANCE,
    AFFINITY_VIOLATION, OUTLIER, INSUFFICIENT_DATA, empty when the row is clean.
    Incremental by partition: the batch's (site, month) partitions are replaced whole, and the
    post-hook writes exactly those partitions to Parquet for the publisher. #}
with

buckets as (
    select * from {{ ref('int_telemetry__buckets') }}
),

flag_events as (
    select * from {{ ref('fct_telemetry_flag_events') }}
),

partitions as (
    select * from {{ ref('int_telemetry__partitions_to_build') }}
),

flags_per_bucket as (
    select
        site_id,
        timestamp,
        list_sort(list_distinct(list(flag))) as quality_flags
    from flag_events
    group by site_id, timestamp
),

final as (
    select
        buckets.site_id,
        buckets.bucket_start as timestamp,
        {% for point_id, column_name in telemetry_points() -%}
            buckets.{{ point_id }}{% if column_name != point_id %} as {{ column_name }}{% endif %},
        {% endfor -%}
        buckets.sample_count,
        buckets.conflicting_cells,
        buckets.coverage,
        buckets.chiller_running,
        coalesce(flags_per_bucket.quality_flags, cast([] as varchar[])) as quality_flags
    from buckets
    left join flags_per_bucket
        on
            buckets.site_id = flags_per_bucket.site_id
            and buckets.bucket_start = flags_per_bucket.timestamp
    semi join partitions
        on
            buckets.site_id = partitions.site_id
            and date_trunc('month', buckets.bucket_start) = partitions.month_start
)

select * from final
