"""Publish the papers as Parquet partitioned by published year and month, committed like the
other pipelines' output (``batch_processor.dataset_commit``):

<output>/data/year=<YYYY>/month=<MM>/part-<trace_id>-<n>.parquet
<output>/manifests/manifest-<trace_id>.json, current.json

A batch rewrites the partitions that hold a paper stored since the current manifest was made
(``updated_through``), so a batch whose publish was interrupted is published by the next one.
The other partitions' files are kept; the rewritten ones are superseded (deleted one commit
later).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from batch_processor import db
from batch_processor.dataset_commit import (
    DatasetPaths,
    commit_files,
    read_current,
    remove_leftovers,
    stage_parquet,
)
from batch_processor.manifest_common import dbt_nodes, range_over, sealed_manifest

log = logging.getLogger(__name__)

PAPERS = "papers.papers"
PARTITION_KEYS = ("year", "month")

_PARTITIONS_SQL = f"""
select distinct strftime(published_at, '%Y') as year, strftime(published_at, '%m') as month
from {PAPERS}
where $since is null or updated_at > $since::timestamptz
"""
_TOUCHED_ROWS_SQL = f"""
select *, strftime(published_at, '%Y') as year, strftime(published_at, '%m') as month
from {PAPERS}
where (strftime(published_at, '%Y'), strftime(published_at, '%m')) in (
    select (year, month) from touched
)
order by published_at, paper_id
"""


def _committed_before(paths: DatasetPaths, batch: str) -> bool:
    """A manifest no older than current.json was current once (manifests are created just
    before they become current); a newer one is the leftover of an interrupted publish."""
    manifest = paths.manifest(batch)
    return (
        paths.current.exists()
        and manifest.exists()
        and manifest.stat().st_mtime <= paths.current.stat().st_mtime
    )


def publish_partitions(
    warehouse: Path,
    output: Path,
    *,
    trace_id: str,
    dbt_target: Path,
    counts: dict[str, Any],
) -> Path | None:
    """Commit the partitions changed since the current manifest; the new manifest's path, or
    None when nothing changed."""
    paths = DatasetPaths(output)
    previous = read_current(paths)
    removed = remove_leftovers(paths, lambda batch: _committed_before(paths, batch))
    if removed:
        log.warning("removed %d leftover(s) of an interrupted publish", len(removed))
    since = previous["updated_through"] if previous else None
    con = db.connect(warehouse)
    try:
        touched = {
            (str(y), str(m)) for y, m in con.execute(_PARTITIONS_SQL, {"since": since}).fetchall()
        }
        if not touched:
            return None
        con.execute("create temp table touched (year varchar, month varchar)")
        con.executemany("insert into touched values (?, ?)", sorted(touched))
        staged = stage_parquet(
            con, _TOUCHED_ROWS_SQL, paths, trace_id, PARTITION_KEYS, range_column="updated_at"
        )
        output_files = staged.files
        kept: list[dict[str, Any]] = []
        superseded: list[dict[str, Any]] = []
        for entry in previous["dataset_files"] if previous else []:
            key = tuple(entry["partition"][k] for k in PARTITION_KEYS)
            (superseded if key in touched else kept).append(entry)
        dataset_files = sorted(kept + output_files, key=lambda f: f["path"])
        # measured on the files: the rows they hold, the newest update they carry
        written_through = range_over(output_files, "updated_at")
        through = max(
            (t for t in (since, written_through and written_through[1]) if t),
            key=datetime.fromisoformat,
            default=None,
        )
        manifest = sealed_manifest(
            dataset="papers",
            batch_id=trace_id,
            fields={
                "updated_through": through,
                "batch_counts": counts,
                "output_files": output_files,
                "dataset_files": dataset_files,
                "superseded_files": superseded,
                "statistics": {
                    "total_rows": sum(int(f["rows"]) for f in dataset_files),
                    "partitions": len({tuple(f["partition"].values()) for f in dataset_files}),
                },
                "dbt": {"invocation_id": trace_id, "nodes": dbt_nodes(dbt_target, con)},
            },
            schema=staged.schema or (previous or {}).get("schema", {}),
        )
    finally:
        con.close()
    manifest_path = commit_files(paths, trace_id, manifest, previous)
    log.info("published papers batch %s: %d file(s)", trace_id, len(output_files))
    return manifest_path
