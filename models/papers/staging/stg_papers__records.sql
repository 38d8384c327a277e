{#- One row per input record, typed and normalized. The arXiv id is split into the paper_id
    (`arxiv:2401.12345`, old style `arxiv:astro-ph/0601001`) and its version. A record that
    cannot be loaded keeps its first problem in reject_reason. -#}
{#- a table, not a view: the JSON is parsed once, not once per model and test reading it -#}
{{ config(materialized='table') }}
{%- set arxiv_id_pattern = '^(?:https?://(?:www\\.|export\\.)?arxiv\\.org/abs/|arxiv:)?'
    ~ '([a-z][a-z-]*(?:\\.[A-Za-z]{2})?/\\d{7}|\\d{4}\\.\\d{4,5})(?:v(\\d+))?$' %}
with

source as (
    select * from {{ source('papers_raw', 'paper_records') }}
),

validated as (
    select
        source_object,
        line_number,
        record,
        json_valid(record) as is_json
    from source
),

documents as (
    select
        *,
        case when is_json then record::json end as doc
    from validated
),

extracted as (
    -- one parse of each document for all the text fields (json_extract_string with a list)
    select
        source_object,
        line_number,
        is_json,
        coalesce(json_type(doc) = 'OBJECT', false) as is_object,
        json_extract_string(
            doc,
            [
                '$.id', '$.title', '$.abstract', '$.published', '$.updated',
                '$.primary_category', '$.doi', '$.raw_xml', '$.error'
            ]
        ) as texts,
        json_extract(doc, ['$.authors', '$.categories']) as lists,
        md5(record) as record_hash
    from documents
),

fields as (
    select
        source_object,
        line_number,
        is_json,
        is_object,
        trim(texts[1]) as raw_id,
        regexp_extract(trim(texts[1]), '{{ arxiv_id_pattern }}', 1) as identifier,
        regexp_extract(trim(texts[1]), '{{ arxiv_id_pattern }}', 2) as id_version,
        nullif(regexp_replace(trim(texts[2]), '\s+', ' ', 'g'), '') as title,
        nullif(regexp_replace(trim(texts[3]), '\s+', ' ', 'g'), '') as abstract,
        from_json(lists[1], '["VARCHAR"]') as authors,
        texts[4] as raw_published,
        try_cast(texts[4] as timestamptz) as published_at,
        try_cast(texts[5] as timestamptz) as source_updated_at,
        from_json(lists[2], '["VARCHAR"]') as categories,
        nullif(trim(texts[6]), '') as primary_category,
        nullif(trim(texts[7]), '') as doi,
        texts[8] as raw_xml,
        texts[9] as source_error,
        record_hash
    from extracted
),

checked as (
    select
        *,
        case
            when not is_json then 'not valid JSON'
            when not is_object then 'not a JSON object'
            when source_error is not null then source_error
            when coalesce(raw_id, '') = '' then 'entry has no id'
            when identifier = '' then 'id is not an arXiv id: ' || raw_id
            when title is null then 'entry has no title'
            when published_at is null
                then 'published is missing or not a timestamp: ' || coalesce(raw_published, 'NULL')
        end as reject_reason
    from fields
)

select
    source_object,
    line_number,
    raw_id,
    case when identifier != '' then 'arxiv:' || identifier end as paper_id,
    coalesce(nullif(id_version, '')::integer, 1) as paper_version,
    title,
    abstract,
    coalesce(authors, []) as authors,
    published_at,
    coalesce(source_updated_at, published_at) as source_updated_at,
    coalesce(categories, []) as categories,
    coalesce(primary_category, categories[1]) as primary_category,
    doi,
    raw_xml,
    record_hash,
    reject_reason
from checked
