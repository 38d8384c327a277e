{#- The list column is sorted and has no repeated element. -#}
{% test list_sorted_distinct(model, column_name) %}
    select {{ column_name }} as list_value
    from {{ model }}
    where {{ column_name }} <> list_sort(list_distinct({{ column_name }}))
{% endtest %}
