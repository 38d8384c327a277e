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

points as (
    select
        point_id,
        site_aggregate
    from {{ ref('telemetry_points') }}
),

-- each point's devices in device order, so that a rerun combines them in the same order
-- (bit-identical sums): one small sorted list per site, bucket and point
point_values as (
    select
        point_buckets.site_id,
        point_buckets.bucket_start,
        point_buckets.point_id,
        any_value(points.site_aggregate) as site_aggregate,
        count(point_buckets.value) = count(*) as every_device_has_a_value,
        list_sort(list({
            'device_id': point_buckets.device_id, 'value': point_buckets.value
        })) as device_values
    from point_buckets
    inner join points on point_buckets.point_id = points.point_id
    group by point_buckets.site_id, point_buckets.bucket_start, point_buckets.point_id
),

-- the site-level value: NULL unless every device of the point has one
site_values as (
    select
        site_id,
        bucket_start,
        point_id,
        case
            when not every_device_has_a_value then null
            when site_aggregate = 'sum'
                then list_sum(list_transform(device_values, lambda d: d['value']))
            when site_aggregate = 'avg'
                then list_avg(list_transform(device_values, lambda d: d['value']))
            when site_aggregate = 'max'
                then list_max(list_transform(device_values, lambda d: d['value']))
        end as site_value
    from point_values
),

pivoted_values as (
    select
        site_id,
        bucket_start,
        {% for point_id, column_name, site_aggregate in telemetry_points() -%}
            any_value(site_value) filter (where point_id = '{{ point_id }}') as {{ point_id }}
            {%- if not loop.last %},{% endif %}
        {% endfor %}
    from site_values
    group by site_id, bucket_start
),

bucket_counts as (
    select
        site_id,
        bucket_start,
        max(n_samples) as sample_count,
        cast(sum(n_conflicting) as bigint) as conflicting_cells,
        min(coverage) filter (where required_for_coverage) as required_coverage,
        min(coverage) as any_point_coverage
    from point_buckets
    group by site_id, bucket_start
),

pivoted as (
    select
        pivoted_values.*,
        bucket_counts.sample_count,
        bucket_counts.conflicting_cells,
        bucket_counts.required_coverage,
        bucket_counts.any_point_coverage
    from pivoted_values
    inner join bucket_counts
        on
            pivoted_values.site_id = bucket_counts.site_id
            and pivoted_values.bucket_start = bucket_counts.bucket_start
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
