{#- The canonical attributes JSON of every batch row with valid JSON (rules: macro
    canonical_json_ctes), and the first key an object of it holds more than once (JSON text
    may repeat a key; which value counts is then a guess, so such a row is rejected). -#}
with recursive

batch as (
    select
        batch_row,
        attributes_text
    from {{ ref('int_products__batch') }}
    where attributes_text is not null and json_valid(attributes_text)
),

{{ canonical_json_ctes('batch', 'batch_row', 'attributes_text', var('products_json_max_depth')) }},

repeated_keys as (
    select
        row_key as batch_row,
        min(node_path) as duplicate_key_path
    from (
        select
            row_key,
            node_path
        from json_nodes
        where node_key is not null
        group by row_key, parent_id, node_key, node_path
        having count(*) > 1
    ) as repeated
    group by row_key
)

select
    json_canonical.batch_row,
    json_canonical.json_depth,
    json_canonical.canonical_json,
    repeated_keys.duplicate_key_path
from json_canonical
left join repeated_keys on json_canonical.batch_row = repeated_keys.batch_row
