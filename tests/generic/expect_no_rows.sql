{#- The model must be empty: every row it returns is a failure (used with severity warn for
    report-style models such as unmapped columns). -#}
{% test expect_no_rows(model) %}
    select * from {{ model }}
{% endtest %}
