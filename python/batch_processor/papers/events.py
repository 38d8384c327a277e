"""S3 event notifications (``Records[].s3.bucket.name`` / ``Records[].s3.object.key``) and the
trace id of a batch."""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

from batch_processor.errors import ConfigError
from batch_processor.papers.objects import ObjectRef


def objects_of_event(event: Any) -> list[ObjectRef]:
    """The objects an S3 event names, in order. S3 URL-encodes keys in events (a space
    arrives as ``+``); they are decoded here."""
    records = event.get("Records") if isinstance(event, dict) else None
    if not isinstance(records, list) or not records:
        raise ConfigError("not an S3 event: expected a non-empty list under 'Records'")
    objects = []
    for number, record in enumerate(records, start=1):
        try:
            bucket = record["s3"]["bucket"]["name"]
            key = record["s3"]["object"]["key"]
        except (KeyError, TypeError) as error:
            raise ConfigError(
                f"S3 event record {number}: missing s3.bucket.name or s3.object.key"
            ) from error
        if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
            raise ConfigError(f"S3 event record {number}: bucket and key must be non-empty text")
        objects.append(ObjectRef.s3(bucket, unquote_plus(key)))
    return objects


def s3_event(bucket: str, *keys: str) -> dict[str, Any]:
    """The S3 notification an ``ObjectCreated:Put`` of ``keys`` in ``bucket`` sends (keys
    URL-encoded the way S3 encodes them)."""
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key, safe="/")}},
            }
            for key in keys
        ]
    }


def new_trace_id(now: datetime) -> str:
    """``batch-YYYYMMDD-<random>``: the day of the batch and 8 random base-36 characters."""
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
    return f"batch-{now:%Y%m%d}-" + "".join(secrets.choice(alphabet) for _ in range(8))
