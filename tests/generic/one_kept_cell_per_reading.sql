{#- At most one kept (or nulled) cell per (site, reading time, device, point) in `model`, the
    merge's outcome per cell. Two such cells can only meet where more than one row of `rows`
    (the rows the cells come from) carries the same site and reading time, so only those
    readings are checked: the test reads the cells of a few rows, not every cell in scope. -#}
{% test one_kept_cell_per_reading(model, rows) %}
    with

    shared_readings as (
        select
            site_id,
            reading_at
        from {{ rows }}
        group by site_id, reading_at
        having count(*) > 1
    ),

    kept as (
        select
            cells.site_id,
            cells.reading_at,
            cells.device_id,
            cells.point_id
        from {{ model }} as cells
        semi join shared_readings
            on
                cells.site_id = shared_readings.site_id
                and cells.reading_at = shared_readings.reading_at
        where cells.outcome in ('kept', 'nulled')
    )

    select
        site_id,
        reading_at,
        device_id,
        point_id,
        count(*) as n_cells
    from kept
    group by site_id, reading_at, device_id, point_id
    having count(*) > 1
{% endtest %}
