{#- The next batch: at most products_batch_limit source rows after the batch's start, in
    cursor order. The cursor is the pair (src_updated_at, source_id), so rows that share a
    timestamp across a batch boundary are never skipped.

    The start is products_after_updated_at / products_after_id when the sync passes them
    (the previous batch's last cursor, or --since: every row at or after that time), else
    the stored watermark of products_source_name (products_resume), else the beginning. -#}
with

source_rows as (
    select * from {{ ref('int_products__source_rows') }}
),

stored_watermark as (
    select
        last_src_updated_at as after_updated_at,
        last_id as after_id
    from {{ source('products_state', 'etl_watermark') }}
    where
        source_name = {{ sql_string(var('products_source_name')) }}
        and {{ var('products_resume') }}
),

start as (
    {%- if var('products_after_updated_at') %}
        {%- set after_id = var('products_after_id') %}
        select
            {{ sql_string(var('products_after_updated_at')) }}::timestamptz
                as after_updated_at,
            {{ 'null' if after_id is none else sql_string(after_id | string) }}::bigint
                as after_id
    {%- else %}
        select
            after_updated_at,
            after_id
        from stored_watermark
    {%- endif %}
),

after_start as (
    select source_rows.*
    from source_rows
    left join start on true
    where
        start.after_updated_at is null
        or source_rows.src_updated_at > start.after_updated_at
        or (
            source_rows.src_updated_at = start.after_updated_at
            and (start.after_id is null or source_rows.source_id > start.after_id)
        )
),

next_rows as (
    select * from after_start
    order by src_updated_at, source_id
    limit {{ var("products_batch_limit") }}
)

select
    *,
    row_number() over (order by src_updated_at, source_id) as batch_row
from next_rows
