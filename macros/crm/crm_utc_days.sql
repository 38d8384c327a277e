{#- Calendar days from instant `start` to instant `finish`, counted between their UTC dates
    (a lead created 23:30 and closed 00:30 the next UTC day took 1 day). -#}
{% macro crm_utc_days(start, finish) -%}
    date_diff('day', cast(timezone('UTC', {{ start }}) as date), cast(timezone('UTC', {{ finish }}) as date))
{%- endmacro %}
