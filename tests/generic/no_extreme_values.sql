{#- No DOUBLE column of the model holds |x| ≥ `threshold` (a sentinel such as 1e20 that got
    through). The columns are found from the relation, so new channels are covered too. -#}
{% test no_extreme_values(model, threshold=1e20) %}
    {%- set numeric = [] -%}
    {%- if execute -%}
        {%- for column in adapter.get_columns_in_relation(model) -%}
            {%- if column.dtype | upper in ('DOUBLE', 'FLOAT', 'REAL') -%}
                {%- do numeric.append(column.name) -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endif %}
    {%- if numeric | length == 0 %}
        select null as column_name, null as extreme_value where false
    {%- else %}
        {%- for name in numeric %}
            select '{{ name }}' as column_name, "{{ name }}" as extreme_value
            from {{ model }}
            where abs("{{ name }}") >= {{ threshold }}
            {% if not loop.last %}union all{% endif %}
        {%- endfor %}
    {%- endif %}
{% endtest %}
