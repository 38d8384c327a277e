{{ config(materialized='table') }}

{#- A table, not a view: a batch is tens of millions of cells, and the timestamp parsing must
    run once, not once per consumer and test.
    One row per raw cell of the batch, typed: the timestamp with its offset or the site's
    zone, the value as a double, the device and canonical point it maps to (NULL when unmapped), and what
    kind of source row it came from. -#}
with

readings as (
    select * from {{ source('telemetry_raw', 'readings') }}
),

files as (
    select
        file_id,
        path,
        site_id
    from {{ source('telemetry_raw', 'files') }}
    where status in ('loaded', 'partial')
),

sites as (
    select
        site_id,
        timezone
    from {{ ref('telemetry_sites') }}
),

point_map as (
    select
        site_id,
        raw_column,
        device_id,
        point_id,
        raw_unit
    from {{ ref('telemetry_point_map') }}
),

typed as (
    select
        files.site_id,
        readings.file_id,
        files.path as source_file,
        readings.source_line,
        readings.raw_column,
        readings.raw_timestamp,
        readings.raw_value,
        {{ parse_site_timestamp('readings.raw_timestamp', 'sites.timezone') }} as reading_at,
        {{ parse_reading_value('readings.raw_value') }} as reading_value,
        {{ is_unreliable_marker('readings.raw_value') }} as is_unreliable,
        coalesce(trim(readings.raw_value), '') = '' as is_blank
    from readings
    inner join files on readings.file_id = files.file_id
    inner join sites on files.site_id = sites.site_id
),

-- A source row without a usable timestamp is a repeated header when most of its non-blank
-- cells are text (Metasys repeats the header, with unit labels, mid-file); else it is a row
-- with a bad timestamp.
untimed_rows as (
    select
        file_id,
        source_line,
        count(*) filter (where not is_blank and reading_value is null) * 2
        > count(*) filter (where not is_blank) as looks_like_header
    from typed
    where reading_at is null
    group by file_id, source_line
),

classified as (
    select
        typed.site_id,
        typed.file_id,
        typed.source_file,
        typed.source_line,
        typed.raw_column,
        point_map.device_id,
        point_map.point_id,
        point_map.raw_unit,
        typed.raw_timestamp,
        typed.reading_at,
        typed.raw_value,
        typed.reading_value,
        typed.is_unreliable,
        typed.is_blank,
        case
            when typed.reading_at is not null then 'data'
            when untimed_rows.looks_like_header then 'repeated_header'
            else 'bad_timestamp'
        end as row_kind,
        not typed.is_blank and typed.reading_value is null as is_unparseable
    from typed
    left join point_map
        on typed.site_id = point_map.site_id and typed.raw_column = point_map.raw_column
    left join untimed_rows
        on typed.file_id = untimed_rows.file_id and typed.source_line = untimed_rows.source_line
)

select * from classified
