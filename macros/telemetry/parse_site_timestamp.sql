{#- Parse a raw telemetry timestamp to timestamptz (UTC).
    - epoch seconds (9-10 digits, optional fraction), as per-point BMS exports write them;
    - ISO-8601 with an offset or Z (Metasys: 2018-05-01 00:00:00-05:00): the offset wins;
    - otherwise local wall time in the site's IANA zone (DST gaps and overlaps follow ICU).
    Anything else parses to NULL. -#}
{% macro parse_site_timestamp(raw_timestamp, site_timezone) -%}
    case
        when regexp_full_match(trim({{ raw_timestamp }}), '\d{9,10}(\.\d+)?')
            then to_timestamp(cast(trim({{ raw_timestamp }}) as double))
        when regexp_matches(
                trim({{ raw_timestamp }}),
                '\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|[+-]\d{2}(:?\d{2})?)$'
            )
            then try_cast(trim({{ raw_timestamp }}) as timestamptz)
        else timezone({{ site_timezone }}, try_cast(trim({{ raw_timestamp }}) as timestamp))
    end
{%- endmacro %}
