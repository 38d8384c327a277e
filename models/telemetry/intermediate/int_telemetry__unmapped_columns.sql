{#- Columns delivered by a site that its point map does not name: their values are not used.
    A report, tested with severity warn so that a new column in a site's export is noticed. -#}
with

readings as (
    select * from {{ ref('stg_telemetry_raw__readings') }}
),

unmapped as (
    select
        site_id,
        raw_column,
        count(distinct file_id) as file_count,
        count(*) as cell_count,
        min(source_file) as example_file
    from readings
    where point_id is null and row_kind = 'data'
    group by site_id, raw_column
)

select * from unmapped
