{#- Migrates a readings history written before devices were data (no device_id column, the
    two tower fans as the points tower_fan_a_* and tower_fan_b_*) in place, so that no stored
    delivery is lost: every row gets the device the site's point map names for its point (for
    the old fan a / fan b points, the first / second device mapping tower_fan_*, by
    device_id) and the point's current id. A row for which the map names no device, or
    several (a site given a second chiller before its history was migrated), stops the run
    with the sites and points concerned; nothing is changed then. Runs as the
    history model's pre-hook; a no-op once the column exists. -#}
{% macro telemetry_migrate_history_devices() %}
    {%- if not execute -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set existing = adapter.get_relation(
        database=this.database, schema=this.schema, identifier=this.identifier
    ) -%}
    {%- if existing is none -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set names = adapter.get_columns_in_relation(existing) | map(attribute='name')
        | map('lower') | list -%}
    {#- a history of one row per source row (cells) came after devices -#}
    {%- if 'device_id' in names or 'cells' in names -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set legacy_points -%}
        select point_id as legacy_point_id, point_id, 1 as ordinal, false as is_fan
        from {{ ref('telemetry_points') }}
        union all
        select
            replace(point_id, 'tower_fan_', 'tower_fan_' || fan || '_'),
            point_id,
            ordinal,
            true
        from {{ ref('telemetry_points') }}, (values ('a', 1), ('b', 2)) as fans (fan, ordinal)
        where device_type = 'tower_fan'
    {%- endset -%}
    {%- set migrated -%}
        select distinct
            history.site_id,
            history.point_id as legacy_point_id,
            legacy.point_id,
            mapped.device_id,
            coalesce(not legacy.is_fan and mapped.devices > 1, false) as is_ambiguous
        from (select distinct site_id, point_id from {{ this }}) as history
        left join ({{ legacy_points }}) as legacy on history.point_id = legacy.legacy_point_id
        left join (
            select
                site_id,
                point_id,
                device_id,
                row_number() over (partition by site_id, point_id order by device_id)
                    as ordinal,
                count(*) over (partition by site_id, point_id) as devices
            from {{ ref('telemetry_point_map') }}
        ) as mapped
            on
                history.site_id = mapped.site_id
                and legacy.point_id = mapped.point_id
                and legacy.ordinal = mapped.ordinal
    {%- endset -%}
    {%- set orphans = run_query(
        "select site_id, legacy_point_id from (" ~ migrated ~ ")"
        ~ " where device_id is null or is_ambiguous"
        ~ " order by all"
    ) -%}
    {%- if orphans.rows | length > 0 -%}
        {%- set orphan_names = [] -%}
        {%- for row in orphans.rows -%}
            {%- do orphan_names.append(row[0] ~ '/' ~ row[1]) -%}
        {%- endfor -%}
        {{ exceptions.raise_compiler_error(
            "The readings history " ~ this ~ " predates devices in the seeds, and the point map "
            ~ "names no single device for these (site/point) rows: " ~ orphan_names | join(', ')
            ~ ". Map each point of those sites to exactly one device in "
            ~ "seeds/telemetry_point_map.csv (the devices they had before) and rerun; nothing "
            ~ "was changed."
        ) }}
    {%- endif -%}
    {%- do log("Migrating " ~ this ~ ": adding device_id to the stored deliveries", info=true) -%}
    {%- call statement('telemetry_migrate_history_devices') -%}
        alter table {{ this }} add column device_id varchar;
        update {{ this }} as history
        set device_id = migrated.device_id, point_id = migrated.point_id
        from ({{ migrated }}) as migrated
        where
            history.site_id = migrated.site_id
            and history.point_id = migrated.legacy_point_id
    {%- endcall -%}
    {{ return('select 1') }}
{% endmacro %}
