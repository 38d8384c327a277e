"""One CRM task run, synchronous (the TaskIQ task runs it in ``asyncio.to_thread``):
register the task's export files as deliveries, run its dbt selection, count what changed
and its mart, and return the completion event. Never raises: a failed run, and any
unexpected exception, is an event that says it failed and why.

Writers are serialized: within a worker by a process lock (dbt's runner is not thread
safe), across workers by the warehouse's file lock (DuckDB has one writer). A task is
idempotent (an export whose bytes were taken in before is not loaded again; the marts are
merged or rebuilt on their keys), so a task redelivered after a killed worker does not
duplicate anything."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from batch_processor import db
from batch_processor.crm.events import CompletionEvent
from batch_processor.crm.sources import Delivery, mark_merged, register_tables
from batch_processor.crm.tasks import LATEST_STATE, CrmTask
from batch_processor.dbt_runner import batch_build, ensure_tables, run_dbt
from batch_processor.errors import BatchProcessorError
from batch_processor.run_lock import warehouse_lock

log = logging.getLogger(__name__)

SOURCE_TABLES = [
    ("crm_raw", "deliveries"),
    ("crm_raw", "customers"),
    ("crm_raw", "orders"),
    ("crm_raw", "payments"),
    ("crm_raw", "leads"),
]
LOCK_TIMEOUT_S = 600.0
DELAY_ENV = "BATCH_PROCESSOR_CRM_TASK_DELAY_S"  # test hook: sleep before the run (kill tests)
_DBT = threading.Lock()

_CHANGES_SQL = """
select
    count(*) filter (where batch_id = $batch and first_batch_id = $batch),
    count(*) filter (where batch_id = $batch and first_batch_id != $batch)
from {state}
"""


def _changes(
    warehouse: Path, deliveries: list[Delivery], batch_id: str | None
) -> dict[str, dict[str, int]]:
    """Per delivered table: rows, identical repeats, and the ids this run inserted, updated
    and left unchanged (counted in SQL on the raw table and the table's latest state)."""
    changes: dict[str, dict[str, int]] = {}
    con = db.connect(warehouse, read_only=True)
    try:
        for delivery in deliveries:
            if delivery.already_taken_in:
                changes[delivery.table] = {"rows": 0, "already_taken_in": 1}
                continue
            state, key = LATEST_STATE[delivery.table]
            distinct_ids, distinct_rows = con.execute(
                f"select count(distinct {key}), count(*) "
                f"from (select distinct * from {state.staging})"
            ).fetchall()[0]
            inserted, updated = con.execute(
                _CHANGES_SQL.format(state=state.latest), {"batch": batch_id or ""}
            ).fetchall()[0]
            changes[delivery.table] = {
                "rows": delivery.rows,
                "duplicate_rows": delivery.rows - int(distinct_rows),
                "inserted": int(inserted),
                "updated": int(updated),
                "unchanged": int(distinct_ids) - int(inserted) - int(updated),
            }
    finally:
        con.close()
    return changes


def run_crm_task(
    task: CrmTask,
    input_dir: Path,
    warehouse: Path,
    work: Path,
    *,
    manifest: Any = None,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> CompletionEvent:
    started = time.monotonic()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    batch_id: str | None = None

    def failed(error: BaseException, *, unexpected: bool) -> CompletionEvent:
        if unexpected:
            log.exception("%s: unexpected error", task.name)
        return CompletionEvent(
            task=task.name,
            batch_id=batch_id,
            status="failed",
            rows=0,
            duration_ms=round(1000 * (time.monotonic() - started)),
            error=str(error) or type(error).__name__,
            error_type=type(error).__name__ if unexpected else None,
            worker=worker,
        )

    try:
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        if delay:
            log.info("%s: test delay %.1f s", task.name, delay)
            time.sleep(delay)
        with _DBT, warehouse_lock(warehouse, lock_timeout_s):
            ensure_tables(warehouse, SOURCE_TABLES, "crm_create_source_tables", manifest=manifest)
            con = db.connect(warehouse)
            try:
                deliveries = register_tables(con, input_dir, list(task.sources))
            finally:
                con.close()
            log.info("%s: registered %s", task.name, [d.as_dict() for d in deliveries])
            run = run_dbt(
                batch_build(task.selector),
                warehouse=warehouse,
                target_path=work,
                manifest=manifest,
            )
            batch_id = run.invocation_id
            if not run.success:
                examples = run.failing_rows(warehouse)
                raise BatchProcessorError(f"dbt build failed: {run.failure_summary(examples)}")
            con = db.connect(warehouse)
            try:
                mark_merged(con, deliveries, batch_id or "")
            finally:
                con.close()
            changes = _changes(warehouse, deliveries, batch_id)
            con = db.connect(warehouse, read_only=True)
            try:
                rows = int(con.execute(f"select count(*) from {task.mart}").fetchall()[0][0])
            finally:
                con.close()
    except (BatchProcessorError, OSError) as error:
        return failed(error, unexpected=False)
    except Exception as error:  # never silence: the event says what broke
        return failed(error, unexpected=True)
    return CompletionEvent(
        task=task.name,
        batch_id=batch_id,
        status="ok",
        rows=rows,
        duration_ms=round(1000 * (time.monotonic() - started)),
        worker=worker,
        changes=changes or None,
    )
