{#- A raw cell as a double. The Metasys "unreliable" marker (`??? 80.564`) is stripped and the
    number kept (the marker is reported separately); on/off words map to 1/0; anything else
    that is not a number is NULL. A plain number (nearly every cell) is cast directly: the
    words and the marker are only looked for in what does not cast (same result, a fifth of
    the cost). -#}
{% macro parse_reading_value(raw_value) -%}
    coalesce(
        try_cast({{ raw_value }} as double),
        case
            when lower(trim({{ raw_value }})) in ('on', 'true', 'run', 'running') then 1.0
            when lower(trim({{ raw_value }})) in ('off', 'false', 'stop', 'stopped') then 0.0
            else try_cast(trim(regexp_replace({{ raw_value }}, '^\s*\?\?\?\s*', '')) as double)
        end
    )
{%- endmacro %}

{% macro is_unreliable_marker(raw_value) -%}
    coalesce(starts_with(ltrim({{ raw_value }}), '???'), false)
{%- endmacro %}

{#- A cell that delivers nothing: empty, only spaces, or NULL. -#}
{% macro is_blank_cell(raw_value) -%}
    coalesce(trim({{ raw_value }}), '') = ''
{%- endmacro %}
