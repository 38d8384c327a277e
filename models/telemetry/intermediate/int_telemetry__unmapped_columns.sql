{#- Columns delivered by a site that its point map does not name: their values are not used.
    A report, tested with severity warn so that a new column in a site's export is noticed.
    Every data row of a file has one cell in each of its columns. -#}
with

file_columns as (
    select * from {{ ref('stg_telemetry_raw__file_columns') }}
    where point_id is null
),

data_rows as (
    select
        file_id,
        any_value(source_file) as source_file,
        count(*) as row_count
    from {{ ref('stg_telemetry_raw__csv_rows') }}
    where row_kind = 'data'
    group by file_id
),

unmapped as (
    select
        file_columns.site_id,
        file_columns.raw_column,
        count(*) as file_count,
        cast(sum(data_rows.row_count) as bigint) as cell_count,
        min(data_rows.source_file) as example_file
    from file_columns
    inner join data_rows on file_columns.file_id = data_rows.file_id
    group by file_columns.site_id, file_columns.raw_column
)

select * from unmapped
