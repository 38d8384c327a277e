{#- The papers, one row per paper_id, merged batch by batch: a record replaces the stored one
    only when it is newer; created_at is kept from the first load. With a DynamoDB sink the
    post-hook enqueues the batch's inserts and updates in the outbox inside this model's
    transaction: a paper is never stored without its pending delivery. -#}
{{
    config(
        materialized='incremental',
        incremental_strategy='merge',
        unique_key='paper_id',
        on_schema_change='fail',
        post_hook=['{{ papers_enqueue_for_dynamodb() }}'],
    )
}}

with

changes as (
    select * from {{ ref('int_papers__changes') }}
    where change_type in ('insert', 'update')
),

records as (
    select * from {{ ref('stg_papers__records') }}
),

winners as (
    select
        records.*,
        changes.old_created_at
    from changes
    inner join records
        on
            changes.source_object = records.source_object
            and changes.line_number = records.line_number
)

select
    paper_id,
    paper_version,
    'arxiv' as source,
    title,
    abstract,
    authors,
    published_at,
    source_updated_at,
    categories,
    primary_category,
    doi,
    raw_xml,
    source_object,
    {{ sql_string(var('papers_trace_id')) }} as trace_id,
    {{ papers_batch_timestamp() }} as batch_timestamp,
    'processed' as processing_status,
    coalesce(old_created_at, {{ papers_batch_timestamp() }}) as created_at,
    {{ papers_batch_timestamp() }} as updated_at
from winners
