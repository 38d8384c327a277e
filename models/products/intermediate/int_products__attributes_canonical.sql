{#- The canonical attributes JSON of every batch row with valid JSON (rules: macro
    canonical_json_ctes). -#}
with recursive

batch as (
    select
        batch_row,
        attributes_text
    from {{ ref('int_products__batch') }}
    where attributes_text is not null and json_valid(attributes_text)
),

{{ canonical_json_ctes('batch', 'batch_row', 'attributes_text', var('products_json_max_depth')) }}

select
    batch_row,
    json_depth,
    canonical_json
from json_canonical
