{#- OUTLIER, in layers (domain reference §2.4): (1) sentinels, NaN/inf, text and the `???`
    marker, (2) physical range limits, both found per raw sample (the value was nulled);
    (3) the rolling modified z-score |0.6745 (x − median) / max(MAD, resolution)| > z over a
    centred window, per site, device, point and running state (the device's own
    chiller for a chiller's point, any chiller of the site otherwise). The point's resolution (seed) guards
    MAD = 0 on plateaus; FROZEN buckets are kept out of the window (a stuck stretch would
    shrink the MAD and make normal values look extreme). The window must be near-symmetric,
    each side holding at least telemetry_mad_min_side_share of a half-window: at the edge of
    a running period or a gap it would see one side only, and a trend (the morning rise of
    the wet bulb) would put its median off the value's own level. (A local linear detrend,
    SaQC's deg=1, was tried: on a daily curve it leaves structured residuals at the edges and
    raised more false outliers.) Weather does not depend on the chiller, so its
    window ignores the running state. One row per raised flag. -#}
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
    select
        point_id,
        mad_check,
        mad_resolution
    from {{ ref('telemetry_points') }}
),

frozen as (
    select
        site_id,
        bucket_start,
        device_id,
        point_id
    from {{ ref('int_telemetry__flag_frozen') }}
),

invalid_reasons as (
    select
        site_id,
        bucket_start,
        device_id,
        point_id,
        n_invalid,
        n_samples,
        invalid_raw_value,
        out_of_range_value,
        violated_limit,
        unnest(invalid_reasons) as invalid_reason
    from point_buckets
    where n_invalid > 0
),

invalid_samples as (
    select
        site_id,
        bucket_start,
        device_id,
        point_id,
        invalid_reason as rule,
        case
            when invalid_reason like '%range' then out_of_range_value
            else try_cast(invalid_raw_value as double)
        end as observed_value,
        case when invalid_reason like '%range' then violated_limit end as threshold,
        format(
            '{} of {} sample(s) invalid; raw value {}', n_invalid, n_samples, invalid_raw_value
        ) as detail
    from invalid_reasons
),

robust_inputs as (
    select
        point_buckets.site_id,
        point_buckets.bucket_start,
        point_buckets.device_id,
        point_buckets.point_id,
        point_buckets.value,
        points.mad_resolution,
        point_buckets.channel_class = 'weather'
        or coalesce(chiller_buckets.chiller_running, buckets.chiller_running) as window_state
    from point_buckets
    inner join buckets
        on
            point_buckets.site_id = buckets.site_id
            and point_buckets.bucket_start = buckets.bucket_start
    left join chiller_buckets
        on
            point_buckets.site_id = chiller_buckets.site_id
            and point_buckets.device_id = chiller_buckets.device_id
            and point_buckets.bucket_start = chiller_buckets.bucket_start
    inner join points on point_buckets.point_id = points.point_id
    anti join frozen
        on
            point_buckets.site_id = frozen.site_id
            and point_buckets.bucket_start = frozen.bucket_start
            and point_buckets.device_id = frozen.device_id
            and point_buckets.point_id = frozen.point_id
    where points.mad_check and point_buckets.value is not null
),

window_stats as (
    select
        *,
        median(value) over robust_window as window_median,
        greatest(mad(value) over robust_window, mad_resolution) as window_scale,
        count(value) over robust_window as window_count,
        count(value) over window_before as count_before
    from robust_inputs
    window
        robust_window as (
            partition by site_id, device_id, point_id, window_state
            order by bucket_start
            range between
            interval '{{ var("telemetry_mad_window_hours") * 30 }} minutes' preceding
            and interval '{{ var("telemetry_mad_window_hours") * 30 }} minutes' following
        ),
        window_before as (
            partition by site_id, device_id, point_id, window_state
            order by bucket_start
            range between
            interval '{{ var("telemetry_mad_window_hours") * 30 }} minutes' preceding
            and current row
        )
),

-- the half after the bucket: the whole window less the half before, plus the bucket itself
-- (counted in both halves; one row per bucket, its value not null)
robust_stats as (
    select
        *,
        window_count - count_before + 1 as count_after
    from window_stats
),

robust_outliers as (
    select
        site_id,
        bucket_start,
        device_id,
        point_id,
        'mad' as rule,
        value as observed_value,
        {{ var('telemetry_mad_z') }} as threshold,
        format(
            'modified z-score {:.2f}; median {:.4g}, max(MAD, resolution) {:.4g}, {} buckets',
            0.6745 * (value - window_median) / window_scale, window_median, window_scale,
            window_count
        ) as detail
    from robust_stats
    where
        window_count >= {{ var('telemetry_mad_min_samples') }}
        -- a near-symmetric window: each side holds at least this share of a half-window
        and least(count_before, count_after)
        >= {{ var('telemetry_mad_min_side_share') }}
        * {{ var('telemetry_mad_window_hours') }} * 30 / {{ var('telemetry_resample_minutes') }}
        and abs(0.6745 * (value - window_median) / window_scale) > {{ var('telemetry_mad_z') }}
),

unioned as (
    select * from invalid_samples
    union all
    select * from robust_outliers
)

select
    site_id,
    bucket_start,
    'OUTLIER' as flag,
    device_id,
    point_id,
    device_id || '.' || point_id as channel,
    rule,
    observed_value,
    threshold,
    detail,
    [device_id || '.' || point_id] as input_channels
from unioned
