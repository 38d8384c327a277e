{#- No timestamp later than now + `tolerance_minutes` (data from the future is a clock or
    time zone error, and would leak into downstream features). -#}
{% test not_in_future(model, column_name, tolerance_minutes=5) %}
    select {{ column_name }} as future_value
    from {{ model }}
    where {{ column_name }} > now() + to_minutes(cast({{ tolerance_minutes }} as integer))
{% endtest %}
