{#- Every element of the list column `column_name` is one of `values`. -#}
{% test list_values_in(model, column_name, values) %}
    select {{ column_name }} as list_value
    from {{ model }}
    where
        len(list_filter(
            {{ column_name }},
            lambda x: x not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
        )) > 0
{% endtest %}
