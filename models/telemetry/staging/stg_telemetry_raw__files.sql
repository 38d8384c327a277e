with

source as (
    select * from {{ source('telemetry_raw', 'files') }}
),

renamed as (
    select
        batch_id,
        file_id,
        path as source_file,
        relative_path,
        site_id,
        size_bytes,
        sha256,
        modified_at,
        status as load_status,
        reason as load_reason,
        header_line,
        column_names,
        timestamp_column,
        rows_read,
        rows_rejected,
        physical_lines,
        blank_data_lines,
        continuation_lines,
        lines_swallowed,
        line_endings,
        loaded_at
    from source
)

select * from renamed
