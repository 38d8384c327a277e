{{ config(materialized='table') }}
-- depends_on: {{ ref('telemetry_points') }}

{#- One row per site and bucket, every point as a column (NULL where the site does not map it
    or no valid sample arrived), with the bucket's coverage and the operating state the
    physics flags are gated on: running (status, else power > a share of rated, else load)
    and steady (chilled-water supply temperature moved less than a limit over a window). #}
with

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
),

sites as (
    select * from {{ ref('telemetry_sites') }}
),

pivoted as (
    select
        site_id,
        bucket_start,
        {% for point_id, column_name in telemetry_points() -%}
            max(value) filter (where point_id = '{{ point_id }}') as {{ point_id }},
        {% endfor -%}
        max(n_samples) as sample_count,
        cast(sum(n_conflicting) as bigint) as conflicting_cells,
        min(coverage) filter (where required_for_coverage) as required_coverage,
        min(coverage) as any_point_coverage
    from point_buckets
    group by site_id, bucket_start
),

with_state as (
    select
        pivoted.*,
        sites.raw_interval_s,
        coalesce(pivoted.required_coverage, pivoted.any_point_coverage) as coverage,
        case
            when pivoted.chiller_status is not null then pivoted.chiller_status >= 0.5
            else
                coalesce(
                    pivoted.chiller_power
                    > {{ var('telemetry_running_power_fraction') }} * sites.chiller_rated_kw,
                    false
                )
                or coalesce(pivoted.chiller_load >= {{ var('telemetry_running_min_load') }}, false)
        end as chiller_running
    from pivoted
    inner join sites on pivoted.site_id = sites.site_id
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
        partition by site_id
        order by bucket_start
        range between interval '{{ var("telemetry_steady_window_minutes") }} minutes' preceding
        and current row
    )
)

select * from final
