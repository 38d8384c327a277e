{{ config(materialized='table') }}

{#- Every stretch of a site's series with no sample at all, inside the partitions this batch
    rebuilt: from the bucket after the last delivered one to the next delivered bucket. A
    gap up to telemetry_max_gap_fill_hours is published as empty rows (sample_count 0,
    INSUFFICIENT_DATA); a longer one splits the series and has no rows in the dataset, so
    this table (and the batch report) is where it shows. -#}
with

buckets as (
    select
        site_id,
        bucket_start,
        sample_count
    from {{ ref('int_telemetry__buckets') }}
),

partitions as (
    select * from {{ ref('int_telemetry__partitions_to_build') }}
),

-- the buckets that hold a sample (the dataset's rows with a sample_count)
filled_buckets as (
    select
        site_id,
        bucket_start
    from buckets
    where sample_count > 0
),

steps as (
    select
        site_id,
        lag(bucket_start) over (partition by site_id order by bucket_start) as previous_bucket,
        bucket_start as next_bucket
    from filled_buckets
),

gaps as (
    select
        site_id,
        previous_bucket + {{ resample_interval() }} as gap_start,
        next_bucket as gap_end,
        cast(
            (epoch(next_bucket) - epoch(previous_bucket))
            / ({{ var('telemetry_resample_minutes') }} * 60) - 1 as bigint
        ) as missing_buckets,
        (
            (epoch(next_bucket) - epoch(previous_bucket)) / 60
            - {{ var('telemetry_resample_minutes') }}
        ) / 60.0 as duration_hours,
        next_bucket - previous_bucket
        <= interval '{{ var("telemetry_max_gap_fill_hours") }} hours' as published_as_empty_rows
    from steps
    where next_bucket - previous_bucket > {{ resample_interval() }}
),

in_partitions as (
    select gaps.*
    from gaps
    semi join partitions
        on
            gaps.site_id = partitions.site_id
            and gaps.gap_start < partitions.month_start + interval 1 month
            and gaps.gap_end > partitions.month_start
)

select * from in_partitions
