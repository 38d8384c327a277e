{#- The relation of the `products` model as it is now (before this batch), or none on a fresh
    warehouse. Looked up from the graph so its schema is defined once (dbt_project.yml); read
    without ref() because the model that compares against it runs before it. -#}
{% macro products_current_relation() %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', 'products')
        | first -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
{% endmacro %}
