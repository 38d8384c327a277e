{{ config(materialized='table') }}

{#- One row per CSV row read from the batch's loaded files, typed once: the timestamp with its
    offset or the site's zone, what kind of row it is, its cells as text and as doubles (in the
    order of the file's value columns, stg_telemetry_raw__file_columns), and how many of its
    cells are blank, text or carry the `???` marker. A table, not a view: the parsing runs once,
    and every per-cell model reads the cells from here (stg_telemetry_raw__readings). -#}
with

csv_rows as (
    select * from {{ source('telemetry_raw', 'csv_rows') }}
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

-- which of a file's value columns the point map names, in file order
mapped_columns as (
    select
        file_id,
        list(point_id is not null order by column_index) as is_mapped
    from {{ ref('stg_telemetry_raw__file_columns') }}
    group by file_id
),

typed as (
    select
        files.site_id,
        csv_rows.file_id,
        files.path as source_file,
        csv_rows.source_line,
        csv_rows.raw_timestamp,
        {{ parse_site_timestamp('csv_rows.raw_timestamp', 'sites.timezone') }} as reading_at,
        csv_rows.raw_values,
        list_transform(
            csv_rows.raw_values, lambda cell: {{ parse_reading_value('cell') }}
        ) as reading_values,
        mapped_columns.is_mapped
    from csv_rows
    inner join files on csv_rows.file_id = files.file_id
    inner join sites on files.site_id = sites.site_id
    inner join mapped_columns on csv_rows.file_id = mapped_columns.file_id
),

counted as (
    select
        * exclude (is_mapped),
        len(raw_values) as cell_count,
        len(list_filter(
            raw_values, lambda cell: {{ is_blank_cell('cell') }}
        )) as blank_cells,
        len(list_filter(is_mapped, lambda mapped: mapped)) as mapped_cells,
        len(list_filter(
            generate_series(1, len(raw_values)),
            lambda i: is_mapped[i] and {{ is_blank_cell('raw_values[i]') }}
        )) as mapped_blank_cells,
        len(list_filter(
            generate_series(1, len(raw_values)),
            lambda i: not {{ is_blank_cell('raw_values[i]') }} and reading_values[i] is null
        )) as text_cells,
        len(list_filter(
            raw_values, lambda cell: {{ is_unreliable_marker('cell') }}
        )) as unreliable_cells
    from typed
),

-- A row without a usable timestamp is a repeated header when most of its non-blank cells are
-- text (Metasys repeats the header, with unit labels, mid-file); else it is a row with a bad
-- timestamp.
classified as (
    select
        *,
        case
            when reading_at is not null then 'data'
            when text_cells * 2 > cell_count - blank_cells then 'repeated_header'
            else 'bad_timestamp'
        end as row_kind
    from counted
)

select * from classified
