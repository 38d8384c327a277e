{#- One row per source row, typed and normalized. A row that cannot be used keeps its first
    problem in reject_reason; a row without a usable cursor (id, src_updated_at) can never be
    batched and is reported by the sync. A price is kept only when decimal(18,4) holds it
    exactly: out of range or more than four decimal places is a reject, never a rounding. -#}
with

source as (
    select * from {{ source('products_raw', 'products_staging') }}
),

trimmed as (
    select
        try_cast(trim(id) as bigint) as source_id,
        try_cast(trim(src_updated_at) as timestamptz) as src_updated_at,
        nullif(upper(trim(brand_code)), '') as brand_code,
        nullif(trim(sku), '') as sku,
        nullif(regexp_replace(trim(name), '\s+', ' ', 'g'), '') as product_name,
        nullif(trim(price), '') as price_text,
        try_cast(nullif(trim(price), '') as decimal(18, 4)) as price,
        try_cast(nullif(trim(price), '') as decimal(38, 18)) as price_exact,
        try_cast(nullif(trim(price), '') as double) as price_number,
        nullif(upper(trim(currency)), '') as currency,
        nullif(trim(attributes), '') as attributes_text,
        id as raw_id,
        src_updated_at as raw_src_updated_at,
        source_file,
        source_line,
        load_error
    from source
),

checked as (
    select
        *,
        case
            when load_error is not null then 'the line could not be read: ' || load_error
            when source_id is null then 'id is not an integer: ' || coalesce(raw_id, 'NULL')
            when src_updated_at is null
                then 'src_updated_at is not a timestamp: ' || coalesce(raw_src_updated_at, 'NULL')
            when brand_code is null then 'brand_code is empty'
            when sku is null then 'sku is empty'
            when
                price_text is not null
                and (
                    price_number is null
                    or not isfinite(price_number)
                    or contains(price_text, '_')
                )
                then 'price is not a decimal: ' || price_text
            when price_text is not null and price is null
                then 'price is out of range for decimal(18,4): ' || price_text
            when
                price_exact <> price
                or regexp_matches(price_text, '^[+-]?[0-9]*\.[0-9]{4}[0-9]*[1-9]')
                then 'price has more than 4 decimal places (it would be rounded): ' || price_text
            when price < 0 then 'price is negative: ' || price_text
            when currency is not null and not regexp_full_match(currency, '[A-Z]{3}')
                then 'currency is not a 3-letter code: ' || currency
            when price is not null and currency is null then 'price has no currency'
            when attributes_text is not null and not json_valid(attributes_text)
                then 'attributes is not valid JSON'
        end as reject_reason
    from trimmed
)

select
    source_id,
    src_updated_at,
    brand_code,
    sku,
    product_name,
    price,
    currency,
    attributes_text,
    source_file,
    source_line,
    reject_reason,
    source_id is not null and src_updated_at is not null as has_cursor
from checked
