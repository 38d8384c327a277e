"""One CRM task run, synchronous (the TaskIQ task runs it in ``asyncio.to_thread``):
register the task's export files, run its dbt selection, count its mart, and return the
completion event. Never raises for a failed run: the event says it failed and why.

Writers are serialized: within a worker by a process lock (dbt's runner is not thread
safe), across workers by the warehouse's file lock (DuckDB has one writer). A task is
idempotent (the marts are rebuilt or merged on their keys), so a task redelivered after a
killed worker does not duplicate anything."""

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
from batch_processor.crm.sources import register_tables
from batch_processor.crm.tasks import CrmTask
from batch_processor.dbt_runner import ensure_tables, run_dbt
from batch_processor.errors import BatchProcessorError
from batch_processor.run_lock import warehouse_lock

log = logging.getLogger(__name__)

SOURCE_TABLES = [
    ("crm_raw", "customers"),
    ("crm_raw", "orders"),
    ("crm_raw", "payments"),
    ("crm_raw", "leads"),
]
LOCK_TIMEOUT_S = 600.0
DELAY_ENV = "BATCH_PROCESSOR_CRM_TASK_DELAY_S"  # test hook: sleep before the run (kill tests)
_DBT = threading.Lock()


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
    try:
        delay = float(os.environ.get(DELAY_ENV, "0") or 0)
        if delay:
            log.info("%s: test delay %.1f s", task.name, delay)
            time.sleep(delay)
        with _DBT, warehouse_lock(warehouse, lock_timeout_s):
            ensure_tables(warehouse, SOURCE_TABLES, "crm_create_source_tables", work / "setup")
            con = db.connect(warehouse)
            try:
                loaded = register_tables(con, input_dir, list(task.sources))
            finally:
                con.close()
            log.info("%s: registered %s", task.name, loaded)
            run = run_dbt(
                ["build", "--select", task.selector],
                warehouse=warehouse,
                target_path=work,
                manifest=manifest,
            )
            batch_id = run.invocation_id
            if not run.success:
                raise BatchProcessorError(f"dbt build failed: {run.failure_summary()}")
            con = db.connect(warehouse, read_only=True)
            try:
                rows = int(con.execute(f"select count(*) from {task.mart}").fetchall()[0][0])
            finally:
                con.close()
    except (BatchProcessorError, OSError) as error:
        return CompletionEvent(
            task=task.name,
            batch_id=batch_id,
            status="failed",
            rows=0,
            duration_ms=round(1000 * (time.monotonic() - started)),
            error=str(error),
            worker=worker,
        )
    return CompletionEvent(
        task=task.name,
        batch_id=batch_id,
        status="ok",
        rows=rows,
        duration_ms=round(1000 * (time.monotonic() - started)),
        worker=worker,
    )
