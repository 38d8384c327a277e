{#- The CRM source tables, created before every run so that a bare `dbt build` works on a
    fresh warehouse. A CRM task replaces a table's rows with the export file of its run
    (every column as text; typed by the staging models), each row tagged with the delivery
    it came from; crm_raw.deliveries records every export file the warehouse has taken in
    (its path, sha256, size and rows) and, once the task's dbt build succeeded, the batch
    that merged it: parity recomputes the marts from the merged deliveries. -#}
{% macro crm_create_source_tables() %}
    create schema if not exists crm_raw;
    create sequence if not exists crm_raw.delivery_ids;
    create table if not exists crm_raw.deliveries (
        delivery_id bigint primary key,
        table_name varchar not null,
        path varchar not null,
        sha256 varchar not null,
        size_bytes bigint not null,
        rows bigint not null,
        taken_at timestamptz not null,
        merged_batch_id varchar
    );
    alter table crm_raw.deliveries add column if not exists merged_batch_id varchar;
    create table if not exists crm_raw.customers (
        id varchar, first_name varchar, last_name varchar, email varchar
    );
    create table if not exists crm_raw.orders (
        id varchar, user_id varchar, order_date varchar, status varchar
    );
    create table if not exists crm_raw.payments (
        id varchar, order_id varchar, payment_method varchar, amount varchar
    );
    create table if not exists crm_raw.leads (
        id varchar, customer_id varchar, stage varchar, amount varchar, owner varchar,
        created_at varchar, qualified_at varchar, proposal_at varchar, closed_at varchar
    );
    {%- for table in ['customers', 'orders', 'payments', 'leads'] %}
        alter table crm_raw.{{ table }} add column if not exists delivery_id bigint;
    {%- endfor %}
{% endmacro %}
