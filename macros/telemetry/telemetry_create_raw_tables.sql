{#- The raw tables the telemetry loader fills and dbt reads as sources (schema telemetry_raw).
    They hold the current batch only: every load starts by emptying them; history is kept
    downstream, in dbt models. on-run-start creates them, so that a bare `dbt build` works on
    a fresh warehouse, and the Python loader runs this same body before it loads
    (raw_tables.py reads it from this file): keep it plain SQL, with no Jinja inside. -#}
{% macro telemetry_create_raw_tables() %}
    create schema if not exists telemetry_raw;
    create table if not exists telemetry_raw.files (
        batch_id varchar not null,
        file_id integer not null primary key,
        path varchar not null,
        relative_path varchar not null,
        site_id varchar,
        size_bytes bigint not null,
        sha256 varchar not null,
        modified_at timestamptz not null,
        status varchar not null,
        reason varchar,
        header_line integer,
        column_names varchar[],
        timestamp_column varchar,
        rows_read bigint,
        rows_rejected bigint,
        loaded_at timestamptz not null,
        physical_lines bigint,
        blank_data_lines bigint,
        line_endings varchar,
        lines_swallowed bigint,
        continuation_lines bigint,
        csv_delimiter varchar,
        value_columns varchar[]
    );
    -- warehouses made before the line ledger
    alter table telemetry_raw.files add column if not exists physical_lines bigint;
    alter table telemetry_raw.files add column if not exists blank_data_lines bigint;
    alter table telemetry_raw.files add column if not exists line_endings varchar;
    alter table telemetry_raw.files add column if not exists lines_swallowed bigint;
    alter table telemetry_raw.files add column if not exists continuation_lines bigint;
    alter table telemetry_raw.files add column if not exists csv_delimiter varchar;
    alter table telemetry_raw.files add column if not exists value_columns varchar[];
    -- one row per CSV row read: its cells as text, in the order of the file's value_columns
    -- (a row of cells, not a row per cell: the cells are unnested in dbt where they are used)
    create table if not exists telemetry_raw.csv_rows (
        file_id integer not null,
        source_line bigint not null,
        raw_timestamp varchar,
        raw_values varchar[] not null
    );
    -- earlier versions held one row per cell; the table held only the batch being loaded
    drop table if exists telemetry_raw.readings;
    create table if not exists telemetry_raw.rejected_rows (
        file_id integer not null,
        line bigint,
        column_name varchar,
        error_type varchar not null,
        csv_line varchar,
        error_message varchar not null
    );
{% endmacro %}
