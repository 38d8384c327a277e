"""Commit a telemetry batch atomically, roll a failed one back, and repair after a crash.

The commit protocol (one writer, under the output lock):
1. dbt's post-hook wrote the batch's Parquet files to ``.staging/<batch_id>/``;
2. each staged file is fsynced and moved (rename, same filesystem) into ``data/`` under its
   unique name; folders are fsynced;
3. ``manifests/manifest-<batch_id>.json`` is created whole (temp file, fsync, link(2), which
   refuses to replace an existing file);
4. ``manifests/current.json`` is swapped in with rename(2): this is the commit point. Readers
   that follow current.json see the old dataset or the new one, never a mix;
5. the warehouse records the batch as committed; the files the *previous* commit superseded
   are deleted. A superseded file stays one commit longer (listed as ``superseded_files``), so
   a reader that listed the previous manifest can still finish. Nothing after step 4 can undo
   the commit: a later error is logged and left to the next run's reconciliation.

A crash anywhere leaves current.json naming only whole, existing files. The next run's
``reconcile`` adopts a committed-but-unrecorded batch, deletes the history rows of batches
that never committed (their partitions are rebuilt), and removes leftovers: staging folders,
files no manifest references, manifests that never became current.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from batch_processor.dataset_commit import (
    DATA,
    DatasetPaths,
    check_listed_files,
    commit_files,
    manifest_key,
    read_current,
    read_current_version,
    remove_leftovers,
)
from batch_processor.dataset_store import CommitConflictError
from batch_processor.db import connect
from batch_processor.errors import DatasetStateError, RunFailedError
from batch_processor.manifest_common import parquet_schema
from batch_processor.telemetry.dataset import describe_files, with_flag_counts
from batch_processor.telemetry.manifest import build_manifest

log = logging.getLogger(__name__)

HISTORY = "telemetry_intermediate.int_telemetry__readings_history"
CONTEXT_HOURS = 24  # = dbt var telemetry_context_hours: a rolled-back batch's edges are rebuilt
PARTITIONS = "telemetry_intermediate.int_telemetry__partitions_to_build"


def table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, name = qualified.split(".")
    found = con.execute(
        "select count(*) from duckdb_tables() where schema_name = $s and table_name = $n",
        {"s": schema, "n": name},
    ).fetchone()
    return bool(found and found[0])


@dataclass
class ReconcileReport:
    adopted_batch: str | None = None
    rolled_back_batches: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    current_version: str | None = None  # of current.json: the version a commit must still find


def reconcile(paths: DatasetPaths, warehouse: Path) -> ReconcileReport:
    """Bring the warehouse and the output folder back in line with current.json."""
    report = ReconcileReport()
    current, report.current_version = read_current_version(paths)
    committed: set[str] = set()
    if current is not None:
        _require_known_dataset(current["batch_id"], warehouse, paths)
    if warehouse.exists():
        con = connect(warehouse)
        try:
            if table_exists(con, "telemetry_meta.committed_batches"):
                if current is not None and record_commit(
                    con, current["batch_id"], paths.store.uri(manifest_key(current["batch_id"]))
                ):
                    # killed after the commit point, before the warehouse heard of it
                    report.adopted_batch = current["batch_id"]
                if table_exists(con, HISTORY):
                    for (batch_id,) in con.execute(
                        f"""
                        select distinct batch_id from {HISTORY}
                        where batch_id not in (
                            select batch_id from telemetry_meta.committed_batches
                        )
                        """
                    ).fetchall():
                        rollback_batch(con, batch_id)
                        report.rolled_back_batches.append(batch_id)
                committed = {
                    row[0]
                    for row in con.execute(
                        "select batch_id from telemetry_meta.committed_batches"
                    ).fetchall()
                }
        finally:
            con.close()
    report.removed = remove_leftovers(paths, lambda batch: batch in committed)
    if report.rolled_back_batches or report.removed:
        log.warning(
            "repaired the output after an interrupted run: rolled back %s, removed %d leftover(s)",
            report.rolled_back_batches or "no batch",
            len(report.removed),
        )
    return report


def _require_known_dataset(batch_id: str, warehouse: Path, paths: DatasetPaths) -> None:
    """The warehouse must hold the history of the dataset it is about to extend: a missing
    or different warehouse would rebuild months from partial history and drop rows."""
    known = False
    if warehouse.exists():
        con = connect(warehouse)
        try:
            if table_exists(con, "telemetry_meta.committed_batches"):
                found = con.execute(
                    "select count(*) from telemetry_meta.committed_batches where batch_id = $b",
                    {"b": batch_id},
                ).fetchone()
                known = bool(found and found[0])
            if not known and table_exists(con, HISTORY):  # killed just after the commit point
                found = con.execute(
                    f"select count(*) from {HISTORY} where batch_id = $b", {"b": batch_id}
                ).fetchone()
                known = bool(found and found[0])
        finally:
            con.close()
    if not known:
        raise RunFailedError(
            f"the warehouse {warehouse} does not hold the history of the dataset published in "
            f"{paths.location} (batch {batch_id}): building on it would drop published rows; "
            "use the warehouse that built this output (--warehouse), or a new output"
        )


def rollback_batch(con: duckdb.DuckDBPyConnection, batch_id: str) -> None:
    """Forget an uncommitted batch: its history rows go, and the partitions it touched (or
    had to rebuild) are rebuilt by the next run from committed history, so the warehouse
    marts that the batch already rewrote are repaired too."""
    committed = con.execute(
        "select count(*) from telemetry_meta.committed_batches where batch_id = $b",
        {"b": batch_id},
    ).fetchone()
    if committed and committed[0]:
        raise RunFailedError(f"refusing to roll back batch {batch_id}: it is committed")
    con.execute("begin transaction")
    # the months it touched (and the edges of their neighbours) are rebuilt next time
    con.execute(
        f"""
        insert into telemetry_meta.rebuild_partitions
        select distinct site_id, date_trunc('month', sample_at + offset_hours * interval 1 hour)
        from {HISTORY}, (values (-$h), (0), ($h)) as offsets (offset_hours)
        where batch_id = $b
        """,
        {"b": batch_id, "h": CONTEXT_HOURS},
    )
    con.execute(f"delete from {HISTORY} where batch_id = $b", {"b": batch_id})
    con.execute(
        """
        create or replace temp table distinct_partitions as
        select distinct * from telemetry_meta.rebuild_partitions
        """
    )
    con.execute("delete from telemetry_meta.rebuild_partitions")
    con.execute("insert into telemetry_meta.rebuild_partitions select * from distinct_partitions")
    con.execute("commit")


def queue_full_rebuild(warehouse: Path) -> None:
    """Record every committed partition as left to rebuild before a --rebuild-all build: if
    that run is killed, the next run rebuilds and republishes them all, so the dataset never
    mixes files of two schemas. The commit clears the queue."""
    if not warehouse.exists():
        return
    con = connect(warehouse)
    try:
        if table_exists(con, HISTORY) and table_exists(con, "telemetry_meta.rebuild_partitions"):
            con.execute(
                f"""
                insert into telemetry_meta.rebuild_partitions
                select distinct site_id, date_trunc('month', sample_at) from {HISTORY}
                where batch_id in (select batch_id from telemetry_meta.committed_batches)
                """
            )
    finally:
        con.close()


def record_commit(con: duckdb.DuckDBPyConnection, batch_id: str, manifest: str) -> bool:
    """Record ``batch_id`` as committed, once. Its build rebuilt every partition that was left
    to rebuild, so those are cleared with it. Returns whether anything was recorded."""
    known = con.execute(
        "select count(*) from telemetry_meta.committed_batches where batch_id = $b",
        {"b": batch_id},
    ).fetchone()
    if known and known[0]:
        return False
    con.execute("begin transaction")
    con.execute(
        "insert into telemetry_meta.committed_batches values ($b, now(), $m)",
        {"b": batch_id, "m": manifest},
    )
    con.execute("delete from telemetry_meta.rebuild_partitions")
    con.execute("commit")
    return True


@dataclass(frozen=True)
class CommitResult:
    manifest_path: str  # a path, or the s3:// URI of the manifest
    manifest: dict[str, Any]


def commit_batch(
    paths: DatasetPaths,
    warehouse: Path,
    batch_id: str,
    target_path: Path,
    accounting: dict[str, Any],
    expected_version: str | None,
) -> CommitResult:
    """Commit the staged batch on top of the dataset whose current.json is
    ``expected_version`` (what ``reconcile`` found when the run started): if another writer
    committed since, the batch built on a state that is gone, and CommitConflictError says so."""
    staging = paths.staging(batch_id)
    staged = sorted(staging.rglob("*.parquet")) if staging.exists() else []
    output_files = describe_files(staging, staged)
    schema = parquet_schema(staged[0]) if staged else {}
    previous, version = read_current_version(paths)
    if version != expected_version:
        raise CommitConflictError(
            f"batch {batch_id} was not committed: {paths.location} was committed to by "
            f"another writer (batch {(previous or {}).get('batch_id')}) while this batch ran; "
            "the dataset is as that writer left it"
        )
    con = connect(warehouse)
    try:
        rebuilt = rebuilt_partitions(con)
        carried = carry_forward(paths, previous, rebuilt, accounting["gaps"])
        manifest = build_manifest(
            batch_id=batch_id,
            con=con,
            target_path=target_path,
            written_files=output_files,
            dataset_files=sorted(carried.kept + output_files, key=lambda f: f["path"]),
            superseded_files=carried.superseded,
            schema=schema or (previous["schema"] if previous else {}),
            accounting={**accounting, "gaps": carried.gaps},
        )
    finally:
        con.close()

    def record(manifest_path: str) -> None:
        con = connect(warehouse)
        try:
            record_commit(con, batch_id, manifest_path)
        finally:
            con.close()

    manifest_path = commit_files(
        paths, batch_id, manifest, previous, expected_version=version, after_commit=record
    )
    log.info(
        "committed batch %s: %d file(s) written, %d superseded",
        batch_id,
        len(output_files),
        len(manifest["superseded_files"]),
    )
    return CommitResult(manifest_path=manifest_path, manifest=manifest)


def rebuilt_partitions(con: duckdb.DuckDBPyConnection) -> set[tuple[str, str, str]]:
    """The partitions (site_id, year, month) the batch in the warehouse rebuilt."""
    return {
        (site, f"{month:%Y}", f"{month:%m}")
        for site, month in con.execute(f"select * from {PARTITIONS}").fetchall()
    }


@dataclass(frozen=True)
class CarriedForward:
    kept: list[dict[str, Any]]  # the previous dataset's files this batch did not rebuild
    superseded: list[dict[str, Any]]  # those it rebuilt
    gaps: list[dict[str, Any]]  # the gaps of the partitions it did not rebuild, and its own


def carry_forward(
    paths: DatasetPaths,
    previous: dict[str, Any] | None,
    rebuilt: set[tuple[str, str, str]],
    new_gaps: list[dict[str, Any]],
) -> CarriedForward:
    """What a batch that rebuilt the partitions ``rebuilt`` (site_id, year, month) keeps of
    the ``previous`` manifest. The kept files must still be there; their facts come from the
    files."""
    kept: list[dict[str, Any]] = []
    superseded: list[dict[str, Any]] = []
    for entry in previous["dataset_files"] if previous else []:
        key = tuple(entry["partition"][k] for k in ("site_id", "year", "month"))
        (superseded if key in rebuilt else kept).append(entry)
    check_listed_files(paths, {"dataset_files": kept})
    gaps = [
        gap
        for gap in (previous or {}).get("gaps", [])
        if (gap["site_id"], gap["start"][:4], gap["start"][5:7]) not in rebuilt
    ]
    return CarriedForward(
        kept=with_flag_counts(paths.store.uri(DATA), kept),
        superseded=superseded,
        gaps=sorted(gaps + new_gaps, key=lambda gap: (gap["site_id"], gap["start"])),
    )


def abandon_batch(paths: DatasetPaths, warehouse: Path, batch_id: str | None) -> None:
    """A batch that will not be committed (failed tests, dry run, error): remove its staged
    files and forget it in the warehouse. The published dataset is untouched."""
    try:
        current = read_current(paths)
    except DatasetStateError:
        # the pointer cannot be trusted, so it cannot tell whether this batch was committed:
        # only its staging folder goes (the run stopped before building anything on it)
        if batch_id is not None:
            shutil.rmtree(paths.staging(batch_id), ignore_errors=True)
        return
    if batch_id is not None and current is not None and current["batch_id"] == batch_id:
        return  # it reached the commit point: it is published, not abandoned
    if batch_id is not None:
        shutil.rmtree(paths.staging(batch_id), ignore_errors=True)
    if not warehouse.exists():
        return
    con = connect(warehouse)
    try:
        if (
            batch_id is not None
            and table_exists(con, HISTORY)
            and table_exists(con, "telemetry_meta.committed_batches")
        ):
            rollback_batch(con, batch_id)
    finally:
        con.close()


def prune_dbt_artifacts(folder: Path, keep: int, failed_keep_days: float) -> list[Path]:
    """Bound ``<output>/_dbt``: the ``keep`` newest artifact folders stay; an older one is
    deleted unless it is of a failed run (no run_results.json, or a node that errored or
    failed) younger than ``failed_keep_days``. Returns the folders deleted."""
    if not folder.is_dir():
        return []
    runs = sorted(
        (p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True
    )
    removed = []
    now = time.time()
    for run in runs[keep:]:
        if _failed_run(run) and now - run.stat().st_mtime < failed_keep_days * 86400:
            continue
        shutil.rmtree(run, ignore_errors=True)
        removed.append(run)
    return removed


def _failed_run(run: Path) -> bool:
    try:
        results = json.loads((run / "run_results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return any(r.get("status") in ("error", "fail") for r in results.get("results", []))
