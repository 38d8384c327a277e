{#- `value` as a SQL string literal: single quotes doubled, so that a value (a source name,
    a trace id, a path) is data in the statement, never part of its syntax. The one way a
    model or macro inlines a text var. -#}
{% macro sql_string(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}
