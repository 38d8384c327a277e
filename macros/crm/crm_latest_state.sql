{#- The body of an int_crm__<entity>_latest model: the latest delivered content of every id
    of an export, across all the deliveries the warehouse has taken in. Incremental, merged
    on `key`: a run writes the ids of this run's delivery that are new or whose content
    differs from the stored version (a column-by-column `is distinct from`); an id delivered
    again with the same content is a no-op. first_batch_id / first_delivery_id say when the
    id was first seen, batch_id / delivery_id which run and which delivery last changed it
    (the task counts inserted = first_batch_id is this run, updated = the others of this
    run). Identical duplicate rows of one delivery collapse; different ones are a conflict
    that the staging model's one_version_per_key test stops before this model runs. -#}
{% macro crm_latest_state(staging_model, key, columns) %}
    with

    delivered as (
        select distinct
            {{ key }},
            {%- for column in columns %}
                {{ column }},
            {%- endfor %}
            delivery_id
        from {{ ref(staging_model) }}
    ),

    existing as (
        {%- if is_incremental() %}
            select * from {{ this }}
        {%- else %}
            select
                *,
                delivery_id as first_delivery_id,
                '' as first_batch_id,
                '' as batch_id
            from delivered
            where false
        {%- endif %}
    ),

    changed as (
        select
            delivered.*,
            coalesce(existing.first_delivery_id, delivered.delivery_id) as first_delivery_id,
            coalesce(existing.first_batch_id, '{{ invocation_id }}') as first_batch_id,
            '{{ invocation_id }}' as batch_id
        from delivered
        left join existing on delivered.{{ key }} = existing.{{ key }}
        where
            existing.{{ key }} is null
            {%- for column in columns %}
                or delivered.{{ column }} is distinct from existing.{{ column }}
            {%- endfor %}
    )

    select * from changed
{% endmacro %}
