{#- FROZEN (domain reference §2.1, after SaQC flagConstants): a run of consecutive non-null
    buckets whose max − min stays within the point's tolerance for at least its minimum
    length, per device and point. Runs are built from bucket-to-bucket steps within the
    tolerance; for points that need it, only buckets where the chiller runs count (the point's
    own chiller for a chiller's point, any chiller of the site for a pump, fan or plant point), so off-state plateaus (0 kW for days)
    are not FROZEN, and a run pinned at zero is a physical limit, not a stuck sensor. -#}
with

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
),

buckets as (
    select
        site_id,
        bucket_start,
        chiller_running
    from {{ ref('int_telemetry__buckets') }}
),

chiller_buckets as (
    select
        site_id,
        device_id,
        bucket_start,
        chiller_running
    from {{ ref('int_telemetry__chiller_buckets') }}
),

points as (
    select * from {{ ref('telemetry_points') }}
    where frozen_tolerance is not null
),

candidates as (
    select
        point_buckets.site_id,
        point_buckets.device_id,
        point_buckets.point_id,
        point_buckets.bucket_start,
        point_buckets.value,
        points.frozen_min_minutes,
        case
            when points.frozen_tolerance_is_relative
                then points.frozen_tolerance * abs(point_buckets.value)
            else points.frozen_tolerance
        end as tolerance,
        (
            point_buckets.value is not null
            and (
                not points.frozen_requires_running
                or coalesce(chiller_buckets.chiller_running, buckets.chiller_running)
            )
        ) as eligible
    from point_buckets
    inner join points on point_buckets.point_id = points.point_id
    inner join buckets
        on
            point_buckets.site_id = buckets.site_id
            and point_buckets.bucket_start = buckets.bucket_start
    left join chiller_buckets
        on
            point_buckets.site_id = chiller_buckets.site_id
            and point_buckets.device_id = chiller_buckets.device_id
            and point_buckets.bucket_start = chiller_buckets.bucket_start
),

steps as (
    select
        *,
        case
            when not eligible then 1
            when not coalesce(lag(eligible) over point_series, false) then 1
            when abs(value - lag(value) over point_series) > tolerance then 1
            else 0
        end as starts_run
    from candidates
    window point_series as (partition by site_id, device_id, point_id order by bucket_start)
),

runs as (
    select
        *,
        sum(starts_run) over (
            partition by site_id, device_id, point_id order by bucket_start rows unbounded preceding
        ) as run_id
    from steps
),

run_extent as (
    select
        site_id,
        device_id,
        point_id,
        run_id,
        count(*) as run_buckets,
        max(value) - min(value) as run_spread,
        max(tolerance) as tolerance,
        max(abs(value)) as largest_magnitude,
        any_value(frozen_min_minutes) as frozen_min_minutes
    from runs
    where eligible
    group by site_id, device_id, point_id, run_id
),

frozen_runs as (
    select *
    from run_extent
    where
        run_spread <= tolerance
        and run_buckets * {{ var('telemetry_resample_minutes') }} >= frozen_min_minutes
        and largest_magnitude > 0
)

select
    runs.site_id,
    runs.bucket_start,
    'FROZEN' as flag,
    runs.device_id,
    runs.point_id,
    runs.device_id || '.' || runs.point_id as channel,
    'constant_run' as rule,
    runs.value as observed_value,
    frozen_runs.tolerance as threshold,
    format(
        'run of {} buckets ({} min) with max - min = {:.3g} (min length {} min)',
        frozen_runs.run_buckets,
        frozen_runs.run_buckets * {{ var('telemetry_resample_minutes') }},
        frozen_runs.run_spread,
        frozen_runs.frozen_min_minutes
    ) as detail,
    [runs.device_id || '.' || runs.point_id] as input_channels
from runs
inner join frozen_runs
    on
        runs.site_id = frozen_runs.site_id
        and runs.device_id = frozen_runs.device_id
        and runs.point_id = frozen_runs.point_id
        and runs.run_id = frozen_runs.run_id
where runs.eligible
