{#- The relation of model `model_name` as it is now (before this run), or none on a fresh
    warehouse. Looked up from the graph so its schema is defined once (dbt_project.yml); read
    without ref() because the model that compares against it runs before it (products,
    papers: the change models compare a batch with the incremental mart it feeds). -#}
{% macro current_model_relation(model_name) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.nodes.values()
        | selectattr('resource_type', 'equalto', 'model')
        | selectattr('name', 'equalto', model_name)
        | first -%}
    {{ return(adapter.get_relation(database=node.database, schema=node.schema, identifier=node.alias)) }}
{% endmacro %}
