{#- The batch's file inventory with what was found inside each file: the loader's outcome plus
    per-file counts of repeated header rows, bad timestamps, `???` cells, blanks and text. -#}
with

files as (
    select * from {{ ref('stg_telemetry_raw__files') }}
),

readings as (
    select * from {{ ref('stg_telemetry_raw__readings') }}
),

row_kinds as (
    select
        file_id,
        count(distinct source_line) filter (where row_kind = 'repeated_header')
            as repeated_header_rows,
        count(distinct source_line) filter (where row_kind = 'bad_timestamp')
            as bad_timestamp_rows,
        count(*) filter (where is_unreliable) as unreliable_cells,
        count(*) filter (where is_blank and row_kind = 'data') as blank_cells,
        count(*) filter (where is_unparseable and row_kind = 'data') as unparseable_cells,
        count(distinct raw_column) filter (where point_id is null) as unmapped_columns,
        min(reading_at) as first_reading_at,
        max(reading_at) as last_reading_at
    from readings
    group by file_id
),

-- rows in file order: a timestamp earlier than the row before it is out of order, an equal
-- one is a repeated timestamp (both are contract violations of the source, seed 001 §3.1)
row_times as (
    select distinct
        file_id,
        source_line,
        reading_at
    from readings
    where row_kind = 'data'
),

row_steps as (
    select
        file_id,
        reading_at,
        lag(reading_at) over (partition by file_id order by source_line) as previous_at
    from row_times
),

row_order as (
    select
        file_id,
        count(*) filter (where reading_at < previous_at) as out_of_order_rows,
        count(*) filter (where reading_at = previous_at) as repeated_timestamp_rows
    from row_steps
    group by file_id
),

inventory as (
    select
        files.batch_id,
        files.file_id,
        files.source_file,
        files.relative_path,
        files.site_id,
        files.size_bytes,
        files.sha256,
        files.modified_at,
        files.load_status,
        files.load_reason,
        files.rows_read,
        files.rows_rejected,
        row_kinds.first_reading_at,
        row_kinds.last_reading_at,
        coalesce(row_kinds.repeated_header_rows, 0) as repeated_header_rows,
        coalesce(row_kinds.bad_timestamp_rows, 0) as bad_timestamp_rows,
        coalesce(row_kinds.unreliable_cells, 0) as unreliable_cells,
        coalesce(row_kinds.blank_cells, 0) as blank_cells,
        coalesce(row_kinds.unparseable_cells, 0) as unparseable_cells,
        coalesce(row_kinds.unmapped_columns, 0) as unmapped_columns,
        coalesce(row_order.out_of_order_rows, 0) as out_of_order_rows,
        coalesce(row_order.repeated_timestamp_rows, 0) as repeated_timestamp_rows
    from files
    left join row_kinds on files.file_id = row_kinds.file_id
    left join row_order on files.file_id = row_order.file_id
)

select * from inventory
