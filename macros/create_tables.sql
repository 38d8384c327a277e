{#- `dbt run-operation create_tables --args '{macro_name: <name>}'`: run one pipeline's
    table macro (the ones on-run-start calls, e.g. papers_create_state_tables) on its own and
    commit. The Python loaders call it through dbt_runner.ensure_tables before they load into
    a warehouse that lacks the tables. -#}
{% macro create_tables(macro_name) %}
    {% do run_query(context[macro_name]()) %}
    {% do adapter.commit() %}
{% endmacro %}
