"""The one DuckDB connection factory of the project."""

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
