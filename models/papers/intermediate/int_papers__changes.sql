{#- What the batch does to each paper, against `papers` as it is before the batch: insert
    (new paper_id), update (newer than the stored record: higher version, or the same
    version updated later), retry (the very version that is stored, which the batch's
    DynamoDB sink has not acknowledged yet: not stored again, but an upsert of this batch
    once the sink delivers it), not_newer (the stored record is as new or newer and, with a
    sink, delivered: skipped and counted as a duplicate across batches). -#}
{%- set current_papers = current_model_relation('papers') %}
with

winners as (
    select * from {{ ref('int_papers__deduplicated') }}
    where is_winner
),

current_papers as (
    {%- if current_papers is not none %}
        select
            paper_id,
            paper_version,
            source_updated_at,
            created_at
        from {{ current_papers }}
    {%- else %}
        select
            null::varchar as paper_id,
            null::integer as paper_version,
            null::timestamptz as source_updated_at,
            null::timestamptz as created_at
        where false
    {%- endif %}
),

pending_for_sink as (
    select paper_id from {{ source('papers_state', 'dynamodb_outbox') }}
    where
        dynamodb_table = {{ sql_string(var('papers_dynamodb_table')) }}
        and acknowledged_at is null
),

compared as (
    select
        winners.*,
        current_papers.created_at as old_created_at,
        case
            when current_papers.paper_id is null then 'insert'
            when winners.paper_version > current_papers.paper_version then 'update'
            when
                winners.paper_version = current_papers.paper_version
                and winners.source_updated_at > current_papers.source_updated_at
                then 'update'
            when
                pending_for_sink.paper_id is not null
                and winners.paper_version = current_papers.paper_version
                and winners.source_updated_at = current_papers.source_updated_at
                then 'retry'
            else 'not_newer'
        end as change_type
    from winners
    left join current_papers on winners.paper_id = current_papers.paper_id
    left join pending_for_sink on winners.paper_id = pending_for_sink.paper_id
)

select * from compared
