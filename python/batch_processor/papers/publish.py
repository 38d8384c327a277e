"""Publish the papers as Parquet partitioned by published year and month, committed like the
other pipelines' output (``batch_processor.dataset_commit``):

<output>/data/year=<YYYY>/month=<MM>/part-<trace_id>-<n>.parquet
<output>/manifests/manifest-<trace_id>.json, current.json

``<output>`` is a folder or an ``s3://bucket/prefix`` (the same protocol, with conditional
writes; the warehouse, staging and reports are then in the local work folder).

A batch rewrites the partitions that hold a paper stored since the current manifest was made
(``updated_through``), so a batch whose publish was interrupted is published by the next one,
and the partitions the current manifest's files hold those papers in: a newer version whose
``published`` month differs leaves its old partition in the same commit (no paper_id is ever
listed twice; a partition left empty is dropped). The other partitions' files are kept; the
rewritten ones are superseded (deleted one commit later).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb

from batch_processor import db
from batch_processor.dataset_commit import (
    DATA,
    DatasetPaths,
    adopt_or_refuse,
    commit_files,
    manifest_key,
    read_current_version,
    remove_leftovers,
    stage_parquet,
)
from batch_processor.manifest_common import dbt_nodes, range_over, sealed_manifest
from batch_processor.reader import readable_files

log = logging.getLogger(__name__)

PAPERS = "papers.papers"
PUBLISHED = "papers.published_batches"  # the batches this warehouse committed
PARTITION_KEYS = ("year", "month")

_CHANGED_SQL = f"""
create temp table changed as
select paper_id, strftime(published_at, '%Y') as year, strftime(published_at, '%m') as month
from {PAPERS}
where $since is null or updated_at > $since::timestamptz
"""
# the partitions the changed papers are in now, and those the published files hold them in
_TOUCHED_SQL = """
create temp table touched as
select year, month from changed
union
select published.year, published.month
from read_parquet($files, filename = true) as files
inner join changed on files.paper_id = changed.paper_id
inner join published_files as published on files.filename = published.path
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
    """In a folder only this warehouse writes to (under the output lock): a manifest no older
    than current.json was current once (manifests are created just before they become
    current); a newer one is the leftover of an interrupted publish."""
    manifest = paths.manifest(batch)
    return (
        paths.current.exists()
        and manifest.exists()
        and manifest.stat().st_mtime <= paths.current.stat().st_mtime
    )


def _recorded(con: duckdb.DuckDBPyConnection) -> set[str]:
    return {str(row[0]) for row in con.execute(f"select batch_id from {PUBLISHED}").fetchall()}


def _record(con: duckdb.DuckDBPyConnection, batch_id: str, manifest: str) -> None:
    con.execute(
        f"insert or ignore into {PUBLISHED} values ($b, $m, now())", {"b": batch_id, "m": manifest}
    )


def _clean_up(paths: DatasetPaths, warehouse: Path, previous: dict[str, Any] | None) -> None:
    """Check that the current manifest is this warehouse's (``adopt_or_refuse``), then remove
    what interrupted publishes left. A batch is ours when the warehouse recorded it; in a
    folder, also when its manifest was current once (``_committed_before``: a warehouse from
    before the records, and the only writer there). On an object store other writers may be
    mid-commit, and only the records prove a batch ours. A folder's dataset that a warehouse
    without records (made before them) built is adopted if that warehouse holds papers stored
    no later than the manifest's ``updated_through``; a new, empty warehouse is refused."""
    with db.connect(warehouse) as con:
        recorded = _recorded(con)
        # a warehouse from before the records holds the papers the dataset was made from
        legacy = (
            not paths.shared
            and not recorded
            and previous is not None
            and bool(
                con.execute(
                    f"select count(*) from {PAPERS} where updated_at <= $through::timestamptz",
                    {"through": previous["updated_through"]},
                ).fetchall()[0][0]
            )
        )
        if previous is not None and adopt_or_refuse(paths, previous, recorded, legacy=legacy):
            _record(con, previous["batch_id"], paths.store.uri(manifest_key(previous["batch_id"])))
            recorded.add(previous["batch_id"])
    if paths.shared:
        removed = remove_leftovers(paths, recorded.__contains__)
    else:
        removed = remove_leftovers(
            paths, lambda batch: batch in recorded or _committed_before(paths, batch)
        )
    if removed:
        log.warning("removed %d leftover(s) of an interrupted publish", len(removed))


def publish_partitions(
    warehouse: Path,
    paths: DatasetPaths,
    *,
    trace_id: str,
    dbt_target: Path,
    counts: dict[str, Any],
) -> str | None:
    """Commit the partitions changed since the current manifest into ``paths`` (a folder or
    an S3 prefix); the new manifest's path or URI, or None when nothing changed."""
    previous, version = read_current_version(paths)
    _clean_up(paths, warehouse, previous)
    since = previous["updated_through"] if previous else None
    published = [
        (paths.store.uri(DATA + entry["path"]), *(entry["partition"][k] for k in PARTITION_KEYS))
        for entry in (previous["dataset_files"] if previous else [])
    ]
    con = db.connect(warehouse)
    try:
        con.execute(_CHANGED_SQL, {"since": since})
        con.execute("create temp table published_files (path varchar, year varchar, month varchar)")
        if published:
            con.executemany("insert into published_files values (?, ?, ?)", published)
            files = readable_files(con, paths.location, [p[0] for p in published])
            con.execute(_TOUCHED_SQL, {"files": files})
        else:
            con.execute("create temp table touched as select distinct year, month from changed")
        touched = {(str(y), str(m)) for y, m in con.execute("from touched").fetchall()}
        if not touched:
            return None
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

    def record(manifest_uri: str) -> None:
        with db.connect(warehouse) as con:
            _record(con, trace_id, manifest_uri)

    manifest_path = commit_files(
        paths, trace_id, manifest, previous, expected_version=version, after_commit=record
    )
    log.info("published papers batch %s: %d file(s)", trace_id, len(output_files))
    return manifest_path
