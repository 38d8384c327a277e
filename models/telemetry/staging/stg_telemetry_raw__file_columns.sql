{#- One row per value column (every column but the timestamp) of each loaded file, in file
    order, with the device, canonical point and raw unit the site's point map gives it (NULL
    when the map does not name the column). column_index is the column's place in the file's
    raw_values lists (stg_telemetry_raw__csv_rows). -#}
with

files as (
    select
        file_id,
        site_id,
        value_columns
    from {{ source('telemetry_raw', 'files') }}
    where status in ('loaded', 'partial')
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

columns_in_order as (
    select
        file_id,
        site_id,
        unnest(value_columns) as raw_column,
        generate_subscripts(value_columns, 1) as column_index
    from files
),

mapped as (
    select
        columns_in_order.file_id,
        columns_in_order.site_id,
        columns_in_order.column_index,
        columns_in_order.raw_column,
        point_map.device_id,
        point_map.point_id,
        point_map.raw_unit
    from columns_in_order
    left join point_map
        on
            columns_in_order.site_id = point_map.site_id
            and columns_in_order.raw_column = point_map.raw_column
)

select * from mapped
