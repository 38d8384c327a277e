{#- Every row of the batch with its final reject reason, its canonical record and
    data_version, and its rank among the batch's rows of the same (brand_code, sku): the
    latest src_updated_at wins, then the highest id. -#}
with

batch as (
    select * from {{ ref('int_products__batch') }}
),

canonical as (
    select * from {{ ref('int_products__attributes_canonical') }}
),

checked as (
    select
        batch.*,
        coalesce(canonical.canonical_json, '{}') as attributes,
        coalesce(
            batch.reject_reason,
            case
                when canonical.duplicate_key_path is not null
                    then 'attributes holds a key more than once: ' || canonical.duplicate_key_path
                when canonical.json_depth is not null and canonical.canonical_json is null
                    then 'attributes nest deeper than {{ var("products_json_max_depth") }} levels'
                when
                    canonical.canonical_json is not null
                    and not starts_with(canonical.canonical_json, '{')
                    then 'attributes is not a JSON object'
            end
        ) as final_reject_reason
    from batch
    left join canonical on batch.batch_row = canonical.batch_row
),

versioned as (
    select
        *,
        -- json_object keeps its keys in the order given (sorted here); a null is JSON null
        json_object(
            'attributes', attributes::json,
            'brand_code', brand_code,
            'currency', currency,
            'name', product_name,
            'price', price::varchar,
            'sku', sku
        )::varchar as canonical_record
    from checked
),

ranked as (
    select
        *,
        sha256(canonical_record) as data_version,
        case
            when final_reject_reason is null
                then row_number() over (
                    partition by brand_code, sku, final_reject_reason is null
                    order by src_updated_at desc, source_id desc
                )
        end as key_rank
    from versioned
)

select
    batch_row,
    source_id,
    src_updated_at,
    brand_code,
    sku,
    product_name,
    price,
    currency,
    attributes,
    canonical_record,
    data_version,
    source_file,
    source_line,
    redelivered_copies,
    final_reject_reason as reject_reason,
    key_rank,
    final_reject_reason is null and key_rank = 1 as is_winner,
    final_reject_reason is null and key_rank > 1 as is_duplicate
from ranked
