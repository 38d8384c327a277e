{#- The canonical points as (point_id, column_name, site_aggregate) triples, read from the
    telemetry_points seed when the model compiles, so that the wide models' columns have one
    source of truth; `device_type` keeps only the points of that device type. Models that call
    it declare `-- depends_on: {{ ref('telemetry_points') }}`. -#}
{% macro telemetry_points(device_type=none) %}
    {%- set relation = ref('telemetry_points') -%}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set rows = run_query(
        "select point_id, column_name, site_aggregate from " ~ relation
        ~ (" where device_type = '" ~ device_type ~ "'" if device_type else "")
        ~ " order by point_id"
    ) -%}
    {{ return(rows.rows | map('list') | list) }}
{% endmacro %}

{#- The output grid, as an interval. -#}
{% macro resample_interval() -%}
    to_minutes(cast({{ var('telemetry_resample_minutes') }} as integer))
{%- endmacro %}
