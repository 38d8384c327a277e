"""The one DuckDB connection factory of the project, and how a path is handed to DuckDB."""

import glob
from pathlib import Path

import duckdb


def connect(
    database: Path | str,
    *,
    memory_limit_mb: int | None = None,
    temp_directory: Path | None = None,
    read_only: bool = False,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse (or ':memory:') with the session settings every caller relies on.

    Timestamps are always handled in UTC; a memory limit makes DuckDB spill to
    ``temp_directory`` instead of growing without bound.
    """
    config: dict[str, str | bool | int | float | list[str]] = {}
    if memory_limit_mb is not None:
        config["memory_limit"] = f"{memory_limit_mb}MB"
    if temp_directory is not None:
        temp_directory.mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_directory)
    if threads is not None:
        config["threads"] = threads
    if str(database) != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(database), read_only=read_only, config=config)
    # TimeZone needs ICU, which loads only once a connection exists.
    con.execute("set TimeZone = 'UTC'")
    return con


def literal_path(path: Path | str) -> str:
    """``path`` as DuckDB's readers (read_csv, read_parquet, read_json) must receive it: they
    expand ``*``, ``?`` and ``[…]`` in a path as a glob, so a file named ``*.csv`` (or an output
    folder named ``out[1]``) would read every match. Each such character is bracketed
    (``[*]``), which matches only itself."""
    return glob.escape(str(path))
