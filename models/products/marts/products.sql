{#- The product catalogue, one row per (brand_code, sku), merged batch by batch.

    One batch is one transaction: this model's pre-hook appends the batch's change log, its
    merge applies the inserts and updates, and its post-hooks move the watermark forward to
    the batch's last cursor and record the cursors the batch took in; dbt runs all of them
    between one BEGIN and COMMIT, so a failure anywhere rolls all of them back. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key=['brand_code', 'sku'],
        on_schema_change='fail',
        pre_hook=['{{ products_append_change_log() }}'],
        post_hook=[
            '{{ products_advance_watermark() }}',
            '{{ products_record_synced_rows() }}',
            '{{ products_fault_injection() }}',
        ],
    )
}}

-- depends_on: {{ ref('int_products__batch') }}

with

changes as (
    select * from {{ ref('int_products__changes') }}
    where change_type in ('insert', 'update')
)

select
    brand_code,
    sku,
    product_name as name,
    price,
    currency,
    attributes::json as attributes,
    data_version,
    source_id,
    src_updated_at,
    coalesce(old_created_at, now()) as created_at,
    now() as updated_at,
    '{{ invocation_id }}' as batch_id
from changes
