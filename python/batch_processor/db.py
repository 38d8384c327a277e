"""The one DuckDB connection factory of the project, and how a path is handed to DuckDB."""

import glob
from pathlib import Path

import duckdb

WAREHOUSE_CATALOG = "warehouse"
"""The catalog name a warehouse file is attached under, here and in profiles.yml: the same
for every file, so relations are named alike in all warehouses (dbt's saved parse is shared)
and a file named after a schema (crm.duckdb) is never an ambiguous catalog."""


def connect(
    database: Path | str,
    *,
    memory_limit_mb: int | None = None,
    temp_directory: Path | None = None,
    read_only: bool = False,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (or ':memory:') with the session settings every caller relies on.

    A warehouse file is attached as ``WAREHOUSE_CATALOG`` and made the default catalog, as
    dbt's profile does. Timestamps are always handled in UTC; a memory limit makes DuckDB
    spill to ``temp_directory`` (default: ``<file>.tmp``, DuckDB's own default for a file)
    instead of growing without bound.
    """
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit_mb is not None:
        config["memory_limit"] = f"{memory_limit_mb}MB"
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    elif str(database) != ":memory:":
        config["temp_directory"] = f"{database}.tmp"
    if threads is not None:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        options = " (read_only)" if read_only else ""
        try:
            con.execute(f"attach ? as {WAREHOUSE_CATALOG}{options}", [str(database)])
        except BaseException:
            con.close()
            raise
        con.execute(f"use {WAREHOUSE_CATALOG}")
    # TimeZone needs ICU, which loads only once a connection exists.
    con.execute("set TimeZone = 'UTC'")
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second cursor of ``con`` on the same default catalog (a DuckDB cursor starts on the
    in-memory one: ``use`` is per cursor)."""
    second = con.cursor()
    catalog = con.execute("select current_database()").fetchall()[0][0]
    second.execute(f'use "{catalog}"')
    return second


def literal_path(path: Path | str) -> str:
    """``path`` as DuckDB's readers (read_csv, read_parquet, read_json) must receive it: they
    expand ``*``, ``?`` and ``[…]`` in a path as a glob, so a file named ``*.csv`` (or an output
    folder named ``out[1]``) would read every match. Each such character is bracketed
    (``[*]``), which matches only itself."""
    return glob.escape(str(path))
