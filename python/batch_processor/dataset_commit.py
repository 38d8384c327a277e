"""The layout of a published output folder and its atomic commit, shared by every pipeline.

<output>/data/<partition folders>/part-….parquet   the files of committed batches
<output>/manifests/manifest-<batch_id>.json       one per committed batch, never replaced
<output>/manifests/current.json                   the dataset, swapped atomically
<output>/reports/…                                the run reports
<output>/.staging/<batch_id>/…                     a batch's files before the commit
<output>/.lock                                     one writer at a time

Nothing is deleted without proof: a run builds only on a ``current.json`` whose checksum
verifies (a missing one with data present, unreadable JSON or a failed checksum stops the run;
``repair_current`` rebuilds the pointer from the newest valid manifest), and a data file is
removed only when it is named ``part-<batch_id>-…`` for a batch known to be ours (a manifest
of ours, a staging folder, or the caller's record of its batches) and no verified manifest
references it. Any other file is left in place and reported.

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
from batch_processor.errors import DatasetStateError
from batch_processor.manifest_common import (
    checksum_ok,
    describe_partitioned_files,
    parquet_schema,
)

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
    *,
    range_column: str | None = None,
    keep_partition_columns: bool = False,
) -> StagedParquet:
    """Write ``query``'s rows as Hive-partitioned Parquet into the batch's staging folder
    (``part-<batch_id>-<n>.parquet``, a partition larger than MAX_FILE_SIZE split into
    several files) and describe them for the manifest, measured on the files themselves
    (with ``range_column``: its range per file); ``commit_files`` publishes them.
    ``keep_partition_columns`` writes the partition columns into the files as well (a file
    then tells its key on its own, copied or read without Hive partitioning)."""
    staging = paths.staging(batch_id)
    staging.mkdir(parents=True, exist_ok=True)
    target = str(staging).replace("'", "''")
    pattern = f"part-{batch_id}-{{i}}".replace("'", "''")
    con.execute(
        f"copy ({query}) to '{target}' (format parquet, partition_by ({', '.join(partition_by)}), "
        f"filename_pattern '{pattern}', file_size_bytes '{MAX_FILE_SIZE}', "
        f"write_partition_columns {str(keep_partition_columns).lower()})"
    )
    staged = sorted(staging.rglob("*.parquet"))
    return StagedParquet(
        describe_partitioned_files(staging, staged, partition_by, range_column=range_column),
        parquet_schema(staged[0]) if staged else {},
    )


def crash_point(name: str) -> None:
    """Die like a SIGKILL here when the crash tests ask for it."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


REPAIR_HINT = "run `batch-processor repair --output {root}` to rebuild it from the manifests"


def load_manifest(path: Path) -> dict[str, Any]:
    """A manifest file, parsed and checked: unreadable, invalid JSON or a checksum that does
    not match its body raise DatasetStateError naming the file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DatasetStateError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetStateError(f"{path}: not a valid JSON manifest ({exc})") from exc
    if not isinstance(document, dict) or not checksum_ok(document):
        raise DatasetStateError(
            f"{path}: the manifest's checksum does not match its content (edited or damaged)"
        )
    return document


def data_files(paths: DatasetPaths) -> list[Path]:
    return sorted(p for p in paths.data.rglob("*") if p.is_file()) if paths.data.exists() else []


def read_current(paths: DatasetPaths) -> dict[str, Any] | None:
    """The current manifest, verified; None only for an output that has never been committed
    to (no current.json, and no data file but those of a batch whose staging folder is still
    there: a first commit that was interrupted before its commit point). Anything else a run
    must not build on raises DatasetStateError: deleting or re-listing files on an
    unverified pointer loses data."""
    if not paths.current.exists():
        staged = _staged_batches(paths)
        found = [f for f in data_files(paths) if not staged.intersection(_batch_candidates(f.name))]
        if found:  # files that are not those of an interrupted first commit
            raise DatasetStateError(
                f"{paths.current} is missing but {paths.data} holds {len(found)} file(s) "
                f"(e.g. {found[0]}); the run stops so that nothing is deleted; "
                + REPAIR_HINT.format(root=paths.root)
            )
        return None
    try:
        return load_manifest(paths.current)
    except DatasetStateError as exc:
        raise DatasetStateError(f"{exc}; " + REPAIR_HINT.format(root=paths.root)) from exc


def check_listed_files(paths: DatasetPaths, manifest: dict[str, Any]) -> None:
    """Every file a manifest is about to carry forward must still be there, with its size."""
    missing = []
    for entry in manifest.get("dataset_files", []):
        path = paths.data / entry["path"]
        if not path.is_file() or path.stat().st_size != entry.get(
            "size_bytes", path.stat().st_size
        ):
            missing.append(entry["path"])
    if missing:
        raise DatasetStateError(
            f"{len(missing)} file(s) of the dataset are missing or changed in {paths.data} "
            f"(e.g. {missing[0]}); nothing was committed. Restore them, or republish with "
            "--rebuild-all (telemetry) so that no manifest lists a file that is not there"
        )


def repair_current(paths: DatasetPaths) -> dict[str, Any]:
    """Rebuild a missing, unreadable or edited ``current.json`` from the newest manifest whose
    checksum verifies, if all its files are present. Returns that manifest; raises
    DatasetStateError, changing nothing, when there is none or its files are not all there
    (an older manifest is never promoted over a newer one: that would un-publish a committed
    batch and let the next run delete its files). A manifest of a batch whose staging folder
    is still there never reached its commit point and is not a candidate. A current.json
    that verifies is left as it is; if files it lists are missing, that is an error."""
    if paths.current.exists():
        try:
            manifest = load_manifest(paths.current)
        except DatasetStateError as exc:
            log.warning("repairing: %s", exc)
        else:
            check_listed_files(paths, manifest)
            log.info("%s is valid; nothing to repair", paths.current)
            return manifest
    staged = _staged_batches(paths)
    candidates = []
    problems = []
    for path in sorted(paths.manifests.glob("manifest-*.json")) if paths.manifests.exists() else []:
        batch = path.name.removeprefix("manifest-").removesuffix(".json")
        if batch in staged:
            continue
        try:
            manifest = load_manifest(path)
        except DatasetStateError as exc:
            problems.append(str(exc))
            continue
        candidates.append((str(manifest.get("created_at", "")), path.name, manifest))
    if not candidates:
        detail = "; ".join(problems[:3]) or "no manifest-*.json of a committed batch"
        raise DatasetStateError(f"{paths.manifests}: no valid manifest to repair from ({detail})")
    _, name, manifest = max(candidates, key=lambda c: (c[0], c[1]))
    check_listed_files(paths, manifest)
    body = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
    replace_atomic(paths.current, body)
    log.warning("repaired %s from %s (batch %s)", paths.current, name, manifest.get("batch_id"))
    return manifest


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
    written = {source.relative_to(staging).as_posix() for source in staged}
    check_listed_files(
        paths,
        {"dataset_files": [f for f in manifest["dataset_files"] if f["path"] not in written]},
    )

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


def _staged_batches(paths: DatasetPaths) -> set[str]:
    root = paths.staging_root
    return {p.name for p in root.iterdir() if p.is_dir()} if root.exists() else set()


def _batch_candidates(name: str) -> list[str]:
    """The batch ids a file named ``part-<batch_id>-<n>[-<uuid>].parquet`` may carry (batch
    ids contain dashes, so every prefix ending before a dash is a candidate)."""
    if not (name.startswith("part-") and name.endswith(".parquet")):
        return []
    body = name[len("part-") :]
    return [body[:i] for i, char in enumerate(body) if char == "-" and i > 0]


def remove_leftovers(paths: DatasetPaths, keep_manifest: Callable[[str], bool]) -> list[str]:
    """Remove what interrupted runs left: data files of our batches that no current manifest
    references, staging folders, and manifests of batches that never became current
    (``keep_manifest(batch_id)`` says which of those to keep, and that a batch is ours).
    A data file is ours when its name is ``part-<batch_id>-…`` and the batch is known (kept
    by ``keep_manifest``, with a manifest or a staging folder here); any other file is left
    in place with a warning. Returns what was removed."""
    current = read_current(paths)
    removed: list[str] = []
    live = referenced(current)
    staged_batches = _staged_batches(paths)
    manifest_batches = (
        {
            p.name.removeprefix("manifest-").removesuffix(".json")
            for p in paths.manifests.glob("manifest-*.json")
        }
        if paths.manifests.exists()
        else set()
    )
    foreign: list[str] = []
    known = staged_batches | manifest_batches
    for path in data_files(paths):
        relative = str(PurePosixPath(path.relative_to(paths.data).as_posix()))
        if relative in live:
            continue
        if any(b in known or keep_manifest(b) for b in _batch_candidates(path.name)):
            path.unlink()
            removed.append(str(path))
        else:
            foreign.append(relative)
    if foreign:
        log.warning(
            "%d file(s) in %s are not listed by the current manifest and not known to be ours; "
            "left in place (e.g. %s)",
            len(foreign),
            paths.data,
            foreign[0],
        )
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
