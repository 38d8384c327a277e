"""``batch-processor worker``: a long-lived process that serves the CRM tasks from NATS and
runs the event listeners. dbt is imported and the project parsed once, at start-up; each
task then runs its dbt selection with that manifest (no parse per task)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from taskiq.api import run_receiver_task

from batch_processor.crm import listeners  # noqa: F401  (registers the listeners)
from batch_processor.crm.broker import (
    WorkerContext,
    build_broker,
    ensure_events_stream,
    register_tasks,
)
from batch_processor.crm.events import HANDLERS, EventHandler
from batch_processor.dbt_runner import parse_project

log = logging.getLogger(__name__)


def _deliver_to(handler: EventHandler, broker: Any) -> Callable[[Msg], Awaitable[None]]:
    async def deliver(message: Msg) -> None:
        await handler(message.data, broker)

    return deliver


async def serve(url: str, warehouse: Path, input_dir: Path, work: Path) -> None:
    context = WorkerContext(warehouse=warehouse, input_dir=input_dir, work=work)
    context.manifest = await asyncio.to_thread(parse_project, warehouse, work / "parse")
    broker = build_broker(url)
    register_tasks(broker, context)
    broker.is_worker_process = True
    await broker.startup()
    await ensure_events_stream(broker)
    for handler in HANDLERS:
        await broker.client.subscribe(handler.subject, cb=_deliver_to(handler, broker))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker ready: %s, warehouse %s, exports %s", url, warehouse, input_dir)
    receiver = asyncio.create_task(run_receiver_task(broker, max_async_tasks=1, run_startup=False))
    await stop.wait()
    receiver.cancel()
    await broker.shutdown()


def run_worker(url: str, warehouse: Path, input_dir: Path, work: Path) -> None:
    asyncio.run(serve(url, warehouse, input_dir, work))
