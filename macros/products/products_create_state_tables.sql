{#- Tables the products sync owns, created before every run so that a bare `dbt build` works
    on a fresh warehouse:
    - products_raw.products_staging: the source rows, registered by the Python sync from an
      export folder or a PostgreSQL table (every column as text, typed by the staging model);
    - products.product_change_log and products.etl_watermark: written only inside the
      transaction of the `products` model (its pre- and post-hook), so that a batch's
      upsert, its change log and the watermark move together or not at all;
    - products.published_snapshots: the Parquet snapshots of `products` the sync committed to
      its output folder (one row per manifest that became current). -#}
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
        source_line bigint
    );
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
        changed_at timestamptz not null
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
{% endmacro %}

