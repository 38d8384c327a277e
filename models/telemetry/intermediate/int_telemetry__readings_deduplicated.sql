{{ config(materialized='table') }}

{#- One delivery per site and sample time. When several files deliver the same (site, sample
    time), the file that wins is the one modified last (a re-delivery corrects an earlier
    one), then the greatest relative path; all of the winner's cells for that time are kept.
    The rule is deterministic for a given set of files. -#}
with

readings as (
    select * from {{ ref('int_telemetry__readings_si') }}
),

ranked as (
    select
        *,
        dense_rank() over (
            partition by site_id, sample_at
            order by modified_at desc, relative_path desc
        ) as delivery_rank
    from readings
),

winners as (
    select * exclude (delivery_rank)
    from ranked
    where delivery_rank = 1
)

select * from winners
