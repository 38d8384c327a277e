{#- Within one delivery, an id may repeat only with identical content (an export that lists
    a row twice); two different versions of the same id in one file are a conflict nobody
    can resolve by order. Returns each conflicting id and how many versions it has, so the
    task's error names them. -#}
{% test one_version_per_key(model, column_name) %}
    select
        {{ column_name }} as conflicting_id,
        count(*) as versions
    from (select distinct * from {{ model }})
    group by {{ column_name }}
    having count(*) > 1
{% endtest %}
