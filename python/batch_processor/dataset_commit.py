"""The layout of a published output and its atomic commit, shared by every pipeline.

<output>/data/<partition folders>/part-….parquet   the files of committed batches
<output>/manifests/manifest-<batch_id>.json       one per committed batch, never replaced
<output>/manifests/current.json                   the dataset, swapped atomically
<output>/reports/…                                the run reports
<output>/.staging/<batch_id>/…                     a batch's files before the commit
<output>/.lock                                     one writer at a time

The published part (``data/``, ``manifests/``) lives in a store
(``batch_processor.dataset_store``): the output folder itself, or an ``s3://bucket/prefix``
whose local work folder then holds ``.staging``, reports and the warehouse. The same protocol
runs on both; a store only has to publish a file whole, create an object only if it is new,
and swap ``current.json`` only if it is still the version the run read.

Nothing is deleted without proof: a run builds only on a ``current.json`` whose checksum
verifies (a missing one with data present, unreadable JSON or a failed checksum stops the run;
``repair_current`` rebuilds the pointer from the newest valid manifest), and a data file is
removed only when it is named ``part-<batch_id>-…`` for a batch known to be ours (a manifest
of ours, a staging folder, or the caller's record of its batches) and no verified manifest
references it. Any other file is left in place and reported.

The commit (one writer per folder, under the output lock; on S3, any number of writers):
each staged file is published into ``data/`` under its unique name (a folder: fsync and
rename; S3: a PUT that refuses to replace); the manifest is created whole and never
replaced; ``current.json`` is swapped in, the commit point, only if it is still the version
the run built on: readers that follow it see the old dataset or the new one, never a mix,
and of two racing committers exactly one wins (the other's files are removed again). The
files the *previous* commit superseded are deleted after it; a superseded file stays one
commit longer (``superseded_files``) so that a reader that listed the previous manifest can
still finish.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from batch_processor.dataset_store import CommitConflictError, DatasetStore, LocalStore
from batch_processor.errors import DatasetStateError
from batch_processor.manifest_common import (
    checksum_ok,
    describe_partitioned_files,
    parquet_schema,
)

log = logging.getLogger(__name__)

CRASH_ENV = "BATCH_PROCESSOR_CRASH_AT"  # fault injection for the crash tests only
PAUSE_ENV = "BATCH_PROCESSOR_PAUSE_AT"  # "<point>:<file>": wait there until <file> exists
DATA = "data/"
MANIFESTS = "manifests/"
CURRENT = "manifests/current.json"
MAX_FILE_SIZE = "256MB"  # stage_parquet splits a larger partition into several files


def manifest_key(batch_id: str) -> str:
    return f"{MANIFESTS}manifest-{batch_id}.json"


@dataclass(frozen=True)
class DatasetPaths:
    """``root`` is the local folder of a run's staging and reports (and, by default, its
    warehouse); ``store`` holds the published dataset: by default ``root`` itself."""

    root: Path
    store: DatasetStore = field(default=None, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.store is None:
            object.__setattr__(self, "store", LocalStore(self.root))

    @property
    def location(self) -> str:
        """Where the dataset is published: the folder, or ``s3://bucket/prefix``."""
        return self.store.location

    @property
    def shared(self) -> bool:
        """The store is not guarded by this folder's lock (S3: writers on other machines)."""
        return not (isinstance(self.store, LocalStore) and self.store.root == self.root)

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


def as_dataset_paths(output: DatasetPaths | Path) -> DatasetPaths:
    """A dataset's paths as given (``DatasetSettings.output_paths``), or an output folder's."""
    return output if isinstance(output, DatasetPaths) else DatasetPaths(Path(output).absolute())


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


REPORTS = "reports/"


def publish_report(paths: DatasetPaths, report: Path | None) -> None:
    """A report written in the local folder, also put next to a dataset in a shared store
    (``reports/<name>``): readers of the bucket see why a batch failed. Best effort."""
    if report is None or not paths.shared:
        return
    try:
        paths.store.put(REPORTS + report.name, report.read_bytes())
    except (OSError, DatasetStateError) as exc:
        log.warning("the report %s could not be put into %s: %s", report, paths.location, exc)


def crash_point(name: str) -> None:
    """Die like a SIGKILL here when the crash tests ask for it; or, for the race tests, wait
    here until a file appears (``<file>.reached`` says that this point was reached)."""
    if os.environ.get(CRASH_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, release = os.environ.get(PAUSE_ENV, "").partition(":")
    if point == name and release:
        Path(release + ".reached").touch()
        deadline = time.monotonic() + 300
        while not Path(release).exists() and time.monotonic() < deadline:
            time.sleep(0.05)


REPAIR_HINT = "run `batch-processor repair --output {root}` to rebuild it from the manifests"


def parse_manifest(body: bytes, where: str) -> dict[str, Any]:
    """A manifest's bytes, parsed and checked: invalid JSON or a checksum that does not match
    its body raise DatasetStateError naming ``where``."""
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetStateError(f"{where}: not a valid JSON manifest ({exc})") from exc
    if not isinstance(document, dict) or not checksum_ok(document):
        raise DatasetStateError(
            f"{where}: the manifest's checksum does not match its content (edited or damaged)"
        )
    return document


def load_manifest(path: Path) -> dict[str, Any]:
    """A manifest file, parsed and checked (``parse_manifest``); unreadable raises too."""
    try:
        body = path.read_bytes()
    except OSError as exc:
        raise DatasetStateError(f"{path}: cannot read the manifest: {exc.strerror or exc}") from exc
    return parse_manifest(body, str(path))


def _read_manifest(store: DatasetStore, key: str) -> tuple[dict[str, Any], str] | None:
    found = store.read(key)
    if found is None:
        return None
    return parse_manifest(found[0], store.uri(key)), found[1]


def data_keys(paths: DatasetPaths) -> dict[str, int]:
    """The published data files, relative to ``data/``, with their sizes."""
    return {key.removeprefix(DATA): size for key, size in paths.store.sizes(DATA).items()}


def read_current_version(paths: DatasetPaths) -> tuple[dict[str, Any] | None, str | None]:
    """``read_current``, with the version of current.json that a commit must still find."""
    found = read_pointer(paths)
    if found[0] is not None:
        return found
    staged = _staged_batches(paths)
    present = [
        name
        for name in sorted(data_keys(paths))
        if not staged.intersection(_batch_candidates(name.rsplit("/", 1)[-1]))
    ]
    if present:  # files that are not those of an interrupted first commit
        raise DatasetStateError(
            f"{paths.store.uri(CURRENT)} is missing but {paths.store.uri(DATA)} holds "
            f"{len(present)} file(s) (e.g. {present[0]}); the run stops so that nothing is "
            "deleted; " + REPAIR_HINT.format(root=paths.location)
        )
    return None, None


def read_pointer(paths: DatasetPaths) -> tuple[dict[str, Any] | None, str | None]:
    """current.json, verified, and its version; (None, None) when there is none. Unlike
    ``read_current_version`` it does not look at ``data/``: for a shard, whose siblings'
    uploads of a first batch are there before any current.json."""
    found = paths.store.read(CURRENT)  # a store that cannot be read says so, with no hint
    if found is None:
        return None, None
    try:
        return parse_manifest(found[0], paths.store.uri(CURRENT)), found[1]
    except DatasetStateError as exc:  # damaged or edited: the manifests can rebuild it
        raise DatasetStateError(f"{exc}; " + REPAIR_HINT.format(root=paths.location)) from exc


def read_current(paths: DatasetPaths) -> dict[str, Any] | None:
    """The current manifest, verified; None only for an output that has never been committed
    to (no current.json, and no data file but those of a batch whose staging folder is still
    there: a first commit that was interrupted before its commit point). Anything else a run
    must not build on raises DatasetStateError: deleting or re-listing files on an
    unverified pointer loses data."""
    return read_current_version(paths)[0]


def adopt_or_refuse(
    paths: DatasetPaths,
    current: dict[str, Any] | None,
    recorded: set[str],
    *,
    legacy: bool = False,
) -> bool:
    """Whether the warehouse must record ``current`` (the verified current manifest) as its
    own now. It is ours when the warehouse recorded it (``recorded``: the batches it
    committed), or when its staging folder is still here (killed just after its commit point,
    before the record). ``legacy``: a warehouse from before such records existed, on a folder
    only it writes to, adopts it with a warning. Anything else raises DatasetStateError:
    another warehouse publishes to this dataset, and building on its manifest from this
    warehouse would republish the dataset without what only the other one holds."""
    if current is None or current["batch_id"] in recorded:
        return False
    if paths.staging(current["batch_id"]).exists():
        return True
    if legacy:
        log.warning(
            "adopting batch %s of %s: this warehouse has no record of the batches it "
            "published (made before this version)",
            current["batch_id"],
            paths.location,
        )
        return True
    raise DatasetStateError(
        f"{paths.store.uri(CURRENT)} names batch {current['batch_id']}, which this warehouse "
        f"did not commit (it knows {len(recorded)} batch(es) of its own): another warehouse or "
        "machine publishes to this dataset, and this one would republish it without what only "
        "that one holds. Run from the work folder (--work-dir) or --warehouse that built it; "
        "one writer per dataset"
    )


def check_listed_files(paths: DatasetPaths, manifest: dict[str, Any]) -> None:
    """Every file a manifest is about to carry forward must still be there, with its size."""
    entries = manifest.get("dataset_files", [])
    present = data_keys(paths) if entries else {}
    missing = [
        entry["path"]
        for entry in entries
        if entry["path"] not in present
        or present[entry["path"]] != entry.get("size_bytes", present[entry["path"]])
    ]
    if missing:
        raise DatasetStateError(
            f"{len(missing)} file(s) of the dataset are missing or changed in "
            f"{paths.store.uri(DATA)} (e.g. {missing[0]}); nothing was committed. Restore them, "
            "or republish with --rebuild-all (telemetry) so that no manifest lists a file that "
            "is not there"
        )


def repair_current(paths: DatasetPaths, batch_id: str | None = None) -> dict[str, Any]:
    """Rebuild a missing, unreadable or edited ``current.json`` from the newest manifest whose
    checksum verifies, if all its files are present. Returns that manifest; raises
    DatasetStateError, changing nothing, when there is none or its files are not all there
    (an older manifest is never promoted over a newer one: that would un-publish a committed
    batch and let the next run delete its files). A manifest of a batch whose staging folder
    is still there never reached its commit point and is not a candidate. A current.json
    that verifies is left as it is; if files it lists are missing, that is an error.
    On a shared store (S3) another machine's batch may have created its manifest and died
    before its swap, and nothing there tells it from a committed one: with more than one
    candidate the caller names the batch (``batch_id``) that was current."""
    store = paths.store
    current = store.read(CURRENT)
    if current is not None:
        try:
            manifest = parse_manifest(current[0], store.uri(CURRENT))
        except DatasetStateError as exc:
            log.warning("repairing: %s", exc)
        else:
            check_listed_files(paths, manifest)
            log.info("%s is valid; nothing to repair", store.uri(CURRENT))
            return manifest
    staged = _staged_batches(paths)
    candidates = []
    problems = []
    for key in sorted(store.sizes(MANIFESTS)):
        name = key.removeprefix(MANIFESTS)
        if not (name.startswith("manifest-") and name.endswith(".json")):
            continue
        if name.removeprefix("manifest-").removesuffix(".json") in staged:
            continue
        try:
            found = _read_manifest(store, key)
        except DatasetStateError as exc:
            problems.append(str(exc))
            continue
        if found is not None:
            candidates.append((str(found[0].get("created_at", "")), name, found[0]))
    if not candidates:
        detail = "; ".join(problems[:3]) or "no manifest-*.json of a committed batch"
        raise DatasetStateError(
            f"{store.uri(MANIFESTS)}: no valid manifest to repair from ({detail})"
        )
    if batch_id is not None:
        chosen = [c for c in candidates if c[2].get("batch_id") == batch_id]
        if not chosen:
            raise DatasetStateError(
                f"{store.uri(MANIFESTS)}: no valid manifest of batch {batch_id} to repair from"
            )
        _, name, manifest = chosen[0]
    elif paths.shared and len(candidates) > 1:
        newest = sorted(candidates, key=lambda c: (c[0], c[1]), reverse=True)[:3]
        raise DatasetStateError(
            f"{store.uri(MANIFESTS)} holds {len(candidates)} manifests, and on a shared store "
            "the newest may be another machine's batch that died before its commit: name the "
            "batch that was current with --batch (newest: "
            + ", ".join(f"{c[2].get('batch_id')} created {c[0]}" for c in newest)
            + "); nothing was changed"
        )
    else:
        _, name, manifest = max(candidates, key=lambda c: (c[0], c[1]))
    check_listed_files(paths, manifest)
    body = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
    store.swap(CURRENT, body, current[1] if current else None)
    log.warning(
        "repaired %s from %s (batch %s)", store.uri(CURRENT), name, manifest.get("batch_id")
    )
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
    expected_version: str | None,
    after_commit: Callable[[str], None] | None = None,
) -> str:
    """Publish the staged files of ``batch_id`` into ``data/`` and ``manifest`` as the
    current dataset, if current.json is still ``expected_version`` (the version the batch was
    built on, read with ``previous`` by ``read_current_version``). Else CommitConflictError,
    after removing what this call published: the dataset is as the other writer left it.
    ``after_commit(manifest_uri)`` runs after the commit point (to record it in the
    warehouse); nothing after that point can undo the commit, so a later error is logged and
    left to the next run's ``remove_leftovers``. Returns the manifest's path or URI."""
    store = paths.store
    staging = paths.staging(batch_id)
    staged = sorted(staging.rglob("*.parquet")) if staging.exists() else []
    written = {source.relative_to(staging).as_posix() for source in staged}
    check_listed_files(
        paths,
        {"dataset_files": [f for f in manifest["dataset_files"] if f["path"] not in written]},
    )
    key = manifest_key(batch_id)
    published: list[str] = []
    try:
        crash_point("before_move")
        for index, source in enumerate(staged):
            target = DATA + source.relative_to(staging).as_posix()
            store.publish_file(target, source)
            published.append(target)
            if index == 0:
                crash_point("after_first_move")
        store.flush()

        crash_point("before_manifest")
        body = json.dumps(manifest, indent=2, sort_keys=False, default=str).encode()
        store.create(key, body)
        published.append(key)
        crash_point("before_current")
        store.swap(CURRENT, body, expected_version)  # the commit point: nothing below undoes it
    except CommitConflictError as conflict:
        for leftover in published:  # ours (this batch's unique names), never referenced
            store.delete(leftover)
        raise CommitConflictError(
            f"batch {batch_id} was not committed: {conflict}; {paths.location} is as the other "
            "writer left it, and this batch's files were removed again"
        ) from conflict
    crash_point("after_current")

    try:
        if after_commit is not None:
            after_commit(store.uri(key))
        live = referenced(manifest)
        for entry in previous.get("superseded_files", []) if previous else []:
            if entry["path"] not in live:
                store.delete(DATA + entry["path"])
        store.flush()
        shutil.rmtree(staging, ignore_errors=True)
    except Exception as exc:  # committed: the next run's clean-up finishes the work
        log.warning(
            "batch %s is committed; its clean-up failed and is left to the next run: %s",
            batch_id,
            exc,
        )
    return store.uri(key)


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
    in place with a warning.
    A shared store (S3, where other machines may be mid-commit) proves less: there a batch is
    ours only by this folder's staging or ``keep_manifest``, never by a manifest alone.
    Returns what was removed."""
    store = paths.store
    current = read_current(paths)
    removed: list[str] = []
    live = referenced(current)
    staged_batches = _staged_batches(paths)
    manifest_names = [key.removeprefix(MANIFESTS) for key in sorted(store.sizes(MANIFESTS))]
    manifest_batches = {
        name.removeprefix("manifest-").removesuffix(".json")
        for name in manifest_names
        if name.startswith("manifest-")
    }
    foreign: list[str] = []
    known = staged_batches if paths.shared else staged_batches | manifest_batches
    for relative in sorted(data_keys(paths)):
        if relative in live:
            continue
        name = relative.rsplit("/", 1)[-1]
        if any(b in known or keep_manifest(b) for b in _batch_candidates(name)):
            store.delete(DATA + relative)
            removed.append(store.uri(DATA + relative))
        else:
            foreign.append(relative)
    if foreign:
        log.warning(
            "%d file(s) in %s are not listed by the current manifest and not known to be ours; "
            "left in place (e.g. %s)",
            len(foreign),
            store.uri(DATA),
            foreign[0],
        )
    for name in manifest_names:
        batch = name.removeprefix("manifest-").removesuffix(".json")
        uncommitted = (
            name.startswith("manifest-")
            and not keep_manifest(batch)
            and (current is None or batch != current["batch_id"])
            and (not paths.shared or batch in staged_batches)
        )
        if (name.startswith(".") and not paths.shared) or uncommitted:
            store.delete(MANIFESTS + name)
            removed.append(store.uri(MANIFESTS + name))
    store.flush()
    if paths.staging_root.exists():  # last: a staging folder is what proves a batch ours
        for leftover in sorted(paths.staging_root.iterdir()):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(str(leftover))
    return removed
