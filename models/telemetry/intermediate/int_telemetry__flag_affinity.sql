{#- AFFINITY_VIOLATION (domain reference §2.3) for each VFD device of the seeds (every pump
    and tower fan of telemetry_devices whose speed and power are mapped),
    with speed fraction s and power P against P_ref = the device's rated power (s_ref = 1):
      R1 dead drive   — commanded on, s ≥ min speed, P ≤ a small share of P_ref;
      R2 ghost power  — s ≈ 0 but P ≥ a share of P_ref;
      R3 cube law     — within the speed band, |P / (P_ref · s³) − 1| > tol_P.
    A relative residual, not a fitted exponent (unstable near s = 1). -#}
with

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
),

points as (
    select
        point_id,
        device_role
    from {{ ref('telemetry_points') }}
    where device_role in ('speed', 'power', 'status')
),

devices as (
    select * from {{ ref('telemetry_devices') }}
),

-- every device of the seeds that reports both a speed and a power (pumps, tower fans)
device_buckets as (
    select
        point_buckets.site_id,
        point_buckets.device_id,
        point_buckets.bucket_start,
        max(point_buckets.value) filter (where points.device_role = 'speed') as speed,
        max(point_buckets.value) filter (where points.device_role = 'power') as power_kw,
        max(point_buckets.value) filter (where points.device_role = 'status') as status,
        any_value(point_buckets.point_id) filter (where points.device_role = 'speed')
            as speed_point,
        any_value(point_buckets.point_id) filter (where points.device_role = 'power')
            as power_point,
        any_value(devices.rated_kw) as reference_kw
    from point_buckets
    inner join points on point_buckets.point_id = points.point_id
    inner join devices
        on
            point_buckets.site_id = devices.site_id
            and point_buckets.device_id = devices.device_id
    group by point_buckets.site_id, point_buckets.device_id, point_buckets.bucket_start
    having
        max(point_buckets.value) filter (where points.device_role = 'speed') is not null
        and max(point_buckets.value) filter (where points.device_role = 'power') is not null
),

rules as (
    select
        *,
        case
            when
                coalesce(status >= 0.5, true)
                and speed >= {{ var('telemetry_affinity_dead_min_speed') }}
                and power_kw <= {{ var('telemetry_affinity_dead_max_power') }} * reference_kw
                then 'dead_drive'
            when
                speed <= {{ var('telemetry_affinity_ghost_max_speed') }}
                and power_kw >= {{ var('telemetry_affinity_ghost_min_power') }} * reference_kw
                then 'ghost_power'
            when
                speed between {{ var('telemetry_affinity_cube_min_speed') }}
                and {{ var('telemetry_affinity_cube_max_speed') }}
                and abs(power_kw / (reference_kw * power(speed, 3)) - 1)
                > {{ var('telemetry_affinity_tol_p') }}
                then 'cube_law'
        end as rule
    from device_buckets
    where reference_kw > 0
)

select
    site_id,
    bucket_start,
    'AFFINITY_VIOLATION' as flag,
    device_id,
    cast(null as varchar) as point_id,
    device_id as channel,
    rule,
    power_kw as observed_value,
    case
        when rule = 'dead_drive'
            then {{ var('telemetry_affinity_dead_max_power') }} * reference_kw
        when rule = 'ghost_power'
            then {{ var('telemetry_affinity_ghost_min_power') }} * reference_kw
        else {{ var('telemetry_affinity_tol_p') }}
    end as threshold,
    format(
        'speed {:.3f}, power {:.2f} kW, cube-law expectation {:.2f} kW (P_ref {:.1f} kW)',
        speed, power_kw, reference_kw * power(speed, 3), reference_kw
    ) as detail,
    [device_id || '.' || speed_point, device_id || '.' || power_point] as input_channels
from rules
where rule is not null
