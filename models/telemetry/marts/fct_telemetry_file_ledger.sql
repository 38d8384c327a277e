{{ config(materialized='table') }}

{#- Where every physical line and every value cell of each file of this batch went, in
    buckets that do not overlap, with whether they add up. Lines: header (and blank lines
    before it), blank, read as a row (or continuing a quoted cell of one), rejected by the
    CSV reader, swallowed by a quoting error (counted from the lines the loader measured
    itself), or set aside with the whole file.
    Cells (every non-timestamp cell of every row read): in a row without a usable timestamp
    (repeated header, bad timestamp), in a column the point map does not name, blank, an
    identical or conflicting repeat inside the file, superseded by another delivery, nulled
    as invalid (by reason), or kept. A file that does not balance fails the batch. -#}
with

files as (
    select
        *,
        load_status in ('loaded', 'partial') as was_read
    from {{ ref('stg_telemetry_raw__files') }}
),

csv_rows as (
    select * from {{ ref('stg_telemetry_raw__csv_rows') }}
),

cells as (
    select * from {{ ref('int_telemetry__cell_deliveries') }}
    where batch_id = '{{ invocation_id }}'
),

-- every row read has one cell per value column of its file, counted row by row
raw_cells as (
    select
        file_id,
        sum(cell_count) as cells_total,
        count(*) filter (where row_kind = 'data') as data_rows,
        count(*) filter (where row_kind = 'repeated_header') as repeated_header_rows,
        count(*) filter (where row_kind = 'bad_timestamp') as bad_timestamp_rows,
        sum(cell_count) filter (where row_kind != 'data') as cells_in_untimed_rows,
        sum(cell_count - mapped_cells) filter (where row_kind = 'data') as cells_unmapped,
        sum(mapped_blank_cells) filter (where row_kind = 'data') as cells_blank
    from csv_rows
    group by file_id
),

outcomes as (
    select
        file_id,
        count(*) filter (where outcome = 'kept') as cells_kept,
        count(*) filter (where outcome = 'superseded') as cells_superseded,
        count(*) filter (where outcome = 'duplicate_in_file') as cells_duplicate_in_file,
        count(*) filter (where outcome = 'conflict_lost') as cells_conflict_lost,
        count(*) filter (
            where outcome = 'nulled' and invalid_reason = 'sentinel'
        ) as cells_nulled_sentinel,
        count(*) filter (
            where outcome = 'nulled' and invalid_reason in ('below_range', 'above_range')
        ) as cells_nulled_out_of_range,
        count(*) filter (
            where outcome = 'nulled' and invalid_reason = 'unreliable_marker'
        ) as cells_nulled_unreliable,
        count(*) filter (
            where outcome = 'nulled' and invalid_reason = 'not_a_number'
        ) as cells_nulled_not_a_number
    from cells
    group by file_id
),

counted as (
    select
        files.batch_id,
        files.file_id,
        files.source_file,
        files.relative_path,
        files.site_id,
        files.load_status,
        files.physical_lines,
        coalesce(files.header_line, 0) as header_lines,
        files.was_read,
        cast(coalesce(raw_cells.cells_total, 0) as bigint) as cells_total,
        coalesce(raw_cells.data_rows, 0) as data_rows,
        coalesce(raw_cells.repeated_header_rows, 0) as repeated_header_rows,
        coalesce(raw_cells.bad_timestamp_rows, 0) as bad_timestamp_rows,
        cast(coalesce(raw_cells.cells_in_untimed_rows, 0) as bigint) as cells_in_untimed_rows,
        cast(coalesce(raw_cells.cells_unmapped, 0) as bigint) as cells_unmapped,
        cast(coalesce(raw_cells.cells_blank, 0) as bigint) as cells_blank,
        coalesce(outcomes.cells_duplicate_in_file, 0) as cells_duplicate_in_file,
        coalesce(outcomes.cells_conflict_lost, 0) as cells_conflict_lost,
        coalesce(outcomes.cells_superseded, 0) as cells_superseded,
        coalesce(outcomes.cells_nulled_sentinel, 0) as cells_nulled_sentinel,
        coalesce(outcomes.cells_nulled_out_of_range, 0) as cells_nulled_out_of_range,
        coalesce(outcomes.cells_nulled_unreliable, 0) as cells_nulled_unreliable,
        coalesce(outcomes.cells_nulled_not_a_number, 0) as cells_nulled_not_a_number,
        coalesce(outcomes.cells_kept, 0) as cells_kept,
        -- a file set aside whole puts all its lines after the header there
        case when files.was_read then files.blank_data_lines else 0 end as blank_lines,
        case when files.was_read then files.rows_read else 0 end as rows_read,
        case when files.was_read then files.continuation_lines else 0 end as continuation_lines,
        case when files.was_read then files.rows_rejected else 0 end as rows_rejected,
        case when files.was_read then files.lines_swallowed else 0 end as lines_swallowed,
        case
            when files.was_read then 0
            else greatest(files.physical_lines - coalesce(files.header_line, 0), 0)
        end as lines_set_aside
    from files
    left join raw_cells on files.file_id = raw_cells.file_id
    left join outcomes on files.file_id = outcomes.file_id
),

final as (
    select
        *,
        lines_swallowed >= 0
        and physical_lines
        = header_lines + blank_lines + rows_read + continuation_lines + rows_rejected
        + lines_swallowed + lines_set_aside as lines_balanced,
        rows_read = data_rows + repeated_header_rows + bad_timestamp_rows or not was_read
            as rows_balanced,
        cells_total
        = cells_in_untimed_rows + cells_unmapped + cells_blank + cells_duplicate_in_file
        + cells_conflict_lost + cells_superseded + cells_nulled_sentinel
        + cells_nulled_out_of_range + cells_nulled_unreliable + cells_nulled_not_a_number
        + cells_kept as cells_balanced
    from counted
)

select * from final
