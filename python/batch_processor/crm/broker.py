"""The TaskIQ broker on NATS JetStream for the CRM tasks, and the tasks themselves.

Task messages go to a JetStream stream (subjects.TASKS_STREAM) read by one durable pull
consumer that every worker shares, so each task runs on one worker. A message is acked only
after its task ran and published its event (a publish that fails for PUBLISH_RETRY_S hands
the message back, nak, so the task runs again); while it runs, the worker tells JetStream it is
still working on it (an in-progress ack every ack_wait / 3), so ack_wait can be short (30 s
by default) and the task of a killed worker is redelivered to another within it, while a
live worker's long task is never redelivered. The consumer's settings belong to the workers
(they apply them at start-up); ``enqueue`` only publishes.

The connection to NATS reconnects for ever with a fixed wait (a worker rides out any
outage and serves the next task once the server is back); a client that NATS closes for good
(an authorization error) stops the worker with exit code 1 so its supervisor restarts it.
Completion events are published to JetStream too (subjects.EVENTS_STREAM). Both streams keep
messages for at most ``max_age`` (BATCH_PROCESSOR_NATS_MAX_AGE_S, 7 days) and
``max_bytes`` (BATCH_PROCESSOR_NATS_MAX_BYTES, 1 GiB), the oldest dropped first."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import ConsumerConfig, StreamConfig
from nats.js.errors import BadRequestError, NotFoundError
from pydantic import BaseModel
from taskiq import AckableMessage, AsyncBroker, Context, TaskiqDepends
from taskiq.kicker import AsyncKicker
from taskiq_nats import PullBasedJetStreamBroker

from batch_processor.crm import subjects
from batch_processor.crm.etl import LOCK_TIMEOUT_S, run_crm_task
from batch_processor.crm.events import CompletionEvent
from batch_processor.crm.tasks import TASKS, CrmTask

log = logging.getLogger(__name__)
T = TypeVar("T")

ACK_WAIT_ENV = "BATCH_PROCESSOR_NATS_ACK_WAIT_S"
RECONNECT_WAIT_ENV = "BATCH_PROCESSOR_NATS_RECONNECT_WAIT_S"
MAX_AGE_ENV = "BATCH_PROCESSOR_NATS_MAX_AGE_S"
MAX_BYTES_ENV = "BATCH_PROCESSOR_NATS_MAX_BYTES"
DEFAULT_ACK_WAIT_S = 30.0  # in-progress acks keep a live task's message; a dead one's returns
DEFAULT_RECONNECT_WAIT_S = 2.0
DEFAULT_MAX_AGE_S = 7 * 24 * 3600.0
DEFAULT_MAX_BYTES = 1 << 30
MAX_DELIVER = 5  # then JetStream gives the message up (counted in `worker status`)
PUBLISH_RETRY_S = 300.0  # a finished task's event waits this long for NATS to come back


def _setting(name: str, default: float) -> float:
    return float(os.environ.get(name, "") or default)


def stream_limits() -> dict[str, Any]:
    return {
        "max_age": _setting(MAX_AGE_ENV, DEFAULT_MAX_AGE_S),
        "max_bytes": int(_setting(MAX_BYTES_ENV, DEFAULT_MAX_BYTES)),
    }


async def add_or_update_stream(js: Any, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to ``config`` (its limits)."""
    try:
        await js.add_stream(config=config)
    except BadRequestError as error:
        if error.err_code != 10058:  # exists with another configuration
            raise
        await js.update_stream(config=config)


class CrmBroker(PullBasedJetStreamBroker):
    """taskiq-nats' pull broker, made fit for a supervisor: fetch errors (an outage) are
    retried with backoff and logged once per outage, not once per attempt; the message in
    flight is tracked so the task can send in-progress acks and SIGTERM can wait for it;
    draining stops fetching; only a worker creates or changes the consumer."""

    def __init__(self, url: str, *, on_closed: Callable[[], None] | None = None) -> None:
        self.ack_wait = _setting(ACK_WAIT_ENV, DEFAULT_ACK_WAIT_S)
        self._on_closed = on_closed
        super().__init__(
            servers=url,
            subject=subjects.TASKS_SUBJECT,
            stream_name=subjects.TASKS_STREAM,
            durable=subjects.WORKERS_DURABLE,
            stream_config=StreamConfig(
                name=subjects.TASKS_STREAM, subjects=[subjects.TASKS_SUBJECT], **stream_limits()
            ),
            consumer_config=ConsumerConfig(
                durable_name=subjects.WORKERS_DURABLE,
                ack_wait=self.ack_wait,
                max_deliver=MAX_DELIVER,
            ),
            pull_consume_timeout=1.0,
            max_reconnect_attempts=-1,  # for ever: an outage of any length is ridden out
            reconnect_time_wait=_setting(RECONNECT_WAIT_ENV, DEFAULT_RECONNECT_WAIT_S),
            disconnected_cb=self._disconnected,
            reconnected_cb=self._reconnected,
            closed_cb=self._closed,
            error_cb=self._error,
        )
        self.in_flight: Msg | None = None
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.connected = False
        self._last_error: str | None = None
        self._released: set[int] = set()

    async def _disconnected(self) -> None:
        if self.connected and not self.draining:
            log.warning("disconnected from NATS; reconnecting (for ever)")
        self.connected = False

    async def _reconnected(self) -> None:
        self.connected = True
        self._last_error = None
        log.info("reconnected to NATS at %s", self.client.connected_url)

    async def _closed(self) -> None:
        self.connected = False
        if not self.draining and self._on_closed is not None:
            log.error("the NATS connection was closed for good: stopping")
            self._on_closed()

    async def _error(self, error: Exception) -> None:
        text = f"{type(error).__name__}: {error}"
        if text != self._last_error:  # one line per kind of error, not one per attempt
            log.warning("NATS: %s", text)
            self._last_error = text

    async def startup(self) -> None:
        await AsyncBroker.startup(self)
        await self.client.connect(self.servers, **self.connection_kwargs)
        self.connected = True
        self.js = self.client.jetstream()
        await add_or_update_stream(self.js, self.stream_config)
        if self.is_worker_process:
            await self._startup_consumer()

    async def shutdown(self) -> None:
        self.draining = True  # our own close: not an outage to report
        await super().shutdown()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        backoff = 0.5
        failing = False
        while not self.draining:
            try:
                messages = await self.consumer.fetch(batch=1, timeout=self.pull_consume_timeout)
            except NatsTimeoutError:
                continue
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an outage, a consumer lost with the server's store
                if not failing:
                    log.warning(
                        "cannot fetch tasks (%s: %s); retrying", type(error).__name__, error
                    )
                failing = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
                if self.client.is_connected and isinstance(error, NotFoundError):
                    try:  # a server that came back without its store: recreate the consumer
                        await self._startup_consumer()
                    except Exception as again:
                        log.debug("could not recreate the consumer: %s", again)
                continue
            if failing:
                log.info("fetching tasks again")
                failing, backoff = False, 0.5
            for message in messages:
                if self.draining:  # stopping: hand it straight back for another worker
                    await message.nak()
                    continue
                self.in_flight = message
                self.idle.clear()
                yield AckableMessage(data=message.data, ack=self._acker(message))

    async def release_in_flight(self) -> None:
        """Hand the message in flight back to JetStream (nak) instead of acking it: its task
        could not publish its event, so it must run again (tasks are idempotent)."""
        message = self.in_flight
        if message is None:
            return
        self._released.add(id(message))
        try:
            await message.nak()
        except Exception as error:  # it comes back after ack_wait anyway
            log.warning("could not hand the task back (%s): redelivered after ack_wait", error)

    def _acker(self, message: Msg) -> Callable[[], Coroutine[Any, Any, None]]:
        async def ack() -> None:
            try:
                if id(message) in self._released:
                    self._released.discard(id(message))
                    return
                await message.ack()
            except Exception as error:  # it will be redelivered; the task is idempotent
                log.warning("could not ack task message (%s): it will be redelivered", error)
            finally:
                self.in_flight = None
                self.idle.set()

        return ack

    async def keep_in_progress(self, message: Msg) -> None:
        """Tell JetStream every ack_wait / 3 that ``message``'s task is still running."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            try:
                await message.in_progress()
            except Exception as error:
                log.debug("in-progress ack failed: %s", error)


def build_broker(url: str, *, on_closed: Callable[[], None] | None = None) -> CrmBroker:
    return CrmBroker(url, on_closed=on_closed)


async def ensure_events_stream(broker: CrmBroker) -> None:
    await add_or_update_stream(
        broker.js,
        StreamConfig(
            name=subjects.EVENTS_STREAM, subjects=[subjects.EVENTS_SUBJECTS], **stream_limits()
        ),
    )


async def publish_event(broker: CrmBroker, subject: str, event: BaseModel) -> None:
    """Publish to JetStream, retrying (NATS may be reconnecting) for up to
    PUBLISH_RETRY_S; raises if it never got through."""
    deadline = asyncio.get_running_loop().time() + PUBLISH_RETRY_S
    while True:
        try:
            await broker.js.publish(subject, event.model_dump_json().encode())
            break
        except Exception as error:
            if asyncio.get_running_loop().time() > deadline:
                raise
            log.warning("could not publish %s yet (%s); retrying", subject, error)
            await asyncio.sleep(2.0)
    log.info("published %s: %s", subject, event.model_dump_json())


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerContext:
    """What a worker's tasks share: the warehouse, the default export folder, the dbt
    manifest parsed once at start-up, and what `worker status` reports."""

    warehouse: Path
    input_dir: Path
    work: Path
    lock_timeout_s: float = LOCK_TIMEOUT_S
    manifest: Any = None
    broker: CrmBroker | None = field(default=None, repr=False)
    tasks_done: int = 0
    current_task: str | None = None
    last_task: dict[str, Any] | None = None


async def run_acked(
    broker: CrmBroker, context: WorkerContext, label: str, body: Callable[[], Awaitable[T]]
) -> T:
    """Run a task's ``body`` while telling JetStream it is in progress; if it raises (its
    event did not go out), the message is handed back, so the task runs again."""
    context.current_task = label
    in_flight = broker.in_flight
    heartbeat = asyncio.create_task(broker.keep_in_progress(in_flight)) if in_flight else None
    try:
        return await body()
    except BaseException:
        await broker.release_in_flight()
        raise
    finally:
        if heartbeat is not None:
            heartbeat.cancel()
        context.current_task = None


def register_tasks(broker: CrmBroker, context: WorkerContext) -> None:
    """One TaskIQ task per CRM ETL, named as in crm.tasks.TASKS."""

    def make(task: CrmTask) -> Any:
        async def run(
            input_dir: str | None = None, message: Context = TaskiqDepends()
        ) -> dict[str, Any]:
            folder = Path(input_dir) if input_dir else context.input_dir
            task_id = message.message.task_id
            work = context.work / f"{task.name}-{task_id}"
            log.info("%s %s: started (exports %s)", task.name, task_id, folder)

            async def body() -> CompletionEvent:
                event = await asyncio.to_thread(
                    run_crm_task,
                    task,
                    folder,
                    context.warehouse,
                    work,
                    manifest=context.manifest,
                    lock_timeout_s=context.lock_timeout_s,
                )
                event = event.model_copy(update={"task_id": task_id})
                await publish_event(broker, task.subject, event)
                return event

            event = await run_acked(broker, context, f"{task.name} {task_id}", body)
            shutil.rmtree(work, ignore_errors=True)
            context.tasks_done += 1
            context.last_task = {
                "task": task.name,
                "task_id": task_id,
                "status": event.status,
                "finished_at": event.finished_at.isoformat(),
            }
            return event.model_dump(mode="json")

        run.__name__ = task.name.replace(".", "_")
        return run

    for task in TASKS.values():
        broker.register_task(make(task), task_name=task.name)
    register_shard_task(broker, context)


def register_shard_task(broker: CrmBroker, context: WorkerContext) -> None:
    """``telemetry.shard``: one site's share of a sharded telemetry batch (telemetry.shard)."""
    from batch_processor.telemetry.shard import ShardEvent, ShardTask, run_shard

    async def shard(task: dict[str, Any]) -> dict[str, Any]:
        shard_task = ShardTask.model_validate(task)
        label = f"{subjects.SHARD_TASK} {shard_task.site_id} of batch {shard_task.batch_id}"
        log.info("%s: started (attempt %d)", label, shard_task.attempt)

        async def body() -> ShardEvent:
            event = await asyncio.to_thread(run_shard, shard_task, worker_name())
            await publish_event(broker, subjects.SHARD_COMPLETED, event)
            return event

        event = await run_acked(broker, context, label, body)
        context.tasks_done += 1
        context.last_task = {
            "task": subjects.SHARD_TASK,
            "site_id": shard_task.site_id,
            "status": event.status,
            "finished_at": event.finished_at.isoformat(),
        }
        return event.model_dump(mode="json")

    broker.register_task(shard, task_name=subjects.SHARD_TASK)


async def enqueue(broker: CrmBroker, task_name: str, **kwargs: Any) -> str:
    """Send one task message; its TaskIQ task id."""
    if task_name not in TASKS and task_name != subjects.SHARD_TASK:
        raise KeyError(task_name)
    sent: Any = await AsyncKicker(task_name=task_name, broker=broker, labels={}).kiq(**kwargs)
    return str(sent.task_id)
