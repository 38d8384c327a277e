"""Event listeners the worker subscribes (each registered with @event_task_handler)."""

from __future__ import annotations

import logging
from typing import Any

from batch_processor.crm import subjects
from batch_processor.crm.broker import enqueue
from batch_processor.crm.events import CompletionEvent, event_task_handler

log = logging.getLogger(__name__)


@event_task_handler(subjects.CUSTOMERS_COMPLETED)
async def refresh_customer_segments(event: CompletionEvent, broker: Any) -> None:
    """The customers mart changed: rebuild what depends on it (dim_customer_segments)."""
    if event.status != "ok":
        log.info("crm.customers failed (%s): the segments keep their last state", event.error)
        return
    task_id = await enqueue(broker, "crm.customer_segments")
    log.info(
        "crm.customers completed (batch %s): enqueued crm.customer_segments %s",
        event.batch_id,
        task_id,
    )
