{#- AFFINITY_VIOLATION (domain reference §2.3) for each VFD device (pumps and tower fans),
    with speed fraction s and power P against P_ref = the device's rated power (s_ref = 1):
      R1 dead drive   — commanded on, s ≥ min speed, P ≤ a small share of P_ref;
      R2 ghost power  — s ≈ 0 but P ≥ a share of P_ref;
      R3 cube law     — within the speed band, |P / (P_ref · s³) − 1| > tol_P.
    A relative residual, not a fitted exponent (unstable near s = 1). -#}
{%- set devices = [
    ('chw_pump', 'chw_pump_speed', 'chw_pump_power', 'chw_pump_status', 'chw_pump_rated_kw'),
    ('cdw_pump', 'cdw_pump_speed', 'cdw_pump_power', 'cdw_pump_status', 'cdw_pump_rated_kw'),
    ('tower_fan_a', 'tower_fan_a_speed', 'tower_fan_a_power', 'null', 'tower_fan_rated_kw'),
    ('tower_fan_b', 'tower_fan_b_speed', 'tower_fan_b_power', 'null', 'tower_fan_rated_kw'),
] %}
with

buckets as (
    select * from {{ ref('int_telemetry__buckets') }}
),

sites as (
    select * from {{ ref('telemetry_sites') }}
),

device_buckets as (
    {% for device, speed, power, status, rating in devices %}
        select
            buckets.site_id,
            buckets.bucket_start,
            '{{ device }}' as device,
            '{{ speed }}' as speed_channel,
            '{{ power }}' as power_channel,
            buckets.{{ speed }} as speed,
            buckets.{{ power }} as power_kw,
            {% if status == 'null' -%}
                cast(null as double) as status,
            {%- else -%}
                buckets.{{ status }} as status,
            {%- endif %}
            sites.{{ rating }} as reference_kw
        from buckets
        inner join sites on buckets.site_id = sites.site_id
        where buckets.{{ speed }} is not null and buckets.{{ power }} is not null
        {% if not loop.last %}union all{% endif %}
    {% endfor %}
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
    device as channel,
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
    [speed_channel, power_channel] as input_channels
from rules
where rule is not null
