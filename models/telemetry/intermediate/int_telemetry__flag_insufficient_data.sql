{#- INSUFFICIENT_DATA (domain reference §2.5): an empty bucket (a gap row made by the
    resampler), or a coverage of the required points below c_min, where c_min depends on how
    the site's raw interval compares with the resample interval. No value is interpolated,
    so the forward-fill rule of the reference has nothing to flag. -#}
with

buckets as (
    select * from {{ ref('int_telemetry__buckets') }}
),

limits as (
    select
        site_id,
        bucket_start,
        sample_count,
        coverage,
        case
            when raw_interval_s * 2 <= {{ var('telemetry_resample_minutes') }} * 60
                then {{ var('telemetry_coverage_min_oversampled') }}
            else {{ var('telemetry_coverage_min_native') }}
        end as minimum_coverage
    from buckets
)

select
    site_id,
    bucket_start,
    'INSUFFICIENT_DATA' as flag,
    cast(null as varchar) as device_id,
    cast(null as varchar) as point_id,
    'bucket' as channel,
    case when sample_count = 0 then 'empty_bucket' else 'low_coverage' end as rule,
    coverage as observed_value,
    minimum_coverage as threshold,
    format('{} raw sample(s); coverage of the required points {:.2f}', sample_count, coverage)
        as detail,
    cast([] as varchar[]) as input_channels
from limits
where sample_count = 0 or coalesce(coverage, 0) < minimum_coverage
