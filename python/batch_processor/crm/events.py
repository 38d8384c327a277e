"""Completion events: one versioned payload, published after every CRM task, and the
``@event_task_handler(subject)`` decorator that turns a function into a listener.

The decorator is the one place that checks an incoming event: it parses the payload,
checks its version and required fields (the pydantic model), and logs and drops a bad
event with the reason, so listeners only ever see valid events."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

EVENT_VERSION: Literal[1] = 1


class CompletionEvent(BaseModel):
    """Payload of ``etl.crm.<task>.completed`` (version 1)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: Literal[1] = EVENT_VERSION
    task: str
    batch_id: str | None = Field(description="the dbt invocation id of the run")
    status: Literal["ok", "failed"]
    rows: int = Field(ge=0, description="rows in the task's mart after the run")
    duration_ms: int = Field(ge=0)
    error: str | None = None
    error_type: str | None = Field(
        default=None, description="the exception class of an unexpected failure"
    )
    changes: dict[str, dict[str, int]] | None = Field(
        default=None,
        description="per export table: rows delivered, duplicate_rows (identical repeats), "
        "inserted, updated and unchanged ids; already_taken_in 1 when its bytes were loaded "
        "before (nothing loaded)",
    )
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    worker: str | None = None
    task_id: str | None = Field(default=None, description="the TaskIQ task id it answers")

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()


# a listener gets the event and the worker's broker (to enqueue follow-up tasks)
Listener = Callable[[CompletionEvent, Any], Awaitable[None]]


@dataclass(frozen=True)
class EventHandler:
    subject: str
    listener: Listener

    async def __call__(self, data: bytes, broker: Any = None) -> CompletionEvent | None:
        """Check and deliver one raw message; a bad one is logged with its reason and
        dropped (None)."""
        try:
            event = CompletionEvent.model_validate_json(data)
        except ValidationError as error:
            reasons = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}"
                for e in error.errors()
            )
            log.warning("dropped an event on %s: %s", self.subject, reasons)
            return None
        await self.listener(event, broker)
        return event


HANDLERS: list[EventHandler] = []


def event_task_handler(subject: str) -> Callable[[Listener], EventHandler]:
    """Register ``listener`` for the completion events on ``subject``; the worker subscribes
    every registered handler."""

    def register(listener: Listener) -> EventHandler:
        handler = EventHandler(subject, listener)
        HANDLERS.append(handler)
        return handler

    return register
