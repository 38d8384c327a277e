{#- The readings that count: per (site, sample time, device, point) the one cell the merge kept
    (int_telemetry__cell_deliveries: last line in a file, then the latest batch, file
    modification time, relative path), valid or nulled. -#}
with

cells as (
    select * from {{ ref('int_telemetry__cell_deliveries') }}
    where outcome in ('kept', 'nulled')
),

final as (
    select
        site_id,
        device_id,
        point_id,
        channel_class,
        sample_at,
        reading_at,
        batch_id,
        file_id,
        source_file,
        source_line,
        relative_path,
        modified_at,
        raw_value,
        invalid_reason,
        value_si,
        violated_limit,
        out_of_range_value,
        has_file_conflict
    from cells
)

select * from final
