"""One shard of a sharded telemetry batch: one site's files of the batch, loaded and built in
that site's own warehouse, its rebuilt partitions uploaded into the dataset's ``data/`` under
their unique names (no manifest names them yet), and its part of the manifest written to the
store as a result object. The coordinator (``telemetry.sharded``) commits once every shard
succeeded, or deletes the shards' uploads if any failed.

A shard's folder (``<shard_dir>/site-<site_id>/``) holds its warehouse, dbt artifacts and
staging; it is the site's history and must move with the shard (a shared volume). Which of
its batches are published is told by the dataset: the current manifest's ``shards`` maps each
site to the shard batch (dbt invocation) that last rebuilt it. So a shard adopts that batch,
rolls back every other batch it built that never reached a commit, and deletes what those
uploaded (listed in their staging folder's ``_task.json`` before any upload).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from batch_processor.config import TelemetryConfig
from batch_processor.dataset_commit import (
    DATA,
    DatasetPaths,
    crash_point,
    manifest_key,
    read_pointer,
    referenced,
)
from batch_processor.dataset_store import LocalStore, is_remote, open_store
from batch_processor.db import connect
from batch_processor.errors import RunFailedError
from batch_processor.manifest_common import dbt_nodes, parquet_schema
from batch_processor.run_lock import run_locks
from batch_processor.telemetry.dataset import describe_files
from batch_processor.telemetry.manifest import batch_input_files
from batch_processor.telemetry.pipeline import (
    TelemetryRunResult,
    build_batch,
    prune_artifacts,
    require_balanced,
)
from batch_processor.telemetry.publisher import (
    HISTORY,
    abandon_batch,
    rebuilt_partitions,
    record_commit,
    rollback_batch,
    table_exists,
)

log = logging.getLogger(__name__)

TASK_FILE = "_task.json"  # in a shard batch's staging folder: its coordinator batch, uploads
DONE_FILE = "_done"  # ... and that its result object was written
WAREHOUSE = "warehouse.duckdb"
COMMITTED = "telemetry_meta.committed_batches"


class ShardTask(BaseModel):
    """The message of ``telemetry.shard``: everything a worker on any machine needs."""

    model_config = ConfigDict(frozen=True)

    batch_id: str = Field(description="the coordinator's batch")
    site_id: str
    input_dir: str = Field(description="the batch's input folder (a volume every worker sees)")
    files: list[str] = Field(description="this shard's files, relative to input_dir")
    output: str = Field(description="the dataset: a folder or s3://bucket/prefix")
    shard_dir: str = Field(description="where the shards' folders live (a shared volume)")
    base_version: str | None = Field(description="current.json's version the batch builds on")
    config: dict[str, Any] = Field(description="the coordinator's telemetry settings")
    attempt: int = 1


class ShardEvent(BaseModel):
    """Payload of ``etl.telemetry.shard.completed`` (version 1); the shard's part of the
    manifest is the object ``result_key`` in the dataset's store."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1] = 1
    batch_id: str
    site_id: str
    status: Literal["ok", "failed"]
    shard_batch_id: str | None = None
    result_key: str | None = None
    error: str | None = None
    attempt: int = 1
    worker: str | None = None
    seconds: float = 0.0
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def shard_folder(shard_dir: Path, site_id: str) -> Path:
    """A site's shard folder; the site id is quoted, so it never names another folder."""
    return shard_dir / f"site-{quote(site_id, safe='')}"


def result_key(batch_id: str, site_id: str) -> str:
    return f"reports/{batch_id}/shard-{quote(site_id, safe='')}.json"


def shard_paths(task: ShardTask) -> DatasetPaths:
    store = open_store(task.output) if is_remote(task.output) else LocalStore(Path(task.output))
    return DatasetPaths(shard_folder(Path(task.shard_dir), task.site_id).absolute(), store)


def run_shard(task: ShardTask, worker: str | None = None) -> ShardEvent:
    """Build one shard; an event that says ok (its result object is in the store) or why
    not. Nothing of a failed shard stays in the store."""
    started = time.monotonic()
    paths = shard_paths(task)
    warehouse = paths.root / WAREHOUSE
    config = TelemetryConfig.model_validate(task.config).model_copy(
        update={"warehouse_path": warehouse}
    )
    paths.staging_root.mkdir(parents=True, exist_ok=True)
    key = result_key(task.batch_id, task.site_id)

    def event(status: Literal["ok", "failed"], **fields: Any) -> ShardEvent:
        return ShardEvent(
            batch_id=task.batch_id,
            site_id=task.site_id,
            status=status,
            attempt=task.attempt,
            worker=worker,
            seconds=round(time.monotonic() - started, 3),
            **fields,
        )

    with run_locks(paths.root, warehouse, config.lock_timeout_s):
        done = _finished_before(paths, task.batch_id, key)
        if done is not None:  # a redelivered task whose first run finished: same result
            log.info("shard %s of batch %s was built before: %s", task.site_id, task.batch_id, done)
            return event("ok", shard_batch_id=done, result_key=key)
        current, version = read_pointer(paths)
        if version != task.base_version:
            return event(
                "failed",
                error=f"{paths.location} was committed to since batch {task.batch_id} started "
                "(another writer): this shard is not built on a state that is gone",
            )
        result = TelemetryRunResult(batch_id=str(uuid.uuid4()))
        uploads: list[str] = []
        try:
            reconcile_shard(paths, warehouse, task.site_id, current)
            target = build_batch(
                config,
                paths,
                Path(task.input_dir),
                result,
                only_files=frozenset(task.files),
            )
            accounting = require_balanced(result.accounting)
            part = _publish_shard(paths, task, result, target, accounting, uploads)
            paths.store.put(key, part)
            (paths.staging(result.batch_id) / DONE_FILE).touch()
        except Exception as exc:
            for upload in uploads:  # never referenced: no manifest names a shard's files yet
                paths.store.delete(upload)
            abandon_batch(paths, warehouse, result.batch_id)
            log.warning("shard %s of batch %s failed: %s", task.site_id, task.batch_id, exc)
            failure = {
                "site_id": task.site_id,
                "status": "failed",
                "error": str(exc),
                "failure": getattr(exc, "failure", None),
                "load": dataclasses.asdict(result.load) if result.load else None,
                "accounting": result.accounting,
            }
            paths.store.put(key, json.dumps(failure, indent=2, default=str).encode())
            return event("failed", shard_batch_id=result.batch_id, result_key=key, error=str(exc))
        finally:
            prune_artifacts(paths, config)
    return event("ok", shard_batch_id=result.batch_id, result_key=key)


def _publish_shard(
    paths: DatasetPaths,
    task: ShardTask,
    result: TelemetryRunResult,
    target: Path,
    accounting: dict[str, Any],
    uploads: list[str],
) -> bytes:
    """Upload the shard's staged files into ``data/`` and return its part of the manifest."""
    staging = paths.staging(result.batch_id)
    staged = sorted(staging.rglob("*.parquet"))
    written = describe_files(staging, staged)
    schema = parquet_schema(staged[0]) if staged else {}
    con = connect(paths.root / WAREHOUSE)
    try:
        rebuilt = sorted(rebuilt_partitions(con))
        files = batch_input_files(con, accounting)
        nodes = dbt_nodes(target, con)
    finally:
        con.close()
    uploads.extend(DATA + entry["path"] for entry in written)
    (staging / TASK_FILE).write_text(json.dumps({"batch_id": task.batch_id, "uploads": uploads}))
    step = time.monotonic()
    for index, source in enumerate(staged):
        paths.store.publish_file(DATA + source.relative_to(staging).as_posix(), source)
        if index == 0:
            crash_point("shard_after_first_upload")
    paths.store.flush()
    result.timings["upload_s"] = time.monotonic() - step
    part = {
        "site_id": task.site_id,
        "status": "ok",
        "shard_batch_id": result.batch_id,
        "written_files": written,
        "schema": schema,
        "rebuilt_partitions": [list(p) for p in rebuilt],
        "accounting": accounting,
        "input_files": files,
        "dbt": {"invocation_id": result.batch_id, "site_id": task.site_id, "nodes": nodes},
        "load": dataclasses.asdict(result.load) if result.load else None,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
    }
    return json.dumps(part, indent=2, default=str).encode()


def _finished_before(paths: DatasetPaths, batch_id: str, key: str) -> str | None:
    """The shard batch that already finished this very task (a worker that was killed or
    cut off after its result was written, before its message was acked), if any."""
    for folder in sorted(paths.staging_root.iterdir()):
        marker = folder / TASK_FILE
        if not (folder / DONE_FILE).exists() or not marker.exists():
            continue
        if json.loads(marker.read_text()).get("batch_id") == batch_id:
            found = paths.store.read(key)
            if found and json.loads(found[0]).get("shard_batch_id") == folder.name:
                return folder.name
    return None


def reconcile_shard(
    paths: DatasetPaths, warehouse: Path, site_id: str, current: dict[str, Any] | None
) -> None:
    """Bring the shard's warehouse in line with the dataset: adopt the batch the current
    manifest names for this site, roll back the others that never committed, delete their
    uploads. Refuses a warehouse that does not hold the site's published history."""
    published = (current or {}).get("shards", {}).get(site_id)
    if published is None and any(
        f["partition"]["site_id"] == site_id for f in (current or {}).get("dataset_files", [])
    ):
        raise RunFailedError(
            f"site {site_id} of {paths.location} was published by a single-process run: its "
            "history is in that run's warehouse, not in a shard; run it without --workers, "
            "or publish the sharded runs to a new output"
        )
    con = connect(warehouse)
    try:
        meta = table_exists(con, COMMITTED)  # a new shard has no tables before its build
        known = (
            {row[0] for row in con.execute(f"select batch_id from {COMMITTED}").fetchall()}
            if meta
            else set()
        )
        built = (
            {row[0] for row in con.execute(f"select distinct batch_id from {HISTORY}").fetchall()}
            if table_exists(con, HISTORY)
            else set()
        )
        if published is not None and published not in known | built:
            raise RunFailedError(
                f"the shard warehouse {warehouse} does not hold the history of site {site_id} "
                f"published in {paths.location} (shard batch {published}): building on it would "
                "drop published rows; use the shard folder that built it (--shard-dir)"
            )
        if published is None and known:
            raise RunFailedError(
                f"the shard warehouse {warehouse} holds batches of site {site_id} that "
                f"{paths.location} does not name: it belongs to another dataset"
            )
        if meta and published is not None and current is not None and published not in known:
            record_commit(con, published, paths.store.uri(manifest_key(current["batch_id"])))
            known.add(published)
        for batch_id in sorted(built - known):
            rollback_batch(con, batch_id)
            log.warning("shard %s: rolled back batch %s (never committed)", site_id, batch_id)
    finally:
        con.close()
    live = referenced(current)
    for folder in sorted(paths.staging_root.iterdir()):
        marker = folder / TASK_FILE
        if marker.exists():
            for key in json.loads(marker.read_text()).get("uploads", []):
                if key.removeprefix(DATA) not in live:
                    paths.store.delete(key)
        shutil.rmtree(folder, ignore_errors=True)
    paths.store.flush()
