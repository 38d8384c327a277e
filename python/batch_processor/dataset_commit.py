"""The layout of a published output folder and its atomic commit, shared by every pipeline.

<output>/data/<partition folders>/part-….parquet   the files of committed batches
<output>/manifests/manifest-<batch_id>.json       one per committed batch, never replaced
<output>/manifests/current.json                   the dataset, swapped atomically
<output>/reports/…                                the run reports
<output>/.staging/<batch_id>/…                     a batch's files before the commit
<output>/.lock                                     one writer at a time

The commit (one writer, under the output lock): each staged file is fsynced and moved
(rename, same filesystem) into ``data/``; the manifest is created whole and never replaced;
``current.json`` is swapped in with rename(2), the commit point: readers that follow it see
the old dataset or the new one, never a mix. The files the *previous* commit superseded are
deleted after it; a superseded file stays one commit longer (``superseded_files``) so that a
reader that listed the previous manifest can still finish.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import duckdb

from batch_processor.durable import create_exclusive, fsync_dir, fsync_file, replace_atomic
from batch_processor.manifest_common import describe_partitioned_files, parquet_schema

log = logging.getLogger(__name__)

CRASH_ENV = "BATCH_PROCESSOR_CRASH_AT"  # fault injection for the crash tests only
MAX_FILE_SIZE = "256MB"  # stage_parquet splits a larger partition into several files


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


@dataclass(frozen=True)
class StagedParquet:
    files: list[dict[str, Any]]  # the manifest's entries for the staged files
    schema: dict[str, str]  # their Parquet schema ({} when the query returned no rows)


def stage_parquet(
    con: duckdb.DuckDBPyConnection,
    query: str,
    paths: DatasetPaths,
    batch_id: str,
    partition_by: tuple[str, ...],
) -> StagedParquet:
    """Write ``query``'s rows as Hive-partitioned Parquet into the batch's staging folder
    (``part-<batch_id>-<n>.parquet``, a partition larger than MAX_FILE_SIZE split into
    several files) and describe them for the manifest; ``commit_files`` publishes them."""
    staging = paths.staging(batch_id)
    staging.mkdir(parents=True, exist_ok=True)
    target = str(staging).replace("'", "''")
    pattern = f"part-{batch_id}-{{i}}".replace("'", "''")
    con.execute(
        f"copy ({query}) to '{target}' (format parquet, partition_by ({', '.join(partition_by)}), "
        f"filename_pattern '{pattern}', file_size_bytes '{MAX_FILE_SIZE}')"
    )
    staged = sorted(staging.rglob("*.parquet"))
    return StagedParquet(
        describe_partitioned_files(staging, staged, partition_by),
        parquet_schema(staged[0]) if staged else {},
    )


def crash_point(name: str) -> None:
    """Die like a SIGKILL here when the crash tests ask for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def read_current(paths: DatasetPaths) -> dict[str, Any] | None:
    if not paths.current.exists():
        return None
    document: dict[str, Any] = json.loads(paths.current.read_text(encoding="utf-8"))
    return document


def referenced(manifest: dict[str, Any] | None) -> set[str]:
    """Files a manifest keeps alive: its dataset, and the files it superseded (kept one
    commit longer for readers that listed the previous manifest)."""
    if manifest is None:
        return set()
    return {f["path"] for f in manifest["dataset_files"] + manifest.get("superseded_files", [])}


def commit_files(
    paths: DatasetPaths,
    batch_id: str,
    manifest: dict[str, Any],
    previous: dict[str, Any] | None,
    *,
    after_commit: Callable[[Path], None] | None = None,
) -> Path:
    """Move the staged files of ``batch_id`` into ``data/`` and publish ``manifest`` as the
    current dataset. ``after_commit(manifest_path)`` runs after the commit point (to record
    it in the warehouse); nothing after that point can undo the commit, so a later error is
    logged and left to the next run's ``remove_leftovers``. Returns the manifest's path."""
    staging = paths.staging(batch_id)
    staged = sorted(staging.rglob("*.parquet")) if staging.exists() else []
    paths.data.mkdir(parents=True, exist_ok=True)
    paths.manifests.mkdir(parents=True, exist_ok=True)

    crash_point("before_move")
    new_dirs: set[Path] = set()
    for index, source in enumerate(staged):
        fsync_file(source)
        target = paths.data / source.relative_to(staging)
        folder = target.parent
        while folder != paths.data and not folder.exists():
            new_dirs.add(folder)
            folder = folder.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)
        new_dirs.add(target.parent)
        if index == 0:
            crash_point("after_first_move")
    for folder in sorted(new_dirs | {d.parent for d in new_dirs}, key=lambda d: -len(d.parts)):
        fsync_dir(folder)  # deepest first: files, then the folders that name them
    fsync_dir(paths.data)

    crash_point("before_manifest")
    manifest_path = paths.manifest(batch_id)
    body = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
    create_exclusive(manifest_path, body)
    crash_point("before_current")
    replace_atomic(paths.current, body)  # the commit point: nothing below may undo it
    crash_point("after_current")

    try:
        if after_commit is not None:
            after_commit(manifest_path)
        live = referenced(manifest)
        for entry in previous.get("superseded_files", []) if previous else []:
            if entry["path"] not in live:
                (paths.data / entry["path"]).unlink(missing_ok=True)
        shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:  # committed: the next run's clean-up finishes the work
        log.warning(
            "batch %s is committed; its clean-up failed and is left to the next run: %s",
            batch_id,
            exc,
        )
    return manifest_path


def remove_leftovers(paths: DatasetPaths, keep_manifest: Callable[[str], bool]) -> list[str]:
    """Remove what interrupted runs left: data files no current manifest references, staging
    folders, and manifests of batches that never became current (``keep_manifest(batch_id)``
    says which of those to keep). Returns what was removed."""
    current = read_current(paths)
    removed: list[str] = []
    live = referenced(current)
    for path in sorted(paths.data.rglob("*")) if paths.data.exists() else []:
        if (
            path.is_file()
            and str(PurePosixPath(path.relative_to(paths.data).as_posix())) not in live
        ):
            path.unlink()
            removed.append(str(path))
    if paths.staging_root.exists():
        for leftover in sorted(paths.staging_root.iterdir()):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(str(leftover))
    if paths.manifests.exists():
        for manifest in sorted(paths.manifests.iterdir()):
            batch = manifest.name.removeprefix("manifest-").removesuffix(".json")
            uncommitted = (
                manifest.name.startswith("manifest-")
                and not keep_manifest(batch)
                and (current is None or batch != current["batch_id"])
            )
            if manifest.name.startswith(".") or uncommitted:
                manifest.unlink()
                removed.append(str(manifest))
    for folder in (paths.data, paths.manifests):
        if folder.exists():
            fsync_dir(folder)
    return removed
