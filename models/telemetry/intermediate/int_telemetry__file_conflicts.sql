{#- Conflicting duplicates inside one file of this batch: the same reading (site, reading
    time, device, point) delivered on several lines with different values. They are not averaged: the last line
    wins, and the bucket's conflicting_cells says so in the published dataset. -#}
with

cells as (
    select * from {{ ref('int_telemetry__contested_cells') }}
    where batch_id = '{{ invocation_id }}'
),

conflicted as (
    select
        site_id,
        batch_id,
        file_id,
        reading_at,
        device_id,
        point_id
    from cells
    where outcome = 'conflict_lost'
),

grouped as (
    select
        cells.site_id,
        cells.file_id,
        any_value(cells.source_file) as source_file,
        cells.reading_at,
        cells.device_id,
        cells.point_id,
        list(cells.source_line order by cells.source_line) as source_lines,
        list(cells.raw_value order by cells.source_line) as raw_values,
        max(cells.source_line) as kept_line,
        arg_max(cells.raw_value, cells.source_line) as kept_value
    from cells
    semi join conflicted
        on
            cells.batch_id = conflicted.batch_id
            and cells.file_id = conflicted.file_id
            and cells.site_id = conflicted.site_id
            and cells.reading_at = conflicted.reading_at
            and cells.device_id = conflicted.device_id
            and cells.point_id = conflicted.point_id
    group by cells.site_id, cells.file_id, cells.reading_at, cells.device_id, cells.point_id
)

select * from grouped
