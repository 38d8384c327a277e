{#- The canonical points as (point_id, column_name) pairs, read from the telemetry_points seed
    when the model compiles, so that the wide models' columns have one source of truth. Models
    that call it declare `-- depends_on: {{ ref('telemetry_points') }}`. -#}
{% macro telemetry_points() %}
    {%- set relation = ref('telemetry_points') -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select point_id, column_name from " ~ relation ~ " order by point_id"
    ) -%}
    {{ return(rows.rows | map('list') | list) }}
{% endmacro %}

{#- The output grid, as an interval. -#}
{% macro resample_interval() -%}
    to_minutes(cast({{ var('telemetry_resample_minutes') }} as integer))
{%- endmacro %}
