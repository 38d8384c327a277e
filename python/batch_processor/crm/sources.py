"""Register a folder of CRM exports (CSV) as the dbt sources ``crm_raw.*``.

One file per table: ``customers.csv``, ``orders.csv``, ``payments.csv``, ``leads.csv`` (the
jaffle-shop names ``raw_customers.csv`` … are accepted too). DuckDB reads each file
directly, every column as text; a column the file lacks is NULL, a missing required column
or file is a clear error. The table's columns are read from the table the dbt macro
crm_create_source_tables created (one definition)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from batch_processor.db import literal_path
from batch_processor.errors import ConfigError
from batch_processor.source_tables import csv_header, select_list, table_columns

SCHEMA = "crm_raw"
REQUIRED = {
    "customers": {"id"},
    "orders": {"id", "user_id", "order_date", "status"},
    "payments": {"id", "order_id", "payment_method", "amount"},
    "leads": {"id", "customer_id", "stage", "created_at"},
}


def export_file(folder: Path, table: str) -> Path:
    for name in (f"{table}.csv", f"raw_{table}.csv"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{folder}: no {table}.csv (or raw_{table}.csv) for crm_raw.{table}")


def register_tables(
    con: duckdb.DuckDBPyConnection, folder: Path, tables: list[str]
) -> dict[str, int]:
    """Replace the rows of ``crm_raw.<table>`` with ``folder``'s export, for each table, in one
    transaction; rows loaded per table."""
    loaded: dict[str, int] = {}
    con.execute("begin")
    try:
        for table in tables:
            path = export_file(folder, table)
            header = csv_header(con, path)
            missing = REQUIRED[table] - header
            if missing:
                raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
            select = select_list(table_columns(con, SCHEMA, table), header)
            con.execute(f"delete from {SCHEMA}.{table}")
            count = con.execute(
                f"insert into {SCHEMA}.{table} select {select} "
                "from read_csv(?, header = true, all_varchar = true)",
                [literal_path(path)],
            ).fetchall()[0][0]
            loaded[table] = int(count)
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    return loaded
