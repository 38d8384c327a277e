{#- The relation of source `source_name`.`table_name` for a hook that *writes* that table (a
    pipeline's state: the products change log, watermark and synced rows, the papers
    outbox). `source()` in a hook would make the table an input of the model that writes it
    in the lineage graph; this looks the source up in the graph instead, so its schema is
    still defined once (the sources file) and the graph points from writer to written (the
    exposures name what the hooks write). -#}
{% macro state_table(source_name, table_name) %}
    {%- if not execute -%}
        {{ return(none) }}
    {%- endif -%}
    {%- set node = graph.sources.values()
        | selectattr('source_name', 'equalto', source_name)
        | selectattr('name', 'equalto', table_name)
        | first -%}
    {%- if node is none -%}
        {{ exceptions.raise_compiler_error("state_table: no source " ~ source_name ~ "." ~ table_name) }}
    {%- endif -%}
    {{ return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier)) }}
{% endmacro %}
