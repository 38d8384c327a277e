{#- Bookkeeping the Python publisher shares with dbt (schema telemetry_meta), created before
    every run so that a bare `dbt build` works on a fresh warehouse:
    - committed_batches: batches whose manifest is the dataset's (the publisher adds a row
      after the commit point); history rows of any other batch are invisible and are
      deleted by the next run's reconciliation;
    - rebuild_partitions: (site, month) partitions to rebuild whatever the batch touches,
      recorded when a batch is rolled back;
    - loaded_seeds: the digest of the seed files a successful build loaded and tested (one
      row; Python's seed_state): while the files are unchanged, a batch skips the seeds and
      the tests that check only them. -#}
{% macro telemetry_create_meta_tables() %}
    create schema if not exists telemetry_meta;
    create table if not exists telemetry_meta.committed_batches (
        batch_id varchar primary key,
        committed_at timestamptz not null,
        manifest_path varchar not null
    );
    create table if not exists telemetry_meta.rebuild_partitions (
        site_id varchar not null,
        month_start timestamptz not null
    );
    create table if not exists telemetry_meta.loaded_seeds (
        digest varchar not null,
        loaded_at timestamptz not null
    );
{% endmacro %}
