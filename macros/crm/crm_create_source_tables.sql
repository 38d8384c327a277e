{#- The CRM source tables, created before every run so that a bare `dbt build` works on a
    fresh warehouse. The CRM tasks replace their rows with the export files of a run (every
    column as text; typed by the staging models). -#}
{% macro crm_create_source_tables() %}
    create schema if not exists crm_raw;
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
{% endmacro %}

