{#- The items the DynamoDB sink still has to deliver: one per pending outbox row, the paper as
    it is stored now (a put replaces the whole item, so the newest version is what is sent),
    under the attribute names of the seed's Papers table (`published_date`, not
    `published_at`) with its timestamps as ISO 8601 UTC text. A view: read by the sink after
    the build, it reflects every acknowledgement recorded since. -#}
{{ config(materialized='view') }}

with

outbox as (
    select * from {{ source('papers_state', 'dynamodb_outbox') }}
    where acknowledged_at is null
),

papers as (
    select * from {{ ref('papers') }}
),

items as (
    select
        outbox.dynamodb_table,
        papers.paper_id,
        papers.source,
        papers.title,
        papers.abstract,
        papers.authors,
        {{ papers_iso_timestamp('papers.published_at') }} as published_date,
        papers.categories,
        papers.raw_xml,
        papers.trace_id,
        {{ papers_iso_timestamp('papers.batch_timestamp') }} as batch_timestamp,
        papers.processing_status,
        {{ papers_iso_timestamp('papers.created_at') }} as created_at,
        {{ papers_iso_timestamp('papers.updated_at') }} as updated_at,
        papers.paper_version,
        {{ papers_iso_timestamp('papers.source_updated_at') }} as source_updated_at,
        papers.primary_category,
        papers.doi,
        papers.source_object
    from outbox
    inner join papers on outbox.paper_id = papers.paper_id
)

select * from items
