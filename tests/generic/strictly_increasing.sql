{#- Within each `partition_by` group, `column_name` strictly increases (no repeats, no
    steps back) in the order of `column_name` itself — i.e. it is unique per group and,
    read in order, a series with no duplicates. Fails on each row equal to its predecessor. -#}
{% test strictly_increasing(model, column_name, partition_by) %}
    with ordered as (
        select
            {{ partition_by }} as series,
            {{ column_name }} as value,
            lag({{ column_name }}) over (
                partition by {{ partition_by }} order by {{ column_name }}
            ) as previous_value
        from {{ model }}
    )

    select *
    from ordered
    where previous_value is not null and value <= previous_value
{% endtest %}
