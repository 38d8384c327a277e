{#- The next batch: at most products_batch_limit rows after the watermark, in cursor order.
    The cursor is the pair (src_updated_at, source_id), so rows that share a timestamp across
    a batch boundary are never skipped. -#}
with

staged as (
    select * from {{ ref('stg_products__staging') }}
),

watermark as (
    select
        last_src_updated_at,
        last_id
    from {{ source('products_state', 'etl_watermark') }}
    where
        source_name = {{ sql_string(var('products_source_name')) }}
        and {{ var("products_resume") }}
),

after_watermark as (
    select staged.*
    from staged
    left join watermark on true
    where
        staged.has_cursor
        and (
            watermark.last_id is null
            or staged.src_updated_at > watermark.last_src_updated_at
            or (
                staged.src_updated_at = watermark.last_src_updated_at
                and staged.source_id > watermark.last_id
            )
        )
),

next_rows as (
    select * from after_watermark
    order by src_updated_at, source_id
    limit {{ var("products_batch_limit") }}
)

select
    *,
    row_number() over (order by src_updated_at, source_id) as batch_row
from next_rows
