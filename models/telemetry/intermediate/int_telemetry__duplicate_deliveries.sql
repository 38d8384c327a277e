{#- Per site: sample times delivered by more than one file, and the deliveries that lost. -#}
with

readings as (
    select
        site_id,
        sample_at,
        file_id
    from {{ ref('int_telemetry__readings_history') }}
    where batch_id = '{{ invocation_id }}'
),

deliveries as (
    select
        site_id,
        sample_at,
        count(distinct file_id) as delivering_files
    from readings
    group by site_id, sample_at
),

per_site as (
    select
        site_id,
        count(*) filter (where delivering_files > 1) as duplicated_samples,
        coalesce(sum(delivering_files - 1), 0) as dropped_deliveries
    from deliveries
    group by site_id
)

select * from per_site
