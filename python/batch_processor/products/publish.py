"""Publish the `products` table as Parquet with a manifest, committed like telemetry's output
(``batch_processor.dataset_commit``): a full snapshot per sync that changed anything,
Hive-partitioned by brand_code (which every file also holds as a column).

<output>/data/brand_code=<code>/part-<sync_id>-<n>.parquet
<output>/manifests/manifest-<sync_id>.json, current.json

``<output>`` is a folder or an ``s3://bucket/prefix`` (the same protocol, with conditional
writes; the warehouse, staging and reports are then in the local work folder).

A snapshot is due when the change log holds rows the current manifest has not seen (so a sync
killed after its batches but before its publish is published by the next sync, even one
that finds nothing new). The previous snapshot's files are superseded at once and deleted one
commit later.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import duckdb

from batch_processor import db
from batch_processor.dataset_commit import (
    DatasetPaths,
    adopt_or_refuse,
    commit_files,
    manifest_key,
    read_current_version,
    remove_leftovers,
    stage_parquet,
)
from batch_processor.manifest_common import column_counts, dbt_nodes, range_over, sealed_manifest

log = logging.getLogger(__name__)

PRODUCTS = "products.products"
CHANGE_LOG = "products.product_change_log"
SNAPSHOTS = "products.published_snapshots"
WATERMARK = "products.etl_watermark"
PARTITION_KEY = "brand_code"


def _change_log_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute(f"select count(*) from {CHANGE_LOG}").fetchall()[0][0])


def _record_snapshot(
    con: duckdb.DuckDBPyConnection, batch_id: str, manifest: str, change_log_rows: int
) -> None:
    con.execute(
        f"insert or ignore into {SNAPSHOTS} values ($b, $m, $n, now())",
        {"b": batch_id, "m": str(manifest), "n": change_log_rows},
    )


def _adopt_current(
    paths: DatasetPaths, current: dict[str, Any] | None, con: duckdb.DuckDBPyConnection
) -> set[str]:
    """The snapshots the warehouse knows as committed, after recording ``current`` (the
    current manifest) if it is ours and the warehouse has not heard of it (killed just after
    the commit point); a current manifest of another warehouse stops the sync
    (``adopt_or_refuse``)."""
    known = {str(row[0]) for row in con.execute(f"select batch_id from {SNAPSHOTS}").fetchall()}
    if current is not None and adopt_or_refuse(paths, current, known):
        _record_snapshot(
            con,
            current["batch_id"],
            paths.store.uri(manifest_key(current["batch_id"])),
            current["statistics"]["change_log_rows"],
        )
        known.add(current["batch_id"])
    return known


def _statistics(base: Path, files: list[dict[str, Any]], change_log_rows: int) -> dict[str, Any]:
    """The snapshot's statistics, measured on its staged files (``base``) — true whatever else
    the warehouse holds; ``change_log_rows`` is the change log this snapshot has seen."""
    return {
        "total_rows": sum(int(f["rows"]) for f in files),
        "brands": len({f["partition"][PARTITION_KEY] for f in files}),
        "src_updated_at_range": range_over(files, "src_updated_at"),
        "rows_per_currency": column_counts(base, files, "currency"),
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
    paths: DatasetPaths,
    *,
    sync_id: str,
    source: str,
    totals: dict[str, int],
    dbt_runs: list[tuple[str | None, Path]],
) -> str | None:
    """Commit a snapshot of `products` into ``paths`` (a folder or an S3 prefix) if the
    warehouse changed since the current one; the new manifest's path or URI, or None when the
    published snapshot is still up to date.
    ``dbt_runs``: (invocation id, target path) of each batch this sync ran."""
    previous, version = read_current_version(paths)  # what the commit must still find
    con = db.connect(warehouse)
    try:
        committed = _adopt_current(paths, previous, con)
        removed = remove_leftovers(paths, lambda batch: batch in committed)
        if removed:
            log.warning("removed %d leftover(s) of an interrupted publish", len(removed))
        change_log_rows = _change_log_rows(con)
        if previous is not None and previous["statistics"]["change_log_rows"] == change_log_rows:
            return None
        staged = stage_parquet(
            con,
            f"select * from {PRODUCTS} order by brand_code, sku",
            paths,
            sync_id,
            (PARTITION_KEY,),
            range_column="src_updated_at",
            keep_partition_columns=True,
        )
        output_files = staged.files
        manifest = sealed_manifest(
            dataset="products",
            batch_id=sync_id,
            fields={
                "source": source,
                "sync_totals": totals,
                "watermarks": _watermarks(con),
                "output_files": output_files,
                "dataset_files": output_files,
                "superseded_files": previous["dataset_files"] if previous else [],
                "statistics": _statistics(paths.staging(sync_id), output_files, change_log_rows),
                "dbt": {
                    "invocations": [
                        {"invocation_id": invocation, "nodes": dbt_nodes(target, con)}
                        for invocation, target in dbt_runs
                    ]
                },
            },
            schema=staged.schema,
        )
    finally:
        con.close()

    def record(manifest_path: str) -> None:
        with db.connect(warehouse) as con:
            _record_snapshot(con, sync_id, manifest_path, change_log_rows)

    manifest_path = commit_files(
        paths, sync_id, manifest, previous, expected_version=version, after_commit=record
    )
    log.info("published products snapshot %s: %d file(s)", sync_id, len(output_files))
    return manifest_path
