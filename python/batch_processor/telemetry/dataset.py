"""The telemetry output's partitions and facts about its Parquet files. The folder layout
and its commit are shared by every pipeline (``batch_processor.dataset_commit``):

<output>/data/site_id=<id>/year=<YYYY>/month=<MM>/part-<batch>-<n>-<uuid>.parquet
<output>/reports/batch_report_<YYYYMMDD>_<batch_id>.json
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from batch_processor.db import literal_path
from batch_processor.manifest_common import describe_partitioned_files, partition_values

PARTITION_KEYS = ("site_id", "year", "month")


def partition_of(relative: PurePosixPath) -> dict[str, str]:
    """``site_id=X/year=2026/month=06/f.parquet`` -> {site_id: X, year: 2026, month: 06}
    (decoded: DuckDB percent-encodes partition values in folder names)."""
    return partition_values(relative, PARTITION_KEYS)


FLAGS = "quality_flags_distribution"


def describe_files(base: Path, files: list[Path]) -> list[dict[str, Any]]:
    """Per file: path relative to ``base``, partition, rows, bytes, sha256, time range, and
    how many rows carry each quality flag (measured on the file itself)."""
    described = describe_partitioned_files(base, files, PARTITION_KEYS, range_column="timestamp")
    return with_flag_counts(str(base), described)


def with_flag_counts(base: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``entries`` with each file's flag counts, read from the files under ``base`` (a folder)
    that lack them (the entries of manifests written before files carried their counts)."""
    missing = [e for e in entries if FLAGS not in e]
    if not missing:
        return entries
    counts: dict[str, dict[str, int]] = {e["path"]: {} for e in missing}
    by_file = {f"{base.rstrip('/')}/{e['path']}": e["path"] for e in missing}
    con = duckdb.connect()
    try:
        for filename, flag, count in con.execute(
            "select filename, f, count(*) from read_parquet($files, filename = true, "
            "hive_partitioning = false), unnest(quality_flags) as t(f) group by all order by all",
            {"files": [literal_path(f) for f in by_file]},
        ).fetchall():
            counts[by_file[filename]][flag] = count
    finally:
        con.close()
    return [e if FLAGS in e else {**e, FLAGS: counts[e["path"]]} for e in entries]
