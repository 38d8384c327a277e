"""The telemetry output's partitions and facts about its Parquet files. The folder layout
and its commit are shared by every pipeline (``batch_processor.dataset_commit``):

<output>/data/site_id=<id>/year=<YYYY>/month=<MM>/part-<batch>-<n>-<uuid>.parquet
<output>/reports/batch_report_<YYYYMMDD>_<batch_id>.json
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any

from batch_processor.manifest_common import describe_partitioned_files, partition_values

PARTITION_KEYS = ("site_id", "year", "month")


def partition_of(relative: PurePosixPath) -> dict[str, str]:
    """``site_id=X/year=2026/month=06/f.parquet`` -> {site_id: X, year: 2026, month: 06}
    (decoded: DuckDB percent-encodes partition values in folder names)."""
    return partition_values(relative, PARTITION_KEYS)


def describe_files(base: Path, files: list[Path]) -> list[dict[str, Any]]:
    """Per file: path relative to ``base``, partition, rows, bytes, sha256, time range."""
    return describe_partitioned_files(base, files, PARTITION_KEYS, range_column="timestamp")
