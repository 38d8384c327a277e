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
    AFFINITY_VIOLATION, OUTLIER, INSUFFICIENT_DATA, empty when the row is clean. The channel
    columns are site-level (the site's devices of a type combined); device_readings holds
    every device's own value, coverage and flags, so the schema is the same for a site with
    one chiller and one with five.
    Incremental by partition: the batch's (site, month) partitions are replaced whole, and the
    post-hook writes exactly those partitions to Parquet for the publisher. #}
with

buckets as (
    select * from {{ ref('int_telemetry__buckets') }}
),

flag_events as (
    select * from {{ ref('fct_telemetry_flag_events') }}
),

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
),

points as (
    select
        point_id,
        si_unit
    from {{ ref('telemetry_points') }}
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

-- the flags of each device's point: those whose rule read it (its own FROZEN or OUTLIER, the
-- AFFINITY_VIOLATION of its drive, the HEAT_IMBALANCE of its chiller)
flag_inputs as (
    select
        site_id,
        timestamp,
        flag,
        unnest(input_channels) as channel
    from flag_events
),

flags_per_channel as (
    select
        site_id,
        timestamp,
        channel,
        list_sort(list_distinct(list(flag))) as quality_flags
    from flag_inputs
    group by site_id, timestamp, channel
),

device_readings as (
    select
        point_buckets.site_id,
        point_buckets.bucket_start,
        -- sorted after aggregating, not by list(... order by ...): an ordered aggregate keeps
        -- every group's rows in memory and cannot spill (it ran out of memory at 1 M raw
        -- rows under the default 1 GB limit). Structs sort field by field, and a device has
        -- one type, so this is the order of (device_id, point_id).
        list_sort(list(
            {
                'device_id': point_buckets.device_id,
                'device_type': point_buckets.device_type,
                'point_id': point_buckets.point_id,
                'unit': points.si_unit,
                'value': point_buckets.value,
                'coverage': point_buckets.coverage,
                'quality_flags': coalesce(flags_per_channel.quality_flags, cast([] as varchar[]))
            }
        )) as device_readings
    from point_buckets
    inner join points on point_buckets.point_id = points.point_id
    left join flags_per_channel
        on
            point_buckets.site_id = flags_per_channel.site_id
            and point_buckets.bucket_start = flags_per_channel.timestamp
            and point_buckets.device_id || '.' || point_buckets.point_id
            = flags_per_channel.channel
    semi join partitions
        on
            point_buckets.site_id = partitions.site_id
            and date_trunc('month', point_buckets.bucket_start) = partitions.month_start
    group by point_buckets.site_id, point_buckets.bucket_start
),

final as (
    select
        buckets.site_id,
        buckets.bucket_start as timestamp,
        {% for point_id, column_name, site_aggregate in telemetry_points() -%}
            buckets.{{ point_id }}{% if column_name != point_id %} as {{ column_name }}{% endif %},
        {% endfor -%}
        buckets.sample_count,
        buckets.conflicting_cells,
        buckets.coverage,
        buckets.chiller_running,
        coalesce(flags_per_bucket.quality_flags, cast([] as varchar[])) as quality_flags,
        device_readings.device_readings
    from buckets
    left join flags_per_bucket
        on
            buckets.site_id = flags_per_bucket.site_id
            and buckets.bucket_start = flags_per_bucket.timestamp
    left join device_readings
        on
            buckets.site_id = device_readings.site_id
            and buckets.bucket_start = device_readings.bucket_start
    semi join partitions
        on
            buckets.site_id = partitions.site_id
            and date_trunc('month', buckets.bucket_start) = partitions.month_start
)

select * from final
