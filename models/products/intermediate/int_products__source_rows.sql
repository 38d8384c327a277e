{#- One row per cursor (source_id, src_updated_at) of the source: the same row delivered
    again (a re-sent export next to the first one) is one row here, its extra copies counted
    in redelivered_copies; a cursor delivered with different contents is rejected, naming
    where each copy came from (which one is meant cannot be known). Rows without a usable
    cursor are not here: the sync reports them from staging. -#}
with

staged as (
    select * from {{ ref('stg_products__staging') }}
    where has_cursor
),

fingerprinted as (
    select
        *,
        -- to_json keeps nulls apart from empty and shifted values
        md5(
            to_json({
                'brand_code': brand_code,
                'sku': sku,
                'name': product_name,
                'price': price,
                'currency': currency,
                'attributes': attributes_text,
                'reject_reason': reject_reason
            })::varchar
        ) as content_hash
    from staged
),

per_cursor as (
    select
        source_id,
        src_updated_at,
        arg_min(fingerprinted, (source_file, source_line)) as first_copy,
        count(*) as copies,
        count(distinct content_hash) as versions,
        string_agg(
            source_file || ':' || source_line, ', ' order by source_file, source_line
        ) as copy_locations
    from fingerprinted
    group by source_id, src_updated_at
)

select
    per_cursor.source_id,
    per_cursor.src_updated_at,
    per_cursor.first_copy.brand_code,
    per_cursor.first_copy.sku,
    per_cursor.first_copy.product_name,
    per_cursor.first_copy.price,
    per_cursor.first_copy.currency,
    per_cursor.first_copy.attributes_text,
    per_cursor.first_copy.source_file,
    per_cursor.first_copy.source_line,
    per_cursor.copies - 1 as redelivered_copies,
    per_cursor.versions as content_versions,
    case
        when per_cursor.versions > 1
            then
                'id '
                || per_cursor.source_id
                || ' at '
                || per_cursor.src_updated_at::varchar
                || ' is delivered '
                || per_cursor.copies
                || ' times with '
                || per_cursor.versions
                || ' different contents: '
                || per_cursor.copy_locations
        else first_copy.reject_reason
    end as reject_reason,
    true as has_cursor
from per_cursor
