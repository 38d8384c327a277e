"""Publish the `products` table as Parquet with a manifest, committed like telemetry's output
(``batch_processor.dataset_commit``): a full snapshot per sync that changed anything,
Hive-partitioned by brand_code.

<output>/data/brand_code=<code>/part-<sync_id>-<n>.parquet
<output>/manifests/manifest-<sync_id>.json, current.json

A snapshot is due when the change log holds rows the current manifest has not seen (so a sync
killed after its batches but before its publish is published by the next sync, even one
that finds nothing new). The previous snapshot's files are superseded at once and deleted one
commit later.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from batch_processor import db
from batch_processor.dataset_commit import (
    DatasetPaths,
    commit_files,
    read_current,
    remove_leftovers,
)
from batch_processor.manifest_common import (
    dbt_nodes,
    describe_partitioned_files,
    parquet_schema,
    schema_hash,
    tool_versions,
    with_checksum,
)

log = logging.getLogger(__name__)

MANIFEST_VERSION = "1.0"
PRODUCTS = "products.products"
CHANGE_LOG = "products.product_change_log"
SNAPSHOTS = "products.published_snapshots"
WATERMARK = "products.etl_watermark"
PARTITION_KEY = "brand_code"
MAX_FILE_SIZE = "256MB"  # a partition larger than this is split into several files


def _change_log_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"select count(*) from {CHANGE_LOG}").fetchall()[0][0])


def _adopt_current(paths: DatasetPaths, con: duckdb.DuckDBPyConnection) -> set[str]:
    """Record a current manifest the warehouse has not heard of (killed just after the commit
    point); the snapshots the warehouse knows as committed."""
    current = read_current(paths)
    if current is not None:
        con.execute(
            f"insert or ignore into {SNAPSHOTS} values ($b, $m, $n, now())",
            {
                "b": current["batch_id"],
                "m": str(paths.manifest(current["batch_id"])),
                "n": current["statistics"]["change_log_rows"],
            },
        )
    return {str(row[0]) for row in con.execute(f"select batch_id from {SNAPSHOTS}").fetchall()}


def _statistics(con: duckdb.DuckDBPyConnection, change_log_rows: int) -> dict[str, Any]:
    total, brands, first, last = con.execute(
        f"select count(*), count(distinct brand_code), min(src_updated_at), max(src_updated_at) "
        f"from {PRODUCTS}"
    ).fetchall()[0]
    per_currency = dict(
        con.execute(
            f"select coalesce(currency, 'none'), count(*) from {PRODUCTS} group by all order by 1"
        ).fetchall()
    )
    return {
        "total_rows": int(total),
        "brands": int(brands),
        "src_updated_at_range": [first.isoformat(), last.isoformat()] if first else None,
        "rows_per_currency": per_currency,
        "change_log_rows": change_log_rows,
    }


def _watermarks(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return [
        {"source_name": name, "last_src_updated_at": at.isoformat(), "last_id": last_id}
        for name, at, last_id in con.execute(
            f"select source_name, last_src_updated_at, last_id from {WATERMARK} order by 1"
        ).fetchall()
    ]


def publish_snapshot(
    warehouse: Path,
    output: Path,
    *,
    sync_id: str,
    source: str,
    totals: dict[str, int],
    dbt_runs: list[tuple[str | None, Path]],
) -> Path | None:
    """Commit a snapshot of `products` if the warehouse changed since the current one; the
    new manifest's path, or None when the published snapshot is still up to date.
    ``dbt_runs``: (invocation id, target path) of each batch this sync ran."""
    paths = DatasetPaths(output)
    con = db.connect(warehouse)
    try:
        committed = _adopt_current(paths, con)
        removed = remove_leftovers(paths, lambda batch: batch in committed)
        if removed:
            log.warning("removed %d leftover(s) of an interrupted publish", len(removed))
        change_log_rows = _change_log_rows(con)
        previous = read_current(paths)
        if previous is not None and previous["statistics"]["change_log_rows"] == change_log_rows:
            return None
        staging = paths.staging(sync_id)
        staging.mkdir(parents=True, exist_ok=True)
        quoted = str(staging).replace("'", "''")
        con.execute(
            f"copy (select * from {PRODUCTS} order by brand_code, sku) to '{quoted}' "
            f"(format parquet, partition_by ({PARTITION_KEY}), "
            f"filename_pattern 'part-{sync_id}-{{i}}', file_size_bytes '{MAX_FILE_SIZE}')"
        )
        staged = sorted(staging.rglob("*.parquet"))
        output_files = describe_partitioned_files(staging, staged, (PARTITION_KEY,))
        schema = parquet_schema(staged[0]) if staged else {}
        manifest = with_checksum(
            {
                "manifest_version": MANIFEST_VERSION,
                "dataset": "products",
                "batch_id": sync_id,
                "created_at": datetime.now(UTC).isoformat(),
                "versions": tool_versions(),
                "source": source,
                "sync_totals": totals,
                "watermarks": _watermarks(con),
                "output_files": output_files,
                "dataset_files": output_files,
                "superseded_files": previous["dataset_files"] if previous else [],
                "statistics": _statistics(con, change_log_rows),
                "dbt": {
                    "invocations": [
                        {"invocation_id": invocation, "nodes": dbt_nodes(target, con)}
                        for invocation, target in dbt_runs
                    ]
                },
                "schema": schema,
                "schema_hash": schema_hash(schema),
            }
        )
    finally:
        con.close()

    def record(manifest_path: Path) -> None:
        con = db.connect(warehouse)
        try:
            con.execute(
                f"insert or ignore into {SNAPSHOTS} values ($b, $m, $n, now())",
                {"b": sync_id, "m": str(manifest_path), "n": change_log_rows},
            )
        finally:
            con.close()

    manifest_path = commit_files(paths, sync_id, manifest, previous, after_commit=record)
    log.info("published products snapshot %s: %d file(s)", sync_id, len(output_files))
    return manifest_path
