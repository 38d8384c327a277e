"""An AWS Lambda-compatible entry point: ``handler(event, context)`` takes an S3 event and
returns the result JSON (as a dict). Settings come from the environment:

- ``DYNAMODB_TABLE_NAME`` (the seed's name): the DynamoDB table the papers go to (the
  outbox sink, as ``--sink dynamodb --table``); unset or empty: the Parquet output;
- ``BATCH_PROCESSOR_DUCKDB_PATH``: the warehouse (dedup state and outbox);
- ``BATCH_PROCESSOR_PAPERS_OUTPUT``: the output folder (Parquet, reports; default
  ``<warehouse dir>/papers``) or ``s3://bucket/prefix``, whose local work folder is
  ``BATCH_PROCESSOR_WORK_DIR`` (default ``<warehouse dir>/s3/<bucket>/<prefix>``);
- the standard AWS settings for S3 and DynamoDB (``AWS_REGION``, ``AWS_ENDPOINT_URL``, …).

The request id comes from the context (``aws_request_id``) when there is one."""

from __future__ import annotations

import os
from typing import Any

from batch_processor.config import DatasetSettings
from batch_processor.dataset_store import default_work_dir, is_remote
from batch_processor.errors import BatchProcessorError
from batch_processor.papers.events import objects_of_event
from batch_processor.papers.pipeline import process_objects
from batch_processor.paths import DEFAULT_WAREHOUSE

OUTPUT_ENV = "BATCH_PROCESSOR_PAPERS_OUTPUT"
DYNAMODB_TABLE_ENV = "DYNAMODB_TABLE_NAME"


def handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    table = os.environ.get(DYNAMODB_TABLE_ENV, "").strip() or None
    request_id = getattr(context, "aws_request_id", None)
    try:
        settings = DatasetSettings()
        warehouse = settings.warehouse_path or DEFAULT_WAREHOUSE
        location = os.environ.get(OUTPUT_ENV) or str(warehouse.parent / "papers")
        if is_remote(location) and settings.work_dir is None:  # next to the warehouse
            settings = settings.model_copy(
                update={"work_dir": default_work_dir(location, warehouse.parent)}
            )
        output = settings.output_paths(location)
        refs = objects_of_event(event)
    except BatchProcessorError as error:
        return {"status": "failed", "errors": [{"object": None, "line": None, "error": str(error)}]}
    result = process_objects(refs, warehouse, output, request_id=request_id, dynamodb_table=table)
    return result.result_json()
