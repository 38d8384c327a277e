{{ config(materialized='table') }}
-- depends_on: {{ ref('telemetry_points') }}

{#- One row per site, chiller (a device of type chiller in telemetry_devices) and bucket, the
    chiller's own points as columns (NULL where the site does not map them or no valid sample
    arrived), with its ratings and the operating state the physics flags are gated on:
    running (status, else power > a share of its rated power, else load) and steady (its
    chilled-water supply temperature moved less than a limit over a window). #}
with

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
    where device_type = 'chiller'
),

devices as (
    select * from {{ ref('telemetry_devices') }}
    where device_type = 'chiller'
),

pivoted as (
    select
        site_id,
        device_id,
        bucket_start,
        {% for point_id, column_name, site_aggregate in telemetry_points('chiller') -%}
            max(value) filter (where point_id = '{{ point_id }}') as {{ point_id }}
            {%- if not loop.last %},{% endif %}
        {% endfor %}
    from point_buckets
    group by site_id, device_id, bucket_start
),

with_state as (
    select
        pivoted.*,
        devices.rated_kw,
        devices.rated_cooling_kw,
        case
            when pivoted.chiller_status is not null then pivoted.chiller_status >= 0.5
            else
                coalesce(
                    pivoted.chiller_power
                    > {{ var('telemetry_running_power_fraction') }} * devices.rated_kw,
                    false
                )
                or coalesce(pivoted.chiller_load >= {{ var('telemetry_running_min_load') }}, false)
        end as chiller_running
    from pivoted
    inner join devices
        on pivoted.site_id = devices.site_id and pivoted.device_id = devices.device_id
),

final as (
    select
        *,
        coalesce(
            max(chw_supply_temp) over steady_window - min(chw_supply_temp) over steady_window
            < {{ var('telemetry_steady_max_delta_k') }},
            false
        ) as chiller_steady
    from with_state
    window steady_window as (
        partition by site_id, device_id
        order by bucket_start
        range between interval '{{ var("telemetry_steady_window_minutes") }} minutes' preceding
        and current row
    )
)

select * from final
