{#- The `papers` model's post-hook (inside its transaction): with a DynamoDB sink (var
    papers_dynamodb_table), every paper the batch inserted or updated becomes pending for that
    table: a new row, or the paper's row made pending again for the new version (attempts
    and the acknowledgement reset). Without a sink it inserts nothing. -#}
{% macro papers_enqueue_for_dynamodb() %}
    insert into {{ state_table('papers_state', 'dynamodb_outbox') }} (
        dynamodb_table,
        paper_id,
        paper_updated_at,
        enqueued_by,
        enqueued_at,
        attempts,
        last_error,
        acknowledged_at,
        acknowledged_by
    )
    select
        {{ sql_string(var('papers_dynamodb_table')) }} as dynamodb_table,
        paper_id,
        {{ papers_batch_timestamp() }} as paper_updated_at,
        {{ sql_string(var('papers_trace_id')) }} as enqueued_by,
        now() as enqueued_at,
        0 as attempts,
        null as last_error,
        null as acknowledged_at,
        null as acknowledged_by
    from {{ ref('int_papers__changes') }}
    where
        change_type in ('insert', 'update')
        and {{ sql_string(var('papers_dynamodb_table')) }} != ''
    on conflict (dynamodb_table, paper_id) do update set
        paper_updated_at = excluded.paper_updated_at,
        enqueued_by = excluded.enqueued_by,
        enqueued_at = excluded.enqueued_at,
        attempts = 0,
        last_error = null,
        acknowledged_at = null,
        acknowledged_by = null
{% endmacro %}


{#- An ISO 8601 UTC text timestamp, as the seed's items carry them: 2024-01-15T00:00:00Z. -#}
{% macro papers_iso_timestamp(column) -%}
    strftime(timezone('UTC', {{ column }}), '%Y-%m-%dT%H:%M:%SZ')
{%- endmacro %}
