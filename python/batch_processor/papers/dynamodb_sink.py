"""The optional DynamoDB target (``--sink dynamodb --table NAME``): the papers a batch upserted,
written with ``batch_write_item`` 25 items per request (DynamoDB's limit). Items DynamoDB
leaves unprocessed (throttling) are retried with exponential backoff and full jitter, up to
``max_attempts`` requests per chunk; what is still unprocessed then is reported, not lost
silently. Rows stream from the warehouse in record batches; a put replaces the whole item,
so a retried or repeated write is idempotent."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from boto3.dynamodb.types import TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from batch_processor import db
from batch_processor.batching import batched

log = logging.getLogger(__name__)

ITEMS_PER_REQUEST = 25  # DynamoDB's BatchWriteItem limit
MAX_ATTEMPTS = 8
BASE_DELAY_S = 0.05
MAX_DELAY_S = 2.0
_BATCH_ROWS_SQL = "select * exclude (raw_xml), raw_xml from papers.papers where trace_id = ?"


@dataclass
class SinkStats:
    requests: int = 0
    items_written: int = 0
    retried_items: int = 0
    unprocessed: list[str] = field(default_factory=list)  # paper ids never written
    seconds: float = 0.0
    error: str | None = None  # a request failed outright (the rest was not tried)


def _item(row: dict[str, Any], serializer: TypeSerializer) -> dict[str, Any]:
    """A papers row as a DynamoDB item: timestamps as ISO 8601 text, NULLs left out."""
    item = {}
    for name, value in row.items():
        if value is None or value == []:
            continue
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        item[name] = serializer.serialize(value)
    return item


def _rows(warehouse: Path, trace_id: str) -> Iterator[dict[str, Any]]:
    con = db.connect(warehouse, read_only=True)
    try:
        reader = con.sql(_BATCH_ROWS_SQL, params=[trace_id]).to_arrow_reader(1000)
        for record_batch in reader:
            yield from record_batch.to_pylist()
    finally:
        con.close()


def write_chunk(
    client: Any,
    table: str,
    items: list[dict[str, Any]],
    stats: SinkStats,
    *,
    max_attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """One BatchWriteItem of at most 25 items, retrying what comes back unprocessed."""
    pending = [{"PutRequest": {"Item": item}} for item in items]
    for attempt in range(1, max_attempts + 1):
        stats.requests += 1
        response = client.batch_write_item(RequestItems={table: pending})
        left = response.get("UnprocessedItems", {}).get(table, [])
        stats.items_written += len(pending) - len(left)
        if not left:
            return
        pending = left
        if attempt < max_attempts:
            stats.retried_items += len(left)
            # exponential backoff with full jitter
            sleep(random.uniform(0, min(MAX_DELAY_S, BASE_DELAY_S * 2**attempt)))  # noqa: S311
    stats.unprocessed += [p["PutRequest"]["Item"]["paper_id"]["S"] for p in pending]


def write_batch(
    warehouse: Path,
    trace_id: str,
    table: str,
    *,
    client: Any = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> SinkStats:
    """Write every paper the batch ``trace_id`` upserted to the DynamoDB ``table``."""
    client = client or boto3.client("dynamodb")
    serializer = TypeSerializer()
    stats = SinkStats()
    started = time.monotonic()
    items = (_item(row, serializer) for row in _rows(warehouse, trace_id))
    for chunk in batched(items, ITEMS_PER_REQUEST):
        if stats.error is None:
            try:
                write_chunk(client, table, chunk, stats, max_attempts=max_attempts)
                continue
            except (ClientError, BotoCoreError) as error:
                stats.error = f"DynamoDB table {table}: BatchWriteItem failed: {error}"
                log.error("%s", stats.error)
        stats.unprocessed += [item["paper_id"]["S"] for item in chunk]
    stats.seconds = time.monotonic() - started
    return stats
