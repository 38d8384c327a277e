{#- Every data row of the batch that delivers at least one mapped, non-blank cell, with those
    cells in SI units, snapped to the site's raw grid, and why a cell is not a valid
    measurement when it is not: a sentinel code, NaN/inf or text, the `???` marker, or a value
    outside the point's physical range (limits scaled by its own device's rating). Invalid
    values become NULL here; the reason is kept for the OUTLIER flag. One row per source row,
    its cells a list (in the order of the file's columns): the cells are unnested only where
    they are used, never written one row each. -#}
{%- set rule_fields = [
    'device_id', 'point_id', 'channel_class', 'scale', 'offset', 'divisor', 'lower_limit',
    'upper_limit'
] %}

with

csv_rows as (
    select * from {{ ref('stg_telemetry_raw__csv_rows') }}
    where row_kind = 'data'
),

file_columns as (
    select * from {{ ref('stg_telemetry_raw__file_columns') }}
),

files as (
    select
        file_id,
        relative_path,
        modified_at
    from {{ ref('stg_telemetry_raw__files') }}
),

sites as (
    select * from {{ ref('telemetry_sites') }}
),

devices as (
    select * from {{ ref('telemetry_devices') }}
),

conversions as (
    select * from {{ ref('unit_conversions') }}
),

points as (
    select * from {{ ref('telemetry_points') }}
),

sentinels as (
    select raw_value from {{ ref('telemetry_sentinels') }}
),

device_ratings as (
    unpivot (
        select
            site_id,
            device_id,
            rated_kw,
            rated_cooling_kw,
            design_chw_flow_m3_s,
            design_cdw_flow_m3_s
        from devices
    )
    on columns(* exclude (site_id, device_id))
    into name rating value rating_value
),

sentinel_codes as (
    select list(raw_value) as sentinel_values from sentinels
),

-- what each mapped column needs to convert and check its cells (a column the seeds cannot
-- convert delivers nothing here, and its cells leave the file's ledger unbalanced)
column_rules as (
    select
        file_columns.file_id,
        file_columns.column_index,
        file_columns.device_id,
        file_columns.point_id,
        points.channel_class,
        conversions.scale,
        conversions.offset,
        case when conversions.divide_by_site_base_hz then sites.base_vfd_hz else 1 end
            as divisor,
        coalesce(points.range_min, ratings.rating_value * points.range_rating_min_factor)
            as lower_limit,
        coalesce(points.range_max, ratings.rating_value * points.range_rating_max_factor)
            as upper_limit
    from file_columns
    inner join sites on file_columns.site_id = sites.site_id
    inner join points on file_columns.point_id = points.point_id
    inner join conversions on file_columns.raw_unit = conversions.raw_unit
    left join device_ratings as ratings
        on
            file_columns.site_id = ratings.site_id
            and file_columns.device_id = ratings.device_id
            and points.range_rating = ratings.rating
),

-- the same per file, as lists indexed by a column's place in the file (NULL where the column
-- delivers nothing); a few rows per file, so the ordered lists cost nothing
file_rules as (
    select
        file_columns.file_id,
        {% for field in rule_fields -%}
            list(column_rules.{{ field }} order by file_columns.column_index)
                as {{ field }}_by_column
            {%- if not loop.last %},{% endif %}
        {% endfor %}
    from file_columns
    left join column_rules
        on
            file_columns.file_id = column_rules.file_id
            and file_columns.column_index = column_rules.column_index
    group by file_columns.file_id
),

rows_with_rules as (
    select
        csv_rows.site_id,
        csv_rows.file_id,
        csv_rows.source_file,
        csv_rows.source_line,
        csv_rows.reading_at,
        csv_rows.raw_values,
        csv_rows.reading_values,
        files.relative_path,
        files.modified_at,
        sites.raw_interval_s,
        sentinel_codes.sentinel_values,
        {% for field in rule_fields -%}
            file_rules.{{ field }}_by_column{% if not loop.last %},{% endif %}
        {% endfor %}
    from csv_rows
    inner join file_rules on csv_rows.file_id = file_rules.file_id
    inner join sites on csv_rows.site_id = sites.site_id
    inner join files on csv_rows.file_id = files.file_id
    cross join sentinel_codes
),

-- the columns whose cells deliver something (mapped and not blank), and their cells and
-- rules picked out once, so that every list below is indexed by the cell's place in the row
delivering as (
    select
        *,
        list_filter(
            generate_series(1, len(raw_values)),
            lambda i: point_id_by_column[i] is not null
            and not {{ is_blank_cell('raw_values[i]') }}
        ) as delivered
    from rows_with_rules
),

picked as (
    select
        site_id,
        file_id,
        source_file,
        source_line,
        reading_at,
        relative_path,
        modified_at,
        raw_interval_s,
        sentinel_values,
        len(delivered) as cell_count,
        list_select(raw_values, delivered) as raw_value_of_cell,
        list_select(reading_values, delivered) as reading_value_of_cell,
        {% for field in rule_fields -%}
            list_select({{ field }}_by_column, delivered) as {{ field }}_of_cell
            {%- if not loop.last %},{% endif %}
        {% endfor %}
    from delivering
    where len(delivered) > 0
),

converted as (
    select
        *,
        list_transform(
            generate_series(1, cell_count),
            lambda k: (reading_value_of_cell[k] * scale_of_cell[k] + offset_of_cell[k])
            / divisor_of_cell[k]
        ) as converted_value_of_cell
    from picked
),

validated as (
    select
        *,
        list_transform(
            generate_series(1, cell_count),
            lambda k: case
                when {{ is_unreliable_marker('raw_value_of_cell[k]') }} then 'unreliable_marker'
                when reading_value_of_cell[k] is null then 'not_a_number'
                when
                    isnan(reading_value_of_cell[k]) or isinf(reading_value_of_cell[k])
                    then 'not_a_number'
                when
                    list_contains(sentinel_values, reading_value_of_cell[k])
                    or abs(reading_value_of_cell[k]) >= {{ var('telemetry_sentinel_abs_min') }}
                    then 'sentinel'
                when converted_value_of_cell[k] < lower_limit_of_cell[k] then 'below_range'
                when converted_value_of_cell[k] > upper_limit_of_cell[k] then 'above_range'
            end
        ) as invalid_reason_of_cell
    from converted
),

final as (
    select
        site_id,
        -- jitter of up to half a raw interval lands on the right sample time
        time_bucket(
            to_seconds(raw_interval_s), reading_at + to_seconds(raw_interval_s / 2)
        ) as sample_at,
        reading_at,
        file_id,
        source_file,
        source_line,
        relative_path,
        modified_at,
        list_transform(
            generate_series(1, cell_count),
            lambda k: {
                'device_id': device_id_of_cell[k],
                'point_id': point_id_of_cell[k],
                'channel_class': channel_class_of_cell[k],
                'raw_value': raw_value_of_cell[k],
                'invalid_reason': invalid_reason_of_cell[k],
                'value_si': case
                    when invalid_reason_of_cell[k] is null then converted_value_of_cell[k]
                end,
                'violated_limit': case
                    when invalid_reason_of_cell[k] = 'below_range' then lower_limit_of_cell[k]
                    when invalid_reason_of_cell[k] = 'above_range' then upper_limit_of_cell[k]
                end,
                'out_of_range_value': case
                    when invalid_reason_of_cell[k] like '%range' then converted_value_of_cell[k]
                end
            }
        ) as cells
    from validated
)

select * from final
