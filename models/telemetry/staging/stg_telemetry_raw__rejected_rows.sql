with

source as (
    select * from {{ source('telemetry_raw', 'rejected_rows') }}
),

files as (
    select
        file_id,
        path,
        site_id
    from {{ source('telemetry_raw', 'files') }}
),

joined as (
    select
        source.file_id,
        files.path as source_file,
        files.site_id,
        source.line as source_line,
        source.column_name,
        source.error_type,
        source.csv_line,
        source.error_message
    from source
    inner join files on source.file_id = files.file_id
)

select * from joined
