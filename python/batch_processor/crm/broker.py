"""The TaskIQ broker on NATS JetStream for the CRM tasks, and the tasks themselves.

Task messages go to a JetStream stream (subjects.TASKS_STREAM) read by one durable pull
consumer that every worker shares, so each task runs on one worker; a message is acked only
after its task ran, so a task whose worker was killed is redelivered (after ``ack_wait``) to
another worker. Completion events are published to JetStream too (subjects.EVENTS_STREAM),
and any NATS subscriber sees them."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError
from taskiq import Context, TaskiqDepends
from taskiq.kicker import AsyncKicker
from taskiq_nats import PullBasedJetStreamBroker

from batch_processor.crm import subjects
from batch_processor.crm.etl import run_crm_task
from batch_processor.crm.events import CompletionEvent
from batch_processor.crm.tasks import TASKS, CrmTask

log = logging.getLogger(__name__)

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
NATS_URL_ENV = "BATCH_PROCESSOR_NATS_URL"
ACK_WAIT_ENV = "BATCH_PROCESSOR_NATS_ACK_WAIT_S"
DEFAULT_ACK_WAIT_S = 600.0  # longer than any task: a live worker's task is not redelivered
MAX_DELIVER = 5


def nats_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get(NATS_URL_ENV) or DEFAULT_NATS_URL


def build_broker(url: str) -> PullBasedJetStreamBroker:
    ack_wait = float(os.environ.get(ACK_WAIT_ENV, "") or DEFAULT_ACK_WAIT_S)
    return PullBasedJetStreamBroker(
        servers=url,
        subject=subjects.TASKS_SUBJECT,
        stream_name=subjects.TASKS_STREAM,
        durable=subjects.WORKERS_DURABLE,
        consumer_config=ConsumerConfig(
            durable_name=subjects.WORKERS_DURABLE, ack_wait=ack_wait, max_deliver=MAX_DELIVER
        ),
        pull_consume_timeout=1.0,
    )


async def ensure_events_stream(broker: PullBasedJetStreamBroker) -> None:
    config = StreamConfig(name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_SUBJECTS])
    try:
        await broker.js.add_stream(config=config)
    except BadRequestError as error:  # exists with another configuration: reuse it
        if error.err_code != 10058:
            raise


async def publish_event(
    broker: PullBasedJetStreamBroker, subject: str, event: CompletionEvent
) -> None:
    await broker.js.publish(subject, event.to_bytes())
    log.info("published %s: %s", subject, event.model_dump_json())


@dataclass
class WorkerContext:
    """What a worker's tasks share: the warehouse, the default export folder, and the dbt
    manifest parsed once at start-up."""

    warehouse: Path
    input_dir: Path
    work: Path
    manifest: Any = None
    broker: PullBasedJetStreamBroker | None = field(default=None, repr=False)


def register_tasks(broker: PullBasedJetStreamBroker, context: WorkerContext) -> None:
    """One TaskIQ task per CRM ETL, named as in crm.tasks.TASKS."""

    def make(task: CrmTask) -> Any:
        async def run(
            input_dir: str | None = None, message: Context = TaskiqDepends()
        ) -> dict[str, Any]:
            folder = Path(input_dir) if input_dir else context.input_dir
            task_id = message.message.task_id
            work = context.work / f"{task.name}-{task_id}"
            log.info("%s %s: started (exports %s)", task.name, task_id, folder)
            event = await asyncio.to_thread(
                run_crm_task, task, folder, context.warehouse, work, manifest=context.manifest
            )
            event = event.model_copy(update={"task_id": task_id})
            await publish_event(broker, task.subject, event)
            shutil.rmtree(work, ignore_errors=True)
            return event.model_dump(mode="json")

        run.__name__ = task.name.replace(".", "_")
        return run

    for task in TASKS.values():
        broker.register_task(make(task), task_name=task.name)


async def enqueue(broker: PullBasedJetStreamBroker, task_name: str, **kwargs: Any) -> str:
    """Send one task message; its TaskIQ task id."""
    if task_name not in TASKS:
        raise KeyError(task_name)
    sent: Any = await AsyncKicker(task_name=task_name, broker=broker, labels={}).kiq(**kwargs)
    return str(sent.task_id)
