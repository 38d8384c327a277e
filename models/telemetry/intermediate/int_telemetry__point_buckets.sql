{{ config(materialized='table') }}

{#- One row per site, resample bucket, device and mapped point (every (device, point) pair of
    the point map), over each site's time range: empty
    buckets exist (n_samples = 0) so that gaps are visible. A gap longer than
    telemetry_max_gap_fill_hours (the site was not reporting, or two deliveries years apart)
    splits the range into segments instead of filling it with empty rows. `value` is the mean of the
    valid samples; coverage = valid samples / samples expected from the site's raw interval. -#}
with

readings as not materialized (
    select * from {{ ref('int_telemetry__readings_deduplicated') }}
),

sites as (
    select
        site_id,
        raw_interval_s
    from {{ ref('telemetry_sites') }}
),

site_points as (
    select
        point_map.site_id,
        point_map.device_id,
        point_map.point_id,
        points.device_type,
        points.channel_class,
        points.required_for_coverage
    from {{ ref('telemetry_point_map') }} as point_map
    inner join {{ ref('telemetry_points') }} as points on point_map.point_id = points.point_id
),

bucketed as not materialized (
    select
        *,
        time_bucket({{ resample_interval() }}, sample_at) as bucket_start
    from readings
),

-- the mean of the valid samples and the counts; kept apart from the details of the invalid
-- samples below, because the fewer states a group carries, the larger a batch that fits in
-- memory_limit (aggregate states of lists do not spill)
aggregated as materialized (
    select
        site_id,
        bucket_start,
        device_id,
        point_id,
        -- summed in value order, so that a rerun gives bit-identical means (an aggregate's
        -- order, even `avg(... order by ...)`, varies with the threads' split of the rows)
        list_avg(list_sort(list(value_si))) as value,
        count(value_si) as n_valid,
        count(*) as n_samples,
        count(invalid_reason) as n_invalid,
        count(*) filter (where has_file_conflict) as n_conflicting
    from bucketed
    group by site_id, bucket_start, device_id, point_id
),

-- what the invalid samples were, aggregated over those few rows only (the range columns are
-- set only on invalid samples)
invalid_details as (
    select
        site_id,
        bucket_start,
        device_id,
        point_id,
        list_sort(list_distinct(list(invalid_reason))) as invalid_reasons,
        max(raw_value) as invalid_raw_value,
        max(out_of_range_value) as out_of_range_value,
        max(violated_limit) as violated_limit
    from bucketed
    where invalid_reason is not null
    group by site_id, bucket_start, device_id, point_id
),

-- the buckets that hold a sample
filled_buckets as (
    select distinct
        site_id,
        bucket_start
    from aggregated
),

segment_starts as (
    select
        site_id,
        bucket_start,
        coalesce(
            bucket_start - lag(bucket_start) over site_series
            > interval '{{ var("telemetry_max_gap_fill_hours") }} hours',
            true
        ) as starts_segment
    from filled_buckets
    window site_series as (partition by site_id order by bucket_start)
),

segments as (
    select
        site_id,
        bucket_start,
        sum(case when starts_segment then 1 else 0 end) over (
            partition by site_id order by bucket_start rows unbounded preceding
        ) as segment_id
    from segment_starts
),

site_ranges as (
    select
        site_id,
        segment_id,
        min(bucket_start) as first_bucket,
        max(bucket_start) as last_bucket
    from segments
    group by site_id, segment_id
),

spine as (
    select
        site_ranges.site_id,
        unnest(generate_series(
            site_ranges.first_bucket, site_ranges.last_bucket, {{ resample_interval() }}
        )) as bucket_start
    from site_ranges
),

joined as (
    select
        spine.site_id,
        spine.bucket_start,
        site_points.device_id,
        site_points.device_type,
        site_points.point_id,
        site_points.channel_class,
        site_points.required_for_coverage,
        aggregated.value,
        invalid_details.invalid_reasons,
        invalid_details.invalid_raw_value,
        invalid_details.out_of_range_value,
        invalid_details.violated_limit,
        coalesce(aggregated.n_valid, 0) as n_valid,
        coalesce(aggregated.n_samples, 0) as n_samples,
        coalesce(aggregated.n_invalid, 0) as n_invalid,
        coalesce(aggregated.n_conflicting, 0) as n_conflicting,
        {{ var('telemetry_resample_minutes') }} * 60.0 / sites.raw_interval_s as n_expected
    from spine
    inner join site_points on spine.site_id = site_points.site_id
    inner join sites on spine.site_id = sites.site_id
    left join aggregated
        on
            spine.site_id = aggregated.site_id
            and spine.bucket_start = aggregated.bucket_start
            and site_points.device_id = aggregated.device_id
            and site_points.point_id = aggregated.point_id
    left join invalid_details
        on
            spine.site_id = invalid_details.site_id
            and spine.bucket_start = invalid_details.bucket_start
            and site_points.device_id = invalid_details.device_id
            and site_points.point_id = invalid_details.point_id
),

final as (
    select
        *,
        least(1.0, n_valid / n_expected) as coverage
    from joined
)

select * from final
