"""The layout of a published telemetry output folder, and facts about its Parquet files.

<output>/data/site_id=<id>/year=<YYYY>/month=<MM>/part-<batch>-<n>-<uuid>.parquet
<output>/manifests/manifest-<batch_id>.json      one per committed batch, never replaced
<output>/manifests/current.json                  the dataset, swapped atomically
<output>/reports/batch_report_<YYYYMMDD>_<batch_id>.json
<output>/.staging/<batch_id>/…                    a batch's files before the commit
<output>/.lock                                    one writer at a time
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import duckdb

from batch_processor.checksums import sha256_file

PARTITION_KEYS = ("site_id", "year", "month")


@dataclass(frozen=True)
class DatasetPaths:
    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def manifests(self) -> Path:
        return self.root / "manifests"

    @property
    def current(self) -> Path:
        return self.manifests / "current.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def staging_root(self) -> Path:
        return self.root / ".staging"

    def staging(self, batch_id: str) -> Path:
        return self.staging_root / batch_id

    def manifest(self, batch_id: str) -> Path:
        return self.manifests / f"manifest-{batch_id}.json"

    def make(self) -> None:
        for folder in (self.data, self.manifests, self.reports, self.staging_root):
            folder.mkdir(parents=True, exist_ok=True)


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


def parquet_schema(path: Path) -> dict[str, str]:
    """Column -> Parquet type of one file, e.g. ``INT64 TIMESTAMP(MICROS, UTC)``."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select name, type, converted_type, logical_type from parquet_schema($p)",
            {"p": str(path)},
        ).fetchall()
    finally:
        con.close()
    schema: dict[str, str] = {}
    for name, physical, converted, logical in rows[1:]:  # row 0 is the schema root
        if name in ("list", "element"):
            continue
        if converted == "LIST":
            schema[name] = "LIST<STRING>"
        elif logical and "Timestamp" in logical:
            unit = "MICROS" if "MICROS=MicroSeconds" in logical else "NANOS"
            utc = "UTC" if "isAdjustedToUTC=1" in logical else "local"
            schema[name] = f"{physical} TIMESTAMP({unit}, {utc})"
        else:
            schema[name] = str(physical)
    return schema
