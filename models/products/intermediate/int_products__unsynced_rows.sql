{#- Source rows behind the watermark of products_source_name that no committed batch ever
    took in: they arrived late (a timestamp older than rows synced before them). The sync
    reports them after its batches (count and ids); `--since` or `--no-resume` syncs them.
    A view, so that it answers for the state at the time it is read. -#}
{{ config(materialized='view') }}

with

source_rows as (
    select * from {{ ref('int_products__source_rows') }}
),

watermark as (
    select
        last_src_updated_at,
        last_id
    from {{ source('products_state', 'etl_watermark') }}
    where source_name = {{ sql_string(var('products_source_name')) }}
),

synced as (
    select
        source_id,
        src_updated_at
    from {{ source('products_state', 'synced_rows') }}
    where source_name = {{ sql_string(var('products_source_name')) }}
),

behind_watermark as (
    select source_rows.*
    from source_rows
    inner join watermark
        on
            source_rows.src_updated_at < watermark.last_src_updated_at
            or (
                source_rows.src_updated_at = watermark.last_src_updated_at
                and source_rows.source_id <= watermark.last_id
            )
)

select
    behind_watermark.source_id,
    behind_watermark.src_updated_at,
    behind_watermark.brand_code,
    behind_watermark.sku,
    behind_watermark.source_file,
    behind_watermark.source_line
from behind_watermark
anti join synced
    on
        behind_watermark.source_id = synced.source_id
        and behind_watermark.src_updated_at = synced.src_updated_at
