{#- What the batch does to each key, against `products` as it is before the batch:
    insert (new key), update (data_version changed and the row is not older than the stored
    one), unchanged (same data_version: skipped), stale (changed but older than the stored
    row: skipped). Only insert and update rows are applied and logged. -#}
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
        )) as changed_fields
    from winners
    left join current_products
        on winners.brand_code = current_products.brand_code and winners.sku = current_products.sku
)

select
    brand_code,
    sku,
    product_name,
    price,
    currency,
    attributes,
    data_version,
    old_data_version,
    change_type,
    changed_fields,
    source_id,
    src_updated_at,
    old_created_at
from compared
