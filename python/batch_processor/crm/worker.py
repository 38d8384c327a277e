"""``batch-processor worker``: a long-lived process that serves the CRM tasks from NATS and
runs the event listeners. dbt is imported and the project parsed once, at start-up; each
task then runs its dbt selection with that manifest (no parse per task).

Fit for a supervisor (systemd, Kubernetes): it reconnects to NATS for ever (an outage is
ridden out; see crm.broker), exits 1 if NATS closes the connection for good, and on SIGTERM
or SIGINT drains: no new task is fetched, the task in flight finishes, publishes its event
and is acked, then the worker exits 0 (an idle worker exits at once). Every few seconds it
writes its status (connected, task in flight, last task, tasks done) to the JetStream
key-value bucket subjects.WORKERS_STATUS_BUCKET, whose entries expire when a worker stops
writing; ``batch-processor worker status`` prints them with the queue depth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from nats.js.api import KeyValueConfig
from taskiq.api import run_receiver_task

from batch_processor.crm import (
    listeners,  # noqa: F401  (registers the listeners)
    subjects,
)
from batch_processor.crm.broker import (
    CrmBroker,
    WorkerContext,
    build_broker,
    ensure_events_stream,
    register_tasks,
    worker_name,
)
from batch_processor.crm.etl import LOCK_TIMEOUT_S
from batch_processor.crm.events import HANDLERS, EventHandler
from batch_processor.dbt_runner import parse_project
from batch_processor.errors import RunFailedError

log = logging.getLogger(__name__)

DRAIN_TIMEOUT_ENV = "BATCH_PROCESSOR_WORKER_DRAIN_TIMEOUT_S"
DEFAULT_DRAIN_TIMEOUT_S = 3600.0  # longer than any task: SIGTERM lets it finish
STATUS_EVERY_S = 5.0
STATUS_TTL_S = 30.0


class _DropStopNotice(logging.Filter):
    """taskiq warns "The listenig task was cancelled." on every normal stop: not news."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "task was cancelled" not in record.getMessage()


logging.getLogger("taskiq.receiver").addFilter(_DropStopNotice())


def _deliver_to(handler: EventHandler, broker: Any) -> Callable[[Msg], Awaitable[None]]:
    async def deliver(message: Msg) -> None:
        try:
            await handler(message.data, broker)
        except Exception:  # a listener's bug must not take the subscription down
            log.exception("listener for %s failed", handler.subject)

    return deliver


def _status_key(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


async def _report_status(broker: CrmBroker, context: WorkerContext, started: str) -> None:
    """Write this worker's status to the key-value bucket every STATUS_EVERY_S."""
    name = worker_name()
    bucket: Any = None
    while True:
        try:
            if bucket is None:
                try:
                    bucket = await broker.js.key_value(subjects.WORKERS_STATUS_BUCKET)
                except Exception:  # not there yet: the first worker creates it
                    bucket = await broker.js.create_key_value(
                        KeyValueConfig(bucket=subjects.WORKERS_STATUS_BUCKET, ttl=STATUS_TTL_S)
                    )
            status = {
                "worker": name,
                "connected": broker.connected,
                "started_at": started,
                "updated_at": datetime.now(UTC).isoformat(),
                "in_flight": context.current_task,
                "last_task": context.last_task,
                "tasks_done": context.tasks_done,
                "draining": broker.draining,
            }
            await bucket.put(_status_key(name), json.dumps(status).encode())
        except asyncio.CancelledError:
            raise
        except Exception as error:  # NATS is away: the status simply expires meanwhile
            log.debug("could not write the worker status: %s", error)
        await asyncio.sleep(STATUS_EVERY_S)


async def serve(
    url: str,
    warehouse: Path,
    input_dir: Path,
    work: Path,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> None:
    context = WorkerContext(
        warehouse=warehouse, input_dir=input_dir, work=work, lock_timeout_s=lock_timeout_s
    )
    context.manifest = await asyncio.to_thread(parse_project)  # once, for every task
    stop = asyncio.Event()
    lost = asyncio.Event()

    def closed() -> None:
        lost.set()
        stop.set()

    broker = build_broker(url, on_closed=closed)
    register_tasks(broker, context)
    broker.is_worker_process = True
    await broker.startup()
    await ensure_events_stream(broker)
    subscriptions = [  # a queue group: each event reaches one worker's listener
        await broker.client.subscribe(
            handler.subject, queue=subjects.LISTENERS_QUEUE, cb=_deliver_to(handler, broker)
        )
        for handler in HANDLERS
    ]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = datetime.now(UTC).isoformat()
    status = asyncio.create_task(_report_status(broker, context, started))
    log.info("worker ready: %s, warehouse %s, exports %s", url, warehouse, input_dir)
    receiver = asyncio.create_task(
        run_receiver_task(broker, max_async_tasks=1, max_prefetch=0, run_startup=False)
    )
    await stop.wait()
    broker.draining = True
    for subscription in subscriptions:  # events go to the workers that stay
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    if not broker.idle.is_set():
        log.info("stopping: finishing the task in flight (%s) first", context.current_task)
        timeout = float(os.environ.get(DRAIN_TIMEOUT_ENV, "") or DEFAULT_DRAIN_TIMEOUT_S)
        try:
            await asyncio.wait_for(broker.idle.wait(), timeout=timeout)
        except TimeoutError:
            log.error("the task in flight did not finish within %g s: leaving it", timeout)
    # the receiver ends by itself once fetching stopped; cancelling it mid-fetch is the
    # fallback (and would log the cancelled fetch)
    done, _ = await asyncio.wait({receiver}, timeout=2 * (broker.pull_consume_timeout or 1.0) + 1)
    status.cancel()
    if not done:
        receiver.cancel()
    for pending in (receiver, status):
        with contextlib.suppress(asyncio.CancelledError):
            try:
                await pending
            except Exception:
                log.exception("while stopping")
    if not lost.is_set():
        await broker.shutdown()
    log.info("worker stopped")
    if lost.is_set():
        raise RunFailedError("the NATS connection was closed for good")


def run_worker(
    url: str,
    warehouse: Path,
    input_dir: Path,
    work: Path,
    lock_timeout_s: float = LOCK_TIMEOUT_S,
) -> None:
    asyncio.run(serve(url, warehouse, input_dir, work, lock_timeout_s))


async def worker_status(url: str) -> dict[str, Any]:
    """The queue (tasks waiting, in flight, redelivered) and every live worker's status."""
    import nats

    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = client.jetstream()
        queue: dict[str, Any] = {}
        try:
            info = await js.consumer_info(subjects.TASKS_STREAM, subjects.WORKERS_DURABLE)
            queue = {
                "waiting": info.num_pending,
                "in_flight": info.num_ack_pending,
                "redelivered": info.num_redelivered,
                "ack_wait_s": info.config.ack_wait,
            }
        except Exception as error:  # no worker has created the consumer yet
            queue = {"error": f"no task queue yet ({error})"}
        workers: list[dict[str, Any]] = []
        try:
            bucket = await js.key_value(subjects.WORKERS_STATUS_BUCKET)
            for key in await bucket.keys():
                entry = await bucket.get(key)
                if entry.value:
                    workers.append(json.loads(entry.value))
        except Exception as error:  # no bucket or no keys: no live worker
            log.debug("no worker status: %s", error)
        return {"queue": queue, "workers": sorted(workers, key=lambda w: str(w["worker"]))}
    finally:
        await client.close()
