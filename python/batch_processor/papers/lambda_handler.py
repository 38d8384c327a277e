"""An AWS Lambda-compatible entry point: ``handler(event, context)`` takes an S3 event and
returns the result JSON (as a dict). The warehouse and output folder come from
``BATCH_PROCESSOR_DUCKDB_PATH`` and ``BATCH_PROCESSOR_PAPERS_OUTPUT``; the request id from the
context (``aws_request_id``) when there is one."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from batch_processor.errors import ConfigError
from batch_processor.papers.events import objects_of_event
from batch_processor.papers.pipeline import process_objects
from batch_processor.paths import DEFAULT_WAREHOUSE

OUTPUT_ENV = "BATCH_PROCESSOR_PAPERS_OUTPUT"


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    warehouse = Path(os.environ.get("BATCH_PROCESSOR_DUCKDB_PATH") or DEFAULT_WAREHOUSE)
    output = Path(os.environ.get(OUTPUT_ENV) or warehouse.parent / "papers")
    request_id = getattr(context, "aws_request_id", None)
    try:
        refs = objects_of_event(event)
    except ConfigError as error:
        return {"status": "failed", "errors": [{"object": None, "line": None, "error": str(error)}]}
    return process_objects(refs, warehouse, output, request_id=request_id).result_json()
