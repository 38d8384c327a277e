"""Register a folder of CRM exports (CSV) as the dbt sources ``crm_raw.*``.

One file per table: ``customers.csv``, ``orders.csv``, ``payments.csv``, ``leads.csv`` (the
jaffle-shop names ``raw_customers.csv`` … are accepted too). DuckDB reads each file
directly, every column as text; a column the file lacks is NULL, a missing required column
or file, or a file DuckDB cannot read (not UTF-8, broken quoting), is a clear error naming
the file. The table's columns are read from the table the dbt macro crm_create_source_tables
created (one definition).

Every file taken in is a *delivery*, recorded in ``crm_raw.deliveries`` (path, sha256, size,
rows) and stamped on its rows; the staging models see only this run's deliveries and the
``int_crm__*_latest`` models keep the latest content of every id across all of them. When the
task's dbt build succeeded, its deliveries are marked merged (``mark_merged``). A file whose
bytes a successful task merged before (the same export re-delivered, or a second task reading
the same folder) is not loaded again: the table is left empty for the run, so a replay can
never bring back an older version of a row. Bytes whose task failed or was killed before
merging them are loaded again by the next task that finds them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from batch_processor.checksums import sha256_file
from batch_processor.db import literal_path
from batch_processor.errors import ConfigError
from batch_processor.source_tables import csv_header, select_list, table_columns

SCHEMA = "crm_raw"
DELIVERIES = f"{SCHEMA}.deliveries"
LINEAGE_COLUMN = "delivery_id"
REQUIRED = {
    "customers": {"id"},
    "orders": {"id", "user_id", "order_date", "status"},
    "payments": {"id", "order_id", "payment_method", "amount"},
    "leads": {"id", "customer_id", "stage", "created_at"},
}


@dataclass(frozen=True)
class Delivery:
    """One export file a task took in (or found already taken in)."""

    table: str
    path: Path
    delivery_id: int
    rows: int
    already_taken_in: bool  # the same bytes were loaded before: not loaded again

    def as_dict(self) -> dict[str, object]:
        return {
            "table": self.table,
            "path": str(self.path),
            "delivery_id": self.delivery_id,
            "rows": self.rows,
            "already_taken_in": self.already_taken_in,
        }


def export_file(folder: Path, table: str) -> Path:
    for name in (f"{table}.csv", f"raw_{table}.csv"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"{folder}: no {table}.csv (or raw_{table}.csv) for crm_raw.{table}")


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:300]


def _load(con: duckdb.DuckDBPyConnection, table: str, path: Path, delivery_id: int) -> int:
    try:
        header = csv_header(con, path)
    except duckdb.Error as error:
        raise ConfigError(f"{path}: cannot be read as CSV: {_first_line(error)}") from error
    missing = REQUIRED[table] - header
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(sorted(missing))}")
    columns = tuple(c for c in table_columns(con, SCHEMA, table) if c != LINEAGE_COLUMN)
    try:
        count = con.execute(
            f"insert into {SCHEMA}.{table} ({', '.join(columns)}, {LINEAGE_COLUMN}) "
            f"select {select_list(columns, header)}, $delivery "
            "from read_csv($path, header = true, all_varchar = true)",
            {"path": literal_path(path), "delivery": delivery_id},
        ).fetchall()[0][0]
    except duckdb.Error as error:
        raise ConfigError(f"{path}: cannot be read as CSV: {_first_line(error)}") from error
    return int(count)


def register_tables(
    con: duckdb.DuckDBPyConnection, folder: Path, tables: list[str]
) -> list[Delivery]:
    """Replace the rows of ``crm_raw.<table>`` with ``folder``'s export, for each table, in one
    transaction, and record each file as a delivery; a file whose bytes were taken in before
    leaves its table empty. A file that changes while it is read is an error."""
    deliveries: list[Delivery] = []
    con.execute("begin")
    try:
        for table in tables:
            path = export_file(folder, table)
            digest, size = sha256_file(path), path.stat().st_size
            con.execute(f"delete from {SCHEMA}.{table}")
            known = con.execute(
                f"select delivery_id, rows, merged_batch_id is not null from {DELIVERIES} "
                "where table_name = $t and sha256 = $s "
                "order by merged_batch_id is null, delivery_id limit 1",
                {"t": table, "s": digest},
            ).fetchall()
            if known and known[0][2]:  # merged by a task that succeeded: nothing new in it
                deliveries.append(Delivery(table, path, int(known[0][0]), int(known[0][1]), True))
                continue
            # new bytes, or bytes whose task failed or was killed before merging them: load
            # them (again, under the same delivery id)
            delivery_id = int(
                known[0][0]
                if known
                else con.execute(f"select nextval('{SCHEMA}.delivery_ids')").fetchall()[0][0]
            )
            rows = _load(con, table, path, delivery_id)
            if sha256_file(path) != digest or path.stat().st_size != size:
                raise ConfigError(f"{path}: changed while reading (still being written?)")
            con.execute(
                f"insert or replace into {DELIVERIES} "
                "values ($id, $t, $p, $s, $b, $r, now(), null)",
                {
                    "id": delivery_id,
                    "t": table,
                    "p": str(path.absolute()),
                    "s": digest,
                    "b": size,
                    "r": rows,
                },
            )
            deliveries.append(Delivery(table, path, delivery_id, rows, False))
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")
    return deliveries


def mark_merged(con: duckdb.DuckDBPyConnection, deliveries: list[Delivery], batch_id: str) -> None:
    """Record that ``batch_id``'s successful build merged ``deliveries`` into the latest
    state: from now on the same bytes are not loaded again, and parity reads them."""
    fresh = [d.delivery_id for d in deliveries if not d.already_taken_in]
    if fresh:
        con.execute(
            f"update {DELIVERIES} set merged_batch_id = $b "
            "where delivery_id in (select unnest($ids::bigint[]))",
            {"b": batch_id, "ids": fresh},
        )
