{#- The batch's file inventory with what was found inside each file: the loader's outcome plus
    per-file counts of repeated header rows, bad timestamps, `???` cells, blanks and text. -#}
with

files as (
    select * from {{ ref('stg_telemetry_raw__files') }}
),

csv_rows as (
    select * from {{ ref('stg_telemetry_raw__csv_rows') }}
),

unmapped_columns as (
    select
        file_id,
        count(*) filter (where point_id is null) as unmapped_columns
    from {{ ref('stg_telemetry_raw__file_columns') }}
    group by file_id
),

row_kinds as (
    select
        file_id,
        count(*) filter (where row_kind = 'repeated_header') as repeated_header_rows,
        count(*) filter (where row_kind = 'bad_timestamp') as bad_timestamp_rows,
        sum(unreliable_cells) as unreliable_cells,
        sum(blank_cells) filter (where row_kind = 'data') as blank_cells,
        sum(text_cells) filter (where row_kind = 'data') as unparseable_cells,
        min(reading_at) as first_reading_at,
        max(reading_at) as last_reading_at
    from csv_rows
    group by file_id
),

-- rows in file order: a timestamp earlier than the row before it is out of order, an equal
-- one is a repeated timestamp (both are contract violations of the source, seed 001 §3.1)
row_steps as (
    select
        file_id,
        reading_at,
        lag(reading_at) over (partition by file_id order by source_line) as previous_at
    from csv_rows
    where row_kind = 'data'
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
        cast(coalesce(row_kinds.unreliable_cells, 0) as bigint) as unreliable_cells,
        cast(coalesce(row_kinds.blank_cells, 0) as bigint) as blank_cells,
        cast(coalesce(row_kinds.unparseable_cells, 0) as bigint) as unparseable_cells,
        case
            when row_kinds.file_id is not null then unmapped_columns.unmapped_columns else 0
        end as unmapped_columns,
        coalesce(row_order.out_of_order_rows, 0) as out_of_order_rows,
        coalesce(row_order.repeated_timestamp_rows, 0) as repeated_timestamp_rows
    from files
    left join row_kinds on files.file_id = row_kinds.file_id
    left join unmapped_columns on files.file_id = unmapped_columns.file_id
    left join row_order on files.file_id = row_order.file_id
)

select * from inventory
