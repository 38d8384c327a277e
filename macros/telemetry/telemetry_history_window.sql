{#- A filter on int_telemetry__readings_history that keeps only the sample times a batch can
    touch, written as constants so that DuckDB skips every row group of the history outside
    them (its min/max statistics): the cost of a batch then follows the months it touches,
    not the size of the history. The exact choice of rows is still made by the model's own
    joins; this only removes rows they would drop.

    telemetry_history_window(source, bounds_sql, column): bounds_sql is a query on the relation
    source returning one row (lo, hi) of timestamps; the filter keeps lo <= column < hi, and
    nothing when they are NULL (the batch touches nothing). At parse time, while source
    does not exist yet (a compile or a lint on a fresh warehouse), or in a unit test (source is
    a fixture CTE, with no schema), it is `true`. -#}
{% macro telemetry_history_window(source, bounds_sql, column='sample_at') -%}
    {%- if execute and source.schema is not none and load_relation(source) is not none -%}
        {%- set bounds = run_query(bounds_sql) -%}
        {%- set lo = bounds.columns[0].values()[0] -%}
        {%- set hi = bounds.columns[1].values()[0] -%}
        {%- if lo is not none and hi is not none -%}
            {{ column }} >= '{{ lo.isoformat() }}'::timestamptz
            and {{ column }} < '{{ hi.isoformat() }}'::timestamptz
        {%- else -%}
            false
        {%- endif -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}
