"""A telemetry batch fanned out by site over the NATS workers, committed once.

The coordinator (``telemetry run --workers nats://…``):
1. takes the dataset's coordinator lease (``leases/coordinator.json``, created only if absent:
   one sharded batch commits to a dataset at a time) and reads current.json's version;
2. splits the batch's files by site (the sites seed's rule, as the loader resolves them; a
   file of no site goes to the first shard, whose loader rejects it with the reason);
3. enqueues one ``telemetry.shard`` task per site; any worker runs it in the site's shard
   folder (``telemetry.shard``), uploads its partitions and writes its part of the manifest;
   a failed shard is enqueued again up to ``shard_attempts``; a killed worker's task comes back
   from JetStream after its ack wait and runs on another worker;
4. once every shard answered ok: one manifest (the shards' files, ledgers and dbt nodes, plus
   ``shards``: the shard batch that last rebuilt each site) committed with the same
   conditional swap as a single-process batch; if any shard failed or did not answer within
   ``shard_timeout_s``, it deletes the shards' uploads and commits nothing.
The batch report covers every shard.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from batch_processor.config import TelemetryConfig
from batch_processor.dataset_commit import (
    CURRENT,
    DATA,
    DatasetPaths,
    commit_files,
    publish_report,
    read_current_version,
)
from batch_processor.dataset_store import CommitConflictError, DatasetStore
from batch_processor.errors import RunFailedError
from batch_processor.run_lock import exclusive
from batch_processor.telemetry.discover import discover_files
from batch_processor.telemetry.ledger import CONFLICTS_LISTED, ledger_totals
from batch_processor.telemetry.loader import LoadSummary
from batch_processor.telemetry.manifest import assemble_manifest
from batch_processor.telemetry.pipeline import (
    BatchFailedError,
    TelemetryRunResult,
    quality_report_after_commit,
)
from batch_processor.telemetry.publisher import CommitResult, carry_forward
from batch_processor.telemetry.report import write_report
from batch_processor.telemetry.shard import ShardEvent, ShardTask
from batch_processor.telemetry.sites import SiteRegistry

log = logging.getLogger(__name__)

LEASE = "leases/coordinator.json"


def split_by_site(config: TelemetryConfig, input_dir: Path) -> dict[str, list[str]]:
    """The batch's files (relative paths) per site."""
    registry = SiteRegistry.from_seed(config.sites_seed)
    by_site: dict[str, list[str]] = {}
    unresolved: list[str] = []
    for _, relative in discover_files(input_dir, config.input_pattern):
        site = registry.resolve(relative)
        (by_site.setdefault(site.site_id, []) if site else unresolved).append(str(relative))
    if not by_site:
        raise RunFailedError(
            f"no file under {input_dir} belongs to a site of {config.sites_seed} "
            f"({len(unresolved)} file(s) found): nothing to shard"
        )
    if unresolved:  # rejected by the loader of one shard, with the reason, in its ledger
        by_site[min(by_site)].extend(unresolved)
    return by_site


@contextmanager
def coordinator_lease(store: DatasetStore, batch_id: str, ttl_s: float) -> Iterator[None]:
    """Hold the dataset's coordinator lease: created only if absent; an expired one (its
    coordinator was killed) is taken over only if unchanged since read."""
    now = datetime.now(UTC)
    body = json.dumps(
        {
            "batch_id": batch_id,
            "holder": f"{socket.gethostname()}:{os.getpid()}",
            "acquired_at": now.isoformat(),
            "expires_at": (now + timedelta(seconds=ttl_s)).isoformat(),
        }
    ).encode()
    try:
        store.create(LEASE, body)
    except CommitConflictError:
        found = store.read(LEASE)
        holder = json.loads(found[0]) if found else {}
        if found and datetime.fromisoformat(holder["expires_at"]) > now:
            raise CommitConflictError(
                f"another coordinator ({holder.get('holder')}, batch {holder.get('batch_id')}) "
                f"is committing to {store.uri('')} until {holder['expires_at']}: one sharded "
                f"batch at a time; if it was killed, its lease ({store.uri(LEASE)}) expires "
                "then"
            ) from None
        store.swap(LEASE, body, found[1] if found else None)
        log.warning("took over the expired coordinator lease of batch %s", holder.get("batch_id"))
    try:
        yield
    finally:
        found = store.read(LEASE)
        if found and json.loads(found[0]).get("batch_id") == batch_id:
            store.delete(LEASE)


async def dispatch(
    url: str, tasks: list[ShardTask], attempts: int, timeout_s: float
) -> dict[str, ShardEvent]:
    """Enqueue the shards and collect their final events (a failed one is enqueued again
    until it ran ``attempts`` times); the sites missing from the answer did not answer in
    ``timeout_s``."""
    from batch_processor.crm import subjects
    from batch_processor.crm.broker import build_broker, enqueue, ensure_events_stream

    batch_id = tasks[0].batch_id
    pending = {task.site_id: task for task in tasks}
    answers: asyncio.Queue[ShardEvent] = asyncio.Queue()

    async def collect(message: Any) -> None:
        try:
            event = ShardEvent.model_validate_json(message.data)
        except ValidationError as error:
            log.warning("dropped a shard event that is not valid: %s", error)
            return
        if event.batch_id == batch_id:
            answers.put_nowait(event)

    broker = build_broker(url)
    await broker.startup()
    try:
        await ensure_events_stream(broker)
        await broker.client.subscribe(subjects.SHARD_COMPLETED, cb=collect)
        for task in tasks:
            await enqueue(broker, subjects.SHARD_TASK, task=task.model_dump(mode="json"))
        log.info("batch %s: %d shard(s) enqueued on %s", batch_id, len(tasks), url)
        done: dict[str, ShardEvent] = {}
        deadline = time.monotonic() + timeout_s
        while pending and (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(answers.get(), timeout=left)
            except TimeoutError:
                break
            waiting = pending.get(event.site_id)
            if waiting is None or event.attempt != waiting.attempt:
                continue  # answered already, or an earlier attempt's late answer
            task = waiting
            if event.status == "failed" and task.attempt < attempts:
                log.warning(
                    "shard %s failed (attempt %d of %d), enqueued again: %s",
                    event.site_id,
                    task.attempt,
                    attempts,
                    event.error,
                )
                pending[event.site_id] = task.model_copy(update={"attempt": task.attempt + 1})
                await enqueue(
                    broker,
                    subjects.SHARD_TASK,
                    task=pending[event.site_id].model_dump(mode="json"),
                )
                continue
            log.info(
                "shard %s: %s in %.1f s (%s)",
                event.site_id,
                event.status,
                event.seconds,
                event.worker,
            )
            del pending[event.site_id]
            done[event.site_id] = event
        return done
    finally:
        await broker.shutdown()


def merge_accounting(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The shards' accountings as one batch's."""
    files = sorted(
        (f for p in parts for f in p["ledger"]["files"]), key=lambda f: f["relative_path"]
    )
    conflicts = sorted(
        (c for p in parts for c in p["within_file_conflicts"]["first"]),
        key=lambda c: (c["file"], c["reading_at"], c["device_id"], c["point_id"]),
    )
    return {
        "ledger": {"totals": ledger_totals(files), "files": files},
        "superseded_cells": sorted(
            (s for p in parts for s in p["superseded_cells"]),
            key=lambda s: (s["losing_file"], s["winning_file"], s["losing_batch_id"]),
        ),
        "within_file_conflicts": {
            "count": sum(p["within_file_conflicts"]["count"] for p in parts),
            "rule": "the last line wins",
            "first": conflicts[:CONFLICTS_LISTED],
        },
        "gaps": sorted(
            (g for p in parts for g in p["gaps"]), key=lambda g: (g["site_id"], g["start"])
        ),
    }


def merge_loads(batch_id: str, loads: list[dict[str, Any] | None]) -> LoadSummary:
    summary = LoadSummary(batch_id=batch_id)
    for load in filter(None, loads):
        summary.files_total += load["files_total"]
        for status, count in load["by_status"].items():
            summary.by_status[status] = summary.by_status.get(status, 0) + count
        summary.rows_read += load["rows_read"]
        summary.rows_rejected += load["rows_rejected"]
        summary.lines_swallowed += load["lines_swallowed"]
        summary.set_aside += [(path, reason) for path, reason in load["set_aside"]]
        summary.seconds = max(summary.seconds, load["seconds"])
    summary.set_aside.sort()
    return summary


def _read_part(paths: DatasetPaths, event: ShardEvent) -> dict[str, Any] | None:
    found = paths.store.read(event.result_key) if event.result_key else None
    return json.loads(found[0]) if found else None


def _shard_runs(
    events: dict[str, ShardEvent], parts: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        {
            "site_id": site,
            "status": event.status,
            "shard_batch_id": event.shard_batch_id,
            "worker": event.worker,
            "attempt": event.attempt,
            "seconds": event.seconds,
            "error": event.error,
            "timings_s": (parts.get(site) or {}).get("timings_s"),
        }
        for site, event in sorted(events.items())
    ]


def run_sharded(
    config: TelemetryConfig, input_dir: Path, output: Path | str, *, nats_url: str
) -> TelemetryRunResult:
    """One batch, its sites built by the workers on ``nats_url``, committed here once."""
    if not input_dir.is_dir():
        raise RunFailedError(f"input folder not found: {input_dir}")
    input_dir = input_dir.absolute()
    paths = config.output_paths(output)
    shard_dir = (config.shard_dir or paths.root / "_shards").absolute()
    started_at = datetime.now(UTC)
    result = TelemetryRunResult(batch_id=str(uuid.uuid4()))
    events: dict[str, ShardEvent] = {}
    parts: dict[str, dict[str, Any]] = {}
    with exclusive(paths.root / ".lock", str(paths.root), config.lock_timeout_s):
        paths.make()
        try:
            with coordinator_lease(paths.store, result.batch_id, config.shard_timeout_s + 600):
                previous, version = read_current_version(paths)
                step = time.monotonic()
                by_site = split_by_site(config, input_dir)
                tasks = [
                    ShardTask(
                        batch_id=result.batch_id,
                        site_id=site,
                        input_dir=str(input_dir),
                        files=files,
                        output=paths.location,
                        shard_dir=str(shard_dir),
                        base_version=version,
                        config=config.model_dump(mode="json"),
                    )
                    for site, files in sorted(by_site.items())
                ]
                events = asyncio.run(
                    dispatch(nats_url, tasks, config.shard_attempts, config.shard_timeout_s)
                )
                result.timings["shards_s"] = time.monotonic() - step
                parts = {site: part for site, e in events.items() if (part := _read_part(paths, e))}
                ok = [p for p in parts.values() if p.get("status") == "ok"]
                result.load = merge_loads(result.batch_id, [p.get("load") for p in parts.values()])
                accountings = [p["accounting"] for p in parts.values() if p.get("accounting")]
                result.accounting = merge_accounting(accountings) if accountings else None
                missing = sorted(set(by_site) - set(events))
                failed = sorted(s for s, e in events.items() if e.status != "ok")
                if missing or failed:
                    raise RunFailedError(
                        "; ".join(
                            [f"shard {s} failed: {events[s].error}" for s in failed]
                            + (
                                [
                                    f"no answer within {config.shard_timeout_s:g} s from the "
                                    f"shard(s) {', '.join(missing)} (are workers running on "
                                    f"{nats_url}?)"
                                ]
                                if missing
                                else []
                            )
                        )
                        + ": nothing was committed"
                    )
                step = time.monotonic()
                result.commit = _commit(
                    paths, result.batch_id, previous, version, ok, result.accounting or {}
                )
                result.timings["commit_s"] = time.monotonic() - step
        except Exception as exc:
            _delete_uploads(paths, [p for p in parts.values() if p.get("status") == "ok"], result)
            failure = {"kind": "error", "message": str(exc), "shards": _shard_runs(events, parts)}
            if not isinstance(exc, RunFailedError):
                failure["traceback"] = traceback.format_exc()
            message = str(exc)
            try:
                result.report_path = write_report(
                    paths,
                    config,
                    result,
                    started_at,
                    input_dir,
                    failure=failure,
                    extra=_report_extra(events, parts),
                )
                publish_report(paths, result.report_path)
            except OSError as report_error:
                message += f"; the batch report could not be written: {report_error}"
            raise BatchFailedError(message, result.report_path) from exc
        result.report_path = write_report(
            paths, config, result, started_at, input_dir, extra=_report_extra(events, parts)
        )
        publish_report(paths, result.report_path)
        result.quality_report_path = quality_report_after_commit(paths, result, config)
        result.dataset_current = paths.store.uri(CURRENT)
    return result


def _report_extra(
    events: dict[str, ShardEvent], parts: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    rejected = {
        f["path"]: f["rejected_rows"]
        for p in parts.values()
        for f in p.get("input_files", [])
        if f.get("rejected_rows")
    }
    return {
        "warehouse": None,
        "shards": _shard_runs(events, parts),
        "rejected_rows_by_file": dict(sorted(rejected.items())),
    }


def _delete_uploads(
    paths: DatasetPaths, parts: list[dict[str, Any]], result: TelemetryRunResult
) -> None:
    """A batch that did not commit: its shards' uploads go (no manifest names them)."""
    if result.commit is not None:
        return
    for part in parts:
        for entry in part["written_files"]:
            try:
                paths.store.delete(DATA + entry["path"])
            except Exception as exc:  # the shard's next run deletes them too
                log.warning("could not delete %s: %s", entry["path"], exc)
    paths.store.flush()


def _commit(
    paths: DatasetPaths,
    batch_id: str,
    previous: dict[str, Any] | None,
    version: str | None,
    parts: list[dict[str, Any]],
    accounting: dict[str, Any],
) -> CommitResult:
    """One manifest of every shard's files, on the version the batch started from."""
    rebuilt = {(p[0], p[1], p[2]) for part in parts for p in part["rebuilt_partitions"]}
    written = sorted((f for part in parts for f in part["written_files"]), key=lambda f: f["path"])
    carried = carry_forward(paths, previous, rebuilt, accounting["gaps"])
    schema = next((part["schema"] for part in parts if part["schema"]), None)
    manifest = assemble_manifest(
        batch_id=batch_id,
        files=sorted((f for part in parts for f in part["input_files"]), key=lambda f: f["path"]),
        dbt={"invocations": [part["dbt"] for part in sorted(parts, key=lambda p: p["site_id"])]},
        written_files=written,
        dataset_files=sorted(carried.kept + written, key=lambda f: f["path"]),
        superseded_files=carried.superseded,
        schema=schema or (previous["schema"] if previous else {}),
        accounting={**accounting, "gaps": carried.gaps},
        extra={
            "shards": dict(
                sorted(
                    {
                        **(previous or {}).get("shards", {}),
                        **{part["site_id"]: part["shard_batch_id"] for part in parts},
                    }.items()
                )
            )
        },
    )
    manifest_path = commit_files(paths, batch_id, manifest, previous, expected_version=version)
    log.info(
        "committed sharded batch %s: %d shard(s), %d file(s) written",
        batch_id,
        len(parts),
        len(written),
    )
    return CommitResult(manifest_path=manifest_path, manifest=manifest)
