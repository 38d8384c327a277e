"""The raw telemetry tables the loader fills and dbt reads as sources (schema telemetry_raw).

They hold the current batch only: every load starts by emptying them. History is kept
downstream, in dbt models.
"""

import duckdb

RAW_SCHEMA = "telemetry_raw"

_DDL = f"""
create schema if not exists {RAW_SCHEMA};
create table if not exists {RAW_SCHEMA}.files (
    batch_id varchar not null,
    file_id integer not null primary key,
    path varchar not null,
    relative_path varchar not null,
    site_id varchar,
    size_bytes bigint not null,
    sha256 varchar not null,
    modified_at timestamptz not null,
    status varchar not null,
    reason varchar,
    header_line integer,
    column_names varchar[],
    timestamp_column varchar,
    rows_read bigint,
    rows_rejected bigint,
    loaded_at timestamptz not null,
    physical_lines bigint,
    blank_data_lines bigint,
    line_endings varchar,
    lines_swallowed bigint,
    continuation_lines bigint,
    csv_delimiter varchar
);
-- warehouses made before the line ledger
alter table {RAW_SCHEMA}.files add column if not exists physical_lines bigint;
alter table {RAW_SCHEMA}.files add column if not exists blank_data_lines bigint;
alter table {RAW_SCHEMA}.files add column if not exists line_endings varchar;
alter table {RAW_SCHEMA}.files add column if not exists lines_swallowed bigint;
alter table {RAW_SCHEMA}.files add column if not exists continuation_lines bigint;
alter table {RAW_SCHEMA}.files add column if not exists csv_delimiter varchar;
create table if not exists {RAW_SCHEMA}.readings (
    file_id integer not null,
    source_line bigint not null,
    raw_timestamp varchar,
    raw_column varchar not null,
    raw_value varchar
);
create table if not exists {RAW_SCHEMA}.rejected_rows (
    file_id integer not null,
    line bigint,
    column_name varchar,
    error_type varchar not null,
    csv_line varchar,
    error_message varchar not null
);
"""


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_DDL)


def clear_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the tables for a new batch (one transaction)."""
    con.execute("begin transaction")
    for table in ("readings", "rejected_rows", "files"):
        con.execute(f"delete from {RAW_SCHEMA}.{table}")
    con.execute("commit")
