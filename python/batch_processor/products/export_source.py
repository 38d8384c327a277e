"""Register a products export folder (CSV / JSON lines files) as the dbt source
``products_raw.products_staging``.

Each file is read by DuckDB on its own (no DataFrames), every column as text (typing is the
staging model's job), with its file and line as lineage. A file that cannot be read is set
aside with the reason; a line that cannot be parsed becomes a row without an id, which the
staging model reports as rejected with its file and line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from batch_processor.checksums import sha256_file
from batch_processor.db import literal_path
from batch_processor.source_tables import csv_header, select_list, table_columns

STAGING_TABLE = "products_raw.products_staging"
# The source table's columns are defined once, by the dbt macro products_create_state_tables;
# the loader reads them from the table. These two, last, are the loader's lineage.
LINEAGE_COLUMNS = ("source_file", "source_line")
REQUIRED_COLUMNS = frozenset({"id", "brand_code", "sku", "src_updated_at"})
EXPORT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


@dataclass(frozen=True)
class ExportFile:
    path: str
    size_bytes: int
    sha256: str
    rows: int
    rejected_lines: int  # CSV lines DuckDB could not parse (kept out, counted, first reason)
    status: str  # loaded | partial | rejected
    reason: str | None


def discover_exports(folder: Path) -> list[Path]:
    """Export files under ``folder``, in a stable order; hidden and ``_`` files are skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in EXPORT_SUFFIXES
        and not path.name.startswith((".", "_"))
    )


def staging_columns(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The data columns of the source table, in table order (lineage columns excluded)."""
    names = table_columns(con, *STAGING_TABLE.split("."))
    if names[-len(LINEAGE_COLUMNS) :] != LINEAGE_COLUMNS:
        raise RuntimeError(f"{STAGING_TABLE} must end with the lineage columns {LINEAGE_COLUMNS}")
    return names[: -len(LINEAGE_COLUMNS)]


def _load_one(
    con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...]
) -> tuple[int, int, str | None]:
    kind = EXPORT_SUFFIXES[path.suffix.lower()]
    if kind == "csv":
        present = csv_header(con, path)
        missing = REQUIRED_COLUMNS - present
        if missing:
            raise ValueError(f"missing required column(s): {', '.join(sorted(missing))}")
        reader = (
            "read_csv($path, header = true, all_varchar = true, null_padding = true, "
            "store_rejects = true) with ordinality"
        )
        line = "ordinality + 1"  # the header is line 1
    else:
        present = set(columns)
        reader = (
            "read_json($path, format = 'newline_delimited', columns = $columns, "
            "ignore_errors = true) with ordinality"
        )
        line = "ordinality"
    params: dict[str, Any] = {"path": literal_path(path)}
    if kind != "csv":
        params["columns"] = dict.fromkeys(columns, "VARCHAR")
    inserted = con.execute(
        f"insert into {STAGING_TABLE} select {select_list(columns, present)}, $path, {line} "
        f"from {reader}",
        params,
    ).fetchall()[0][0]
    bad_lines, first_error = 0, None
    if kind == "csv":
        bad_lines, first_error = con.execute(
            "select count(*), min('line ' || line || ': ' || error_message) from reject_errors"
        ).fetchall()[0]
    return int(inserted), int(bad_lines), first_error


def register_export(con: duckdb.DuckDBPyConnection, folder: Path) -> list[ExportFile]:
    """Replace the source table's rows with the export in ``folder``; one entry per file."""
    con.execute(f"delete from {STAGING_TABLE}")
    columns = staging_columns(con)
    inventory: list[ExportFile] = []
    for path in discover_exports(folder):
        size, digest = path.stat().st_size, sha256_file(path)
        con.execute("begin")
        try:
            rows, bad_lines, first_error = _load_one(con, path, columns)
        except (duckdb.Error, ValueError, UnicodeDecodeError) as error:
            con.execute("rollback")
            reason = str(error).strip().splitlines()[0]
            inventory.append(ExportFile(str(path), size, digest, 0, 0, "rejected", reason))
            continue
        con.execute("commit")
        status = "partial" if bad_lines else "loaded"
        inventory.append(ExportFile(str(path), size, digest, rows, bad_lines, status, first_error))
    return inventory
