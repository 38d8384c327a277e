{#- Tables the products sync owns, created before every run so that a bare `dbt build` works
    on a fresh warehouse:
    - products_raw.products_staging: the source rows, registered by the Python sync from an
      export folder or a PostgreSQL table (every column as text, typed by the staging model);
    - products.product_change_log, products.etl_watermark and products.synced_rows: written
      only inside the transaction of the `products` model (its pre- and post-hooks), so
      that a batch's upsert, its change log, the watermark and the record of the cursors it
      took in move together or not at all. synced_rows is how a row that arrives late,
      behind the watermark, is told apart from one synced before (int_products__unsynced_rows);
    - products.published_snapshots: the Parquet snapshots of `products` the sync committed to
      its output folder (one row per manifest that became current);
    - products.last_sync_input: the export the last sync took in whole (one row: its source
      name, the digest of its files and of the project, the watermark's batch it ended at,
      the files' inventory), written by the Python sync (products/unchanged_export.py), so
      that a sync of the same, unchanged export skips its dbt build. -#}
{% macro products_create_state_tables() %}
    create schema if not exists products_raw;
    create table if not exists products_raw.products_staging (
        id varchar,
        brand_code varchar,
        sku varchar,
        name varchar,
        price varchar,
        currency varchar,
        attributes varchar,
        src_updated_at varchar,
        source_file varchar,
        source_line bigint,
        load_error varchar
    );
    -- warehouses made before load_error existed (the loader needs it last)
    alter table products_raw.products_staging add column if not exists load_error varchar;
    create schema if not exists products;
    create table if not exists products.product_change_log (
        batch_id varchar not null,
        brand_code varchar not null,
        sku varchar not null,
        change_type varchar not null,
        old_data_version varchar,
        new_data_version varchar not null,
        changed_fields varchar[] not null,
        source_id bigint not null,
        src_updated_at timestamptz not null,
        changed_at timestamptz not null,
        changes struct(field varchar, path varchar, old_value json, new_value json)[]
    );
    alter table products.product_change_log add column if not exists
        changes struct(field varchar, path varchar, old_value json, new_value json)[];
    create table if not exists products.synced_rows (
        source_name varchar not null,
        source_id bigint not null,
        src_updated_at timestamptz not null,
        batch_id varchar not null,
        content_versions integer not null,
        primary key (source_name, source_id, src_updated_at)
    );
    create table if not exists products.etl_watermark (
        source_name varchar primary key,
        last_src_updated_at timestamptz not null,
        last_id bigint not null,
        batch_id varchar not null,
        updated_at timestamptz not null
    );
    create table if not exists products.published_snapshots (
        batch_id varchar primary key,
        manifest_path varchar not null,
        change_log_rows bigint not null,
        published_at timestamptz not null
    );
    create table if not exists products.last_sync_input (
        source_name varchar not null,
        export_digest varchar not null,
        watermark_batch_id varchar,
        files_json varchar not null,
        sync_id varchar not null,
        recorded_at timestamptz not null
    );
{% endmacro %}

