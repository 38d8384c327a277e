{#- Source rows behind the watermark of products_source_name that a resumed sync would pass
    over without a word: rows no committed batch ever took in (they arrived late, with a
    timestamp older than rows synced before them), and cursors taken in before that are now
    delivered again with other contents (a conflict; `--since` rejects them with both
    places). The sync reports them after its batches (count, ids, reason); `--since` or
    `--no-resume` takes them in. A view, so that it answers for the moment it is read. -#}
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
        src_updated_at,
        content_versions
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
    behind_watermark.source_line,
    case
        when synced.source_id is null then 'arrived behind the watermark, never synced'
        else 'synced before, now delivered again with other contents'
    end as unsynced_reason
from behind_watermark
left join synced
    on
        behind_watermark.source_id = synced.source_id
        and behind_watermark.src_updated_at = synced.src_updated_at
where
    synced.source_id is null
    or behind_watermark.content_versions > synced.content_versions
