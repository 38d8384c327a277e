{#- The papers source table, created before every run so that a bare `dbt build` works on a
    fresh warehouse. `batch-processor papers …` replaces its rows with one batch's spool lines
    (one JSON record per line, from the Atom or JSON lines parser) before its dbt build. -#}
{% macro papers_create_state_tables() %}
    create schema if not exists papers_raw;
    create table if not exists papers_raw.paper_records (
        source_object varchar,
        line_number bigint,
        record varchar
    );
{% endmacro %}


{#- The batch's timestamp: set by the Python entry points (the same value in the result JSON),
    or the run's start time for a bare `dbt build`. -#}
{% macro papers_batch_timestamp() %}
    {%- if var('papers_batch_timestamp') -%}
        {{ sql_string(var('papers_batch_timestamp')) }}::timestamptz
    {%- else -%}
        '{{ run_started_at.isoformat() }}'::timestamptz
    {%- endif -%}
{% endmacro %}
