{#- HEAT_IMBALANCE (domain reference §2.2): first-law balance of each water-cooled chiller
    (every chiller device of the site, from its own temperatures, flows and power),
        HB% = 100 · (Q_cond − (Q_evap + W)) / (Q_evap + W)      (denominator: heat in),
    with Q = ρ · V̇ · c_p · ΔT and W the chiller's electric input (hermetic motor, η = 1).
    Evaluated only where it means something: chiller running and steady, condenser flow
    measured (a design flow is a guess, not a measurement), ΔT_evap and ΔT_cond above the
    limit where sensor error dominates, and load above the minimum. -#}
with

buckets as (
    select * from {{ ref('int_telemetry__chiller_buckets') }}
),

balance as (
    select
        buckets.site_id,
        buckets.device_id,
        buckets.bucket_start,
        buckets.chw_return_temp - buckets.chw_supply_temp as delta_t_evap,
        buckets.cdw_return_temp - buckets.cdw_supply_temp as delta_t_cond,
        {{ var('telemetry_water_density_kg_m3') }} * {{ var('telemetry_water_cp_j_kg_k') }}
        * buckets.chw_flow * (buckets.chw_return_temp - buckets.chw_supply_temp) / 1000.0
            as q_evap_kw,
        {{ var('telemetry_water_density_kg_m3') }} * {{ var('telemetry_water_cp_j_kg_k') }}
        * buckets.cdw_flow * (buckets.cdw_return_temp - buckets.cdw_supply_temp) / 1000.0
            as q_cond_kw,
        buckets.chiller_power as work_kw,
        buckets.rated_cooling_kw
    from buckets
    where
        buckets.chiller_running
        and buckets.chiller_steady
        and buckets.cdw_flow > 0
        and buckets.chw_flow > 0
        and buckets.chiller_power is not null
),

evaluable as (
    select
        *,
        100.0 * (q_cond_kw - (q_evap_kw + work_kw)) / (q_evap_kw + work_kw) as imbalance_pct
    from balance
    where
        delta_t_evap >= {{ var('telemetry_hb_min_delta_t_k') }}
        and delta_t_cond >= {{ var('telemetry_hb_min_delta_t_k') }}
        and q_evap_kw >= {{ var('telemetry_hb_min_load') }} * rated_cooling_kw
)

select
    site_id,
    bucket_start,
    'HEAT_IMBALANCE' as flag,
    device_id,
    cast(null as varchar) as point_id,
    device_id as channel,
    'first_law_balance' as rule,
    imbalance_pct as observed_value,
    {{ var('telemetry_hb_tolerance_pct') }} as threshold,
    format(
        'Q_evap {:.1f} kW + W {:.1f} kW vs Q_cond {:.1f} kW (ΔT evap {:.2f} K, cond {:.2f} K)',
        q_evap_kw, work_kw, q_cond_kw, delta_t_evap, delta_t_cond
    ) as detail,
    list_transform(
        [
            'chw_supply_temp', 'chw_return_temp', 'cdw_supply_temp', 'cdw_return_temp',
            'chw_flow', 'cdw_flow', 'chiller_power'
        ],
        lambda point: device_id || '.' || point
    ) as input_channels
from evaluable
where abs(imbalance_pct) > {{ var('telemetry_hb_tolerance_pct') }}
