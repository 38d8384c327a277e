"""The DynamoDB target (``--sink dynamodb --table NAME``, or ``DYNAMODB_TABLE_NAME`` for the
Lambda handler), fed from an outbox in the warehouse.

The outbox (``papers.dynamodb_outbox``, created by the ``papers_create_state_tables`` macro)
is dbt's: the ``papers`` model's post-hook enqueues every paper a batch inserted or updated
in the same transaction as the merge, so a paper is never stored without its pending
delivery. This module only moves items: it reads every pending item of the table (the view
``papers.papers_dynamodb_items``, which already carries the seed's attribute names), writes
them with ``batch_write_item`` 25 items per request (DynamoDB's limit; a *write batch*), and
records each acknowledgement in the outbox. What DynamoDB did not acknowledge stays pending,
so the replayed event or the next one retries it: nothing is lost when the table is missing,
unreachable or throttling.

Items DynamoDB leaves unprocessed (throttling) are retried with exponential backoff and full
jitter, up to ``max_attempts`` requests per write batch. A request that fails outright (no
such table, access denied, no endpoint) stops the delivery: the batches not sent stay pending
and ``SinkStats.error`` says why. A put replaces the whole item, so a repeated write is
idempotent."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import duckdb
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from batch_processor import db
from batch_processor.batching import batched

log = logging.getLogger(__name__)

ITEMS_PER_REQUEST = 25  # DynamoDB's BatchWriteItem limit: one write batch
MAX_ATTEMPTS = 8
# BatchWriteItem errors about what an item holds (the table itself is fine): the others
# (no such table, access denied, …) stop the delivery
ITEM_ERROR_CODES = frozenset({"ValidationException"})
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0
OUTBOX_TABLE = ("papers", "dynamodb_outbox")  # created by papers_create_state_tables
OUTBOX = ".".join(OUTBOX_TABLE)
ITEMS = "papers.papers_dynamodb_items"
_PENDING_ITEMS_SQL = (
    f"select * exclude (dynamodb_table) from {ITEMS} where dynamodb_table = ? order by paper_id"
)
_ACKNOWLEDGE_SQL = f"""
update {OUTBOX}
set acknowledged_at = now(), acknowledged_by = $trace_id, attempts = attempts + 1,
    last_error = null
where dynamodb_table = $table and paper_id in (select unnest($paper_ids::varchar[]))
"""
_REFUSED_SQL = f"""
update {OUTBOX}
set attempts = attempts + 1, last_error = $error
where dynamodb_table = $table and paper_id in (select unnest($paper_ids::varchar[]))
"""


@dataclass
class SinkStats:
    write_batches: int = 0  # chunks of at most 25 items (sent or not)
    failed_batches: int = 0  # chunks with an item DynamoDB did not acknowledge
    requests: int = 0  # BatchWriteItem calls, retries included
    items_written: int = 0
    retried_items: int = 0
    unprocessed: list[str] = field(default_factory=list)  # paper ids left pending
    item_errors: dict[str, str] = field(default_factory=dict)  # paper id → why it was refused
    seconds: float = 0.0
    error: str | None = None  # a request failed outright (the rest was not sent)

    @property
    def avg_batch_ms(self) -> int:
        return round(1000 * self.seconds / self.write_batches) if self.write_batches else 0


def _item(row: dict[str, Any], serializer: TypeSerializer) -> dict[str, Any]:
    """A row of papers_dynamodb_items as a DynamoDB item, NULLs and empty lists left out."""
    return {
        name: serializer.serialize(value)
        for name, value in row.items()
        if value is not None and value != []
    }


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _write_one_by_one(
    client: Any,
    table: str,
    pending: list[dict[str, Any]],
    stats: SinkStats,
    error: ClientError,
    max_attempts: int,
    sleep: Callable[[float], None],
) -> list[str]:
    """A write batch DynamoDB refused for an item's content: each item on its own."""
    if len(pending) == 1:
        paper_id = pending[0]["PutRequest"]["Item"]["paper_id"]["S"]
        stats.item_errors[paper_id] = f"DynamoDB table {table} refused the item: {error}"
        stats.unprocessed.append(paper_id)
        return [paper_id]
    left: list[str] = []
    for request in pending:
        if stats.error is not None:  # a later request failed outright: the rest stays pending
            paper_id = request["PutRequest"]["Item"]["paper_id"]["S"]
            stats.unprocessed.append(paper_id)
            left.append(paper_id)
            continue
        left += write_chunk(
            client,
            table,
            [request["PutRequest"]["Item"]],
            stats,
            max_attempts=max_attempts,
            sleep=sleep,
        )
    return left


def write_chunk(
    client: Any,
    table: str,
    items: list[dict[str, Any]],
    stats: SinkStats,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> list[str]:
    """One write batch (at most 25 items), retrying what comes back unprocessed; the paper
    ids DynamoDB did not acknowledge (also added to ``stats.unprocessed``): those still
    unprocessed after ``max_attempts`` requests, or all that were pending when a request
    failed outright (``stats.error`` then says why)."""
    pending = [{"PutRequest": {"Item": item}} for item in items]
    for attempt in range(1, max_attempts + 1):
        stats.requests += 1
        try:
            response = client.batch_write_item(RequestItems={table: pending})
        except ClientError as error:
            if _error_code(error) not in ITEM_ERROR_CODES:
                stats.error = f"DynamoDB table {table}: BatchWriteItem failed: {error}"
                log.error("%s", stats.error)
                break
            # the request was refused for what an item holds (too large, a bad key): send
            # the items one by one, so only the offending ones stay pending
            return _write_one_by_one(client, table, pending, stats, error, max_attempts, sleep)
        except BotoCoreError as error:
            stats.error = f"DynamoDB table {table}: BatchWriteItem failed: {error}"
            log.error("%s", stats.error)
            break
        left = response.get("UnprocessedItems", {}).get(table, [])
        stats.items_written += len(pending) - len(left)
        if not left:
            return []
        pending = left
        if attempt < max_attempts:
            stats.retried_items += len(left)
            # exponential backoff with full jitter
            sleep(random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt)))  # noqa: S311
    unprocessed = [p["PutRequest"]["Item"]["paper_id"]["S"] for p in pending]
    stats.unprocessed += unprocessed
    return unprocessed


def _pending_items(con: duckdb.DuckDBPyConnection, table: str) -> Iterator[dict[str, Any]]:
    serializer = TypeSerializer()
    reader = con.sql(_PENDING_ITEMS_SQL, params=[table]).to_arrow_reader(1000)
    for record_batch in reader:
        for row in record_batch.to_pylist():
            yield _item(row, serializer)


def deliver_pending(
    warehouse: Path,
    table: str,
    trace_id: str,
    *,
    client: Any = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> SinkStats:
    """Send every item pending for the DynamoDB ``table`` and record, per write batch, which
    ones DynamoDB acknowledged (``acknowledged_by`` = ``trace_id``) and which not (their
    attempt and the reason)."""
    stats = SinkStats()
    started = time.monotonic()
    if client is None:
        try:
            client = boto3.client("dynamodb")
        except BotoCoreError as error:  # no region configured, …: nothing is sent
            stats.error = f"DynamoDB table {table}: cannot create a client: {error}"
            log.error("%s", stats.error)
    con = db.connect(warehouse)
    outbox = db.cursor(con)  # acknowledgements go in while the pending items stream
    try:
        for chunk in batched(_pending_items(con, table), ITEMS_PER_REQUEST):
            stats.write_batches += 1
            ids = [item["paper_id"]["S"] for item in chunk]
            if stats.error is not None:  # not sent: a request of this delivery failed outright
                stats.unprocessed += ids
                stats.failed_batches += 1
                continue
            left = write_chunk(client, table, chunk, stats, max_attempts=max_attempts)
            refused = set(left)
            acknowledged = [paper_id for paper_id in ids if paper_id not in refused]
            if acknowledged:
                outbox.execute(
                    _ACKNOWLEDGE_SQL,
                    {"table": table, "trace_id": trace_id, "paper_ids": acknowledged},
                )
            if left:
                stats.failed_batches += 1
                default = stats.error or f"still unprocessed after {max_attempts} requests"
                by_reason: dict[str, list[str]] = {}
                for paper_id in left:
                    by_reason.setdefault(stats.item_errors.get(paper_id, default), []).append(
                        paper_id
                    )
                for reason, paper_ids in by_reason.items():
                    outbox.execute(
                        _REFUSED_SQL, {"table": table, "error": reason, "paper_ids": paper_ids}
                    )
    finally:
        outbox.close()
        con.close()
    stats.seconds = time.monotonic() - started
    return stats
