{#- No DOUBLE column of the model holds |x| ≥ `threshold` (a sentinel such as 1e20 that got
    through). The columns are found from what the test reads (the model, or the part its
    `where` keeps), so new channels are covered too. -#}
{% test no_extreme_values(model, threshold=1e20) %}
    {%- set numeric = [] -%}
    {#- a relation that does not exist yet (a compile on a fresh warehouse) has no columns -#}
    {%- if execute and (model is string or load_relation(model) is not none) -%}
        {%- set described = run_query('describe select * from ' ~ model) -%}
        {%- for row in described.rows -%}
            {%- if row['column_type'] | upper in ('DOUBLE', 'FLOAT', 'REAL') -%}
                {%- do numeric.append(row['column_name']) -%}
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
