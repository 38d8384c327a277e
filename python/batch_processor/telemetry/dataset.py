"""The telemetry output's partitions and facts about its Parquet files. The folder layout
and its commit are shared by every pipeline (``batch_processor.dataset_commit``):

<output>/data/site_id=<id>/year=<YYYY>/month=<MM>/part-<batch>-<n>-<uuid>.parquet
<output>/reports/batch_report_<YYYYMMDD>_<batch_id>.json
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import duckdb

from batch_processor.checksums import sha256_file

PARTITION_KEYS = ("site_id", "year", "month")


def partition_of(relative: PurePosixPath) -> dict[str, str]:
    """``site_id=X/year=2026/month=06/f.parquet`` -> {site_id: X, year: 2026, month: 06}.

    DuckDB percent-encodes partition values in folder names (``ESB CH1`` -> ``ESB%20CH1``),
    as Hive readers expect; the manifest holds the decoded values."""
    values = {
        key: unquote(value)
        for key, value in (part.split("=", 1) for part in relative.parts[:-1] if "=" in part)
    }
    return {key: values[key] for key in PARTITION_KEYS}


def describe_files(base: Path, files: list[Path]) -> list[dict[str, Any]]:
    """Per file: path relative to ``base``, partition, rows, bytes, sha256, time range."""
    if not files:
        return []
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        ranges = {
            Path(name): (rows, first, last)
            for name, rows, first, last in con.execute(
                """
                select filename, count(*), min(timestamp), max(timestamp)
                from read_parquet($files, filename = true, hive_partitioning = false)
                group by filename
                """,
                {"files": [str(f) for f in files]},
            ).fetchall()
        }
    finally:
        con.close()
    described = []
    for path in sorted(files):
        relative = PurePosixPath(path.relative_to(base).as_posix())
        rows, first, last = ranges[path]
        described.append(
            {
                "path": str(relative),
                "partition": partition_of(relative),
                "rows": rows,
                "bytes": path.stat().st_size,
                "sha256": sha256_file(path),
                "min_timestamp": first.isoformat(),
                "max_timestamp": last.isoformat(),
            }
        )
    return described
