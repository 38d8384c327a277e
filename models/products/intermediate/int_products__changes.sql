{#- What the batch does to each key, against `products` as it is before the batch:
    insert (new key), update (data_version changed and the row is not older than the stored
    one), unchanged (same data_version: skipped), stale (changed but older than the stored
    row: skipped). Only insert and update rows are applied and logged.

    For an insert or an update, `changes` lists every value that differs, with the old and
    the new value as JSON: one entry per business field; for an update's attributes one per
    leaf of the canonical JSON (a scalar, or an empty array or object) under its JSON path,
    for an insert's the whole object under path `$`. -#}
{%- set current_products = current_model_relation('products') %}
with

winners as (
    select * from {{ ref('int_products__batch_records') }}
    where is_winner
),

current_products as (
    {%- if current_products is not none %}
        select
            brand_code,
            sku,
            name as product_name,
            price,
            currency,
            attributes::varchar as attributes,
            data_version,
            src_updated_at,
            created_at
        from {{ current_products }}
    {%- else %}
        select
            null::varchar as brand_code,
            null::varchar as sku,
            null::varchar as product_name,
            null::decimal(18, 4) as price,
            null::varchar as currency,
            null::varchar as attributes,
            null::varchar as data_version,
            null::timestamptz as src_updated_at,
            null::timestamptz as created_at
        where false
    {%- endif %}
),

compared as (
    select
        winners.*,
        current_products.data_version as old_data_version,
        current_products.created_at as old_created_at,
        case
            when current_products.sku is null then 'insert'
            when current_products.data_version = winners.data_version then 'unchanged'
            when winners.src_updated_at < current_products.src_updated_at then 'stale'
            else 'update'
        end as change_type,
        -- list_distinct drops the nulls; list_sort keeps the field names in one order
        list_sort(list_distinct(
            [
                case
                    when current_products.attributes is distinct from winners.attributes
                        then 'attributes'
                end,
                case when current_products.sku is null then 'brand_code' end,
                case
                    when current_products.currency is distinct from winners.currency
                        then 'currency'
                end,
                case
                    when current_products.product_name is distinct from winners.product_name
                        then 'name'
                end,
                case
                    when current_products.price is distinct from winners.price then 'price'
                end,
                case when current_products.sku is null then 'sku' end
            ]
        )) as changed_fields,
        current_products.product_name as old_product_name,
        current_products.price as old_price,
        current_products.currency as old_currency,
        current_products.attributes as old_attributes
    from winners
    left join current_products
        on winners.brand_code = current_products.brand_code and winners.sku = current_products.sku
),

applied as (
    select * from compared
    where change_type in ('insert', 'update')
),

field_values as (
    select
        brand_code,
        sku,
        unnest(['brand_code', 'sku', 'name', 'price', 'currency']) as field,
        unnest([
            case when change_type = 'update' then to_json(brand_code) end,
            case when change_type = 'update' then to_json(sku) end,
            to_json(old_product_name),
            to_json(old_price),
            to_json(old_currency)
        ]) as old_value,
        unnest([
            to_json(brand_code),
            to_json(sku),
            to_json(product_name),
            to_json(price),
            to_json(currency)
        ]) as new_value
    from applied
),

field_changes as (
    select
        brand_code,
        sku,
        field,
        field as change_path,
        old_value,
        new_value
    from field_values
    where old_value::varchar is distinct from new_value::varchar
),

-- the leaves of an update's old and new attributes, side by side in one scan
attribute_leaves as (
    select
        applied.brand_code,
        applied.sku,
        sides.side,
        leaf.fullkey as change_path,
        leaf.value as leaf_value
    from applied
    cross join (values ('old'), ('new')) as sides (side)
    cross join
        json_tree(
            case sides.side when 'old' then applied.old_attributes else applied.attributes end
        ) as leaf
    where
        applied.change_type = 'update'
        and (leaf.type not in ('OBJECT', 'ARRAY') or leaf.value::varchar in ('{}', '[]'))
        and leaf.fullkey <> '$'
),

attribute_values as (
    select
        brand_code,
        sku,
        change_path,
        any_value(leaf_value) filter (where side = 'old') as old_value,
        any_value(leaf_value) filter (where side = 'new') as new_value
    from attribute_leaves
    group by brand_code, sku, change_path
),

attribute_changes as (
    select
        brand_code,
        sku,
        'attributes' as field,
        change_path,
        old_value,
        new_value
    from attribute_values
    where old_value::varchar is distinct from new_value::varchar
),

inserted_attributes as (
    select
        brand_code,
        sku,
        'attributes' as field,
        '$' as change_path,
        null::json as old_value,
        attributes::json as new_value
    from applied
    where change_type = 'insert' and attributes <> '{}'
),

all_changes as (
    select * from field_changes
    union all
    select * from inserted_attributes
    union all
    select * from attribute_changes
),

changes_per_key as (
    select
        brand_code,
        sku,
        list(
            { 'field': field, 'path': change_path, 'old_value': old_value, 'new_value': new_value }
            order by field = 'attributes', field, change_path
        ) as changes
    from all_changes
    group by brand_code, sku
)

select
    compared.brand_code,
    compared.sku,
    compared.product_name,
    compared.price,
    compared.currency,
    compared.attributes,
    compared.data_version,
    compared.old_data_version,
    compared.change_type,
    compared.changed_fields,
    compared.source_id,
    compared.src_updated_at,
    compared.old_created_at,
    changes_per_key.changes
from compared
left join changes_per_key
    on compared.brand_code = changes_per_key.brand_code and compared.sku = changes_per_key.sku
