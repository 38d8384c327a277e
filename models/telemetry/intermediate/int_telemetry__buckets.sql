{{ config(materialized='table') }}
-- depends_on: {{ ref('telemetry_points') }}

{#- One row per site and bucket, every point as a site-level column: the site's devices of the
    point's type combined as the points seed says (sum of power and flow, mean of
    temperatures and speeds, max of status), NULL where the site does not map the point or
    any of its devices of that type has no valid value in the bucket (a missing fan never
    reads as a lower total). With the bucket's coverage (the lowest over the required points
    of every device) and whether any chiller of the site runs. Per-device values are in
    int_telemetry__point_buckets and the per-chiller state in int_telemetry__chiller_buckets. #}
with

point_buckets as (
    select * from {{ ref('int_telemetry__point_buckets') }}
),

chiller_buckets as (
    select
        site_id,
        bucket_start,
        bool_or(chiller_running) as chiller_running
    from {{ ref('int_telemetry__chiller_buckets') }}
    group by site_id, bucket_start
),

sites as (
    select
        site_id,
        raw_interval_s
    from {{ ref('telemetry_sites') }}
),

pivoted as (
    select
        site_id,
        bucket_start,
        -- ordered, so that a rerun combines the devices in the same order (bit-identical sums)
        {% for point_id, column_name, site_aggregate in telemetry_points() -%}
            case
                when
                    count(value) filter (where point_id = '{{ point_id }}')
                    = count(*) filter (where point_id = '{{ point_id }}')
                    then
                        {{ site_aggregate }}(value order by device_id)
                        filter (where point_id = '{{ point_id }}')
            end as {{ point_id }},
        {% endfor -%}
        max(n_samples) as sample_count,
        cast(sum(n_conflicting) as bigint) as conflicting_cells,
        min(coverage) filter (where required_for_coverage) as required_coverage,
        min(coverage) as any_point_coverage
    from point_buckets
    group by site_id, bucket_start
),

final as (
    select
        pivoted.* exclude (pivoted.required_coverage, pivoted.any_point_coverage),
        sites.raw_interval_s,
        coalesce(pivoted.required_coverage, pivoted.any_point_coverage) as coverage,
        coalesce(chiller_buckets.chiller_running, false) as chiller_running
    from pivoted
    inner join sites on pivoted.site_id = sites.site_id
    left join chiller_buckets
        on
            pivoted.site_id = chiller_buckets.site_id
            and pivoted.bucket_start = chiller_buckets.bucket_start
)

select * from final
