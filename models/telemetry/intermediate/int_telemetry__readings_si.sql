{#- Every mapped data cell in SI units, snapped to the site's raw grid, with why it is not a
    valid measurement when it is not: a sentinel code, NaN/inf or text, the `???` marker, or a
    value outside the point's physical range (limits scaled by its own device's rating). Invalid values become NULL here; the reason is
    kept for the OUTLIER flag. -#}
with

readings as (
    select * from {{ ref('stg_telemetry_raw__readings') }}
    -- blank cells deliver nothing: the file ledger counts them, the merge never sees them
    where row_kind = 'data' and point_id is not null and not is_blank
),

files as (
    select
        file_id,
        relative_path,
        modified_at
    from {{ ref('stg_telemetry_raw__files') }}
),

sites as (
    select * from {{ ref('telemetry_sites') }}
),

devices as (
    select * from {{ ref('telemetry_devices') }}
),

device_ratings as (
    unpivot (
        select
            site_id,
            device_id,
            rated_kw,
            rated_cooling_kw,
            design_chw_flow_m3_s,
            design_cdw_flow_m3_s
        from devices
    )
    on columns(* exclude (site_id, device_id))
    into name rating value rating_value
),

conversions as (
    select * from {{ ref('unit_conversions') }}
),

points as (
    select * from {{ ref('telemetry_points') }}
),

sentinels as (
    select raw_value as sentinel_value from {{ ref('telemetry_sentinels') }}
),

converted as (
    select
        readings.site_id,
        readings.device_id,
        readings.point_id,
        points.channel_class,
        readings.reading_at,
        readings.file_id,
        readings.source_file,
        readings.source_line,
        files.relative_path,
        files.modified_at,
        readings.raw_value,
        readings.reading_value,
        readings.is_unreliable,
        readings.is_unparseable,
        sentinels.sentinel_value is not null as is_sentinel_code,
        -- jitter of up to half a raw interval lands on the right sample time
        time_bucket(
            to_seconds(sites.raw_interval_s),
            readings.reading_at + to_seconds(sites.raw_interval_s / 2)
        ) as sample_at,
        (readings.reading_value * conversions.scale + conversions.offset)
        / case when conversions.divide_by_site_base_hz then sites.base_vfd_hz else 1 end
            as converted_value,
        coalesce(points.range_min, ratings.rating_value * points.range_rating_min_factor)
            as lower_limit,
        coalesce(points.range_max, ratings.rating_value * points.range_rating_max_factor)
            as upper_limit
    from readings
    inner join sites on readings.site_id = sites.site_id
    inner join points on readings.point_id = points.point_id
    inner join {{ ref('telemetry_point_map') }} as point_map
        on readings.site_id = point_map.site_id and readings.raw_column = point_map.raw_column
    inner join conversions on point_map.raw_unit = conversions.raw_unit
    inner join files on readings.file_id = files.file_id
    left join device_ratings as ratings
        on
            readings.site_id = ratings.site_id
            and readings.device_id = ratings.device_id
            and points.range_rating = ratings.rating
    left join sentinels on readings.reading_value = sentinels.sentinel_value
),

validated as (
    select
        *,
        case
            when is_unreliable then 'unreliable_marker'
            when is_unparseable then 'not_a_number'
            when reading_value is null then null
            when isnan(reading_value) or isinf(reading_value) then 'not_a_number'
            when
                is_sentinel_code
                or abs(reading_value) >= {{ var('telemetry_sentinel_abs_min') }}
                then 'sentinel'
            when converted_value < lower_limit then 'below_range'
            when converted_value > upper_limit then 'above_range'
        end as invalid_reason
    from converted
),

final as (
    select
        site_id,
        device_id,
        point_id,
        channel_class,
        sample_at,
        reading_at,
        file_id,
        source_file,
        source_line,
        relative_path,
        modified_at,
        raw_value,
        invalid_reason,
        case when invalid_reason is null then converted_value end as value_si,
        case
            when invalid_reason = 'below_range' then lower_limit
            when invalid_reason = 'above_range' then upper_limit
        end as violated_limit,
        case when invalid_reason like '%range' then converted_value end as out_of_range_value
    from validated
)

select * from final
