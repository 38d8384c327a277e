{#- One row per raw cell of the batch, typed: the row's timestamp and kind
    (stg_telemetry_raw__csv_rows, parsed once per row), the value as a double, the device and
    canonical point its column maps to (NULL when unmapped). A view: the cells are unnested from
    the rows where they are used (the readings history takes the mapped ones), never written
    as a table of their own. -#}
with

csv_rows as (
    select * from {{ ref('stg_telemetry_raw__csv_rows') }}
),

file_columns as (
    select * from {{ ref('stg_telemetry_raw__file_columns') }}
),

cells as (
    select
        site_id,
        file_id,
        source_file,
        source_line,
        raw_timestamp,
        reading_at,
        row_kind,
        unnest(raw_values) as raw_value,
        unnest(reading_values) as reading_value,
        generate_subscripts(raw_values, 1) as column_index
    from csv_rows
),

final as (
    select
        cells.site_id,
        cells.file_id,
        cells.source_file,
        cells.source_line,
        file_columns.raw_column,
        file_columns.device_id,
        file_columns.point_id,
        file_columns.raw_unit,
        cells.raw_timestamp,
        cells.reading_at,
        cells.raw_value,
        cells.reading_value,
        {{ is_unreliable_marker('cells.raw_value') }} as is_unreliable,
        {{ is_blank_cell('cells.raw_value') }} as is_blank,
        cells.row_kind,
        not {{ is_blank_cell('cells.raw_value') }} and cells.reading_value is null
            as is_unparseable
    from cells
    inner join file_columns
        on cells.file_id = file_columns.file_id and cells.column_index = file_columns.column_index
)

select * from final
