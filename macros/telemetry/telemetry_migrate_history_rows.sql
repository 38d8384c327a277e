{#- Migrates a readings history written one row per cell (before this version) in place to one
    row per delivered source row, its cells a list, so that no stored delivery is lost: the
    cells of each (batch, file, line) become one row (blank cells, which deliver nothing, are
    dropped). Batch by batch, so that memory stays bounded however long the history is; the
    old table is replaced in the same transaction. Runs as the history model's pre-hook, after
    telemetry_migrate_history_devices; a no-op once the history has the cells column. -#}
{% macro telemetry_migrate_history_rows() %}
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
    {%- if 'cells' in names -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set migrated = this.incorporate(path={'identifier': this.identifier ~ '__by_row'}) -%}
    {%- set batches = run_query('select distinct batch_id from ' ~ this ~ ' order by batch_id') -%}
    {%- do log("Migrating " ~ this ~ " to one row per source row: " ~ batches.rows | length
        ~ " batch(es)", info=true) -%}
    {%- call statement('telemetry_migrate_history_rows_create') -%}
        drop table if exists {{ migrated }};
        create table {{ migrated }} as
        select
            site_id, sample_at, reading_at, file_id, source_file, source_line, relative_path,
            modified_at,
            list({
                'device_id': device_id, 'point_id': point_id, 'channel_class': channel_class,
                'raw_value': raw_value, 'invalid_reason': invalid_reason, 'value_si': value_si,
                'violated_limit': violated_limit, 'out_of_range_value': out_of_range_value
            }) as cells,
            batch_id,
            loaded_at
        from {{ this }}
        where false
        group by all
    {%- endcall -%}
    {%- for batch in batches.rows -%}
        {%- call statement('telemetry_migrate_history_rows_' ~ loop.index) -%}
            insert into {{ migrated }}
            select
                site_id, sample_at, reading_at, file_id, source_file, source_line,
                relative_path, modified_at,
                list({
                    'device_id': device_id, 'point_id': point_id,
                    'channel_class': channel_class, 'raw_value': raw_value,
                    'invalid_reason': invalid_reason, 'value_si': value_si,
                    'violated_limit': violated_limit, 'out_of_range_value': out_of_range_value
                }) as cells,
                batch_id,
                loaded_at
            from {{ this }}
            where batch_id = {{ sql_string(batch[0]) }} and coalesce(trim(raw_value), '') != ''
            group by
                site_id, sample_at, reading_at, file_id, source_file, source_line,
                relative_path, modified_at, batch_id, loaded_at
        {%- endcall -%}
    {%- endfor -%}
    {%- call statement('telemetry_migrate_history_rows_swap') -%}
        drop table {{ this }};
        alter table {{ migrated }} rename to {{ this.identifier }}
    {%- endcall -%}
    {{ return('select 1') }}
{% endmacro %}
