{#- Tables the papers pipeline owns, created before every run so that a bare `dbt build` works
    on a fresh warehouse:
    - papers_raw.paper_records: the source; `batch-processor papers …` replaces its rows with
      one batch's spool lines (one JSON record per line, from the Atom or JSON lines parser)
      before its dbt build;
    - papers.dynamodb_outbox: the DynamoDB sink's outbox, one row per (table, paper): pending
      until DynamoDB acknowledged the paper's current version. Rows are enqueued only inside
      the transaction of the `papers` model (its post-hook, papers_enqueue_for_dynamodb), so
      a stored paper and its pending delivery commit together; the sink (Python) only sends
      the pending items (model papers_dynamodb_items) and records each acknowledgement;
    - papers.published_batches: the batches whose Parquet manifest this warehouse committed
      (one row per manifest that became current): what proves a published batch ours. -#}
{% macro papers_create_state_tables() %}
    create schema if not exists papers_raw;
    create table if not exists papers_raw.paper_records (
        source_object varchar,
        line_number bigint,
        record varchar
    );
    create schema if not exists papers;
    create table if not exists papers.dynamodb_outbox (
        dynamodb_table varchar not null,
        paper_id varchar not null,
        paper_updated_at timestamptz not null,
        enqueued_by varchar not null,
        enqueued_at timestamptz not null,
        attempts integer not null,
        last_error varchar,
        acknowledged_at timestamptz,
        acknowledged_by varchar,
        primary key (dynamodb_table, paper_id)
    );
    create table if not exists papers.published_batches (
        batch_id varchar primary key,
        manifest_path varchar not null,
        published_at timestamptz not null
    );
{% endmacro %}


{#- The batch's timestamp: set by the Python entry points (the same value in the result JSON),
    or the run's start time for a bare `dbt build`. -#}
{% macro papers_batch_timestamp() %}
    {%- if var('papers_batch_timestamp') -%}
        {{ sql_string(var('papers_batch_timestamp')) }}::timestamptz
    {%- else -%}
        '{{ run_started_at.isoformat() }}'::timestamptz
    {%- endif -%}
{% endmacro %}
