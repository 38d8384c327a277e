"""One papers batch: stage every object of an S3 event (or one object) as spool lines, run one
dbt build over them, publish the changed Parquet partitions, return the result JSON.

Python only moves bytes: each object is streamed from S3 (or a local file), decompressed,
parsed by the format's parser into a spool file on local disk, and DuckDB reads the spool
file into ``papers_raw.paper_records``. Typing, dedup (within the batch and against the
stored papers) and the upsert are dbt models. An object that cannot be read (missing key,
truncated gzip, not XML, an entity bomb) is set aside with its reason and counted as one
failed item; the batch goes on with the others.

Counts (they add up): processed_count = records read + objects that could not be read;
failed_count = rejected records + objects that could not be read; duplicate_count = records
that lost the dedup inside the batch + winners not newer than the stored paper;
upsert_count = papers inserted or replaced. processed = failed + duplicate + upsert.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from batch_processor import db
from batch_processor.dbt_runner import ensure_tables, run_dbt
from batch_processor.durable import replace_atomic
from batch_processor.logs import log_context
from batch_processor.papers.dynamodb_sink import write_batch
from batch_processor.papers.events import new_trace_id
from batch_processor.papers.objects import ObjectError, ObjectRef, open_decompressed
from batch_processor.papers.parsers import PARSERS, detect_format
from batch_processor.papers.publish import publish_partitions
from batch_processor.run_lock import run_locks

log = logging.getLogger(__name__)

SERVICE = "batch-processor"
DBT_SELECTOR = "tag:papers"
RAW_TABLE = "papers_raw.paper_records"
STATE_TABLES = [("papers_raw", "paper_records")]
SPOOL_DELIMITER = "\x1f"  # never in a JSON line (control characters must be escaped)
MAX_ERRORS_IN_RESULT = 100
MEMORY_LIMIT_MB = 512  # DuckDB's limit for the load and the dbt build; it spills beyond it

_LOAD_SPOOL_SQL = f"""
insert into {RAW_TABLE}
select $object, ordinality, record
from read_csv(
    $spool, columns = {{'record': 'VARCHAR'}}, header = false, delim = $delim, quote = '',
    escape = '', auto_detect = false, max_line_size = 16777216
) with ordinality
where nullif(trim(record), '') is not null
"""
_COUNTS_SQL = """
select
    (select count(*) from papers_staging.stg_papers__records),
    (select count(*) from papers_staging.stg_papers__records where reject_reason is not null),
    (select count(*) from papers_intermediate.int_papers__deduplicated where not is_winner),
    (select count(*) from papers_intermediate.int_papers__changes
        where change_type = 'not_newer'),
    (select count(*) from papers_intermediate.int_papers__changes
        where change_type in ('insert', 'update'))
"""
_REJECTS_SQL = """
select source_object, line_number, reject_reason
from papers_staging.stg_papers__records
where reject_reason is not null
order by source_object, line_number
limit ?
"""


class TraceLog(logging.LoggerAdapter[logging.Logger]):
    """``metadata=`` adds a metadata object to a log line (the service, trace_id and
    request_id every line of a batch carries come from its log context)."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        extra = dict(self.extra or {})
        if "metadata" in kwargs:
            extra["metadata"] = kwargs.pop("metadata")
        kwargs["extra"] = {**extra, **kwargs.get("extra", {})}
        return msg, kwargs


@dataclass
class ObjectOutcome:
    uri: str
    compression: str | None = None
    format: str | None = None
    records: int = 0
    seconds: float = 0.0
    error: str | None = None
    empty_feed: bool = False
    api_errors: int = 0  # arXiv API error entries (each one a failed record)

    @property
    def failed(self) -> bool:
        """A failed batch entry: the object could not be read, or it is an API error feed."""
        return self.error is not None or self.api_errors > 0


@dataclass
class PapersResult:
    trace_id: str
    request_id: str
    objects: list[ObjectOutcome]
    started_at: datetime
    processing_time_ms: int = 0
    records: int = 0
    rejected_records: int = 0
    duplicates: int = 0
    upserts: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # the batch failed as a whole (dbt, publish)
    sink_unwritten: int = 0  # upserted papers the DynamoDB sink could not write
    manifest_path: Path | None = None
    report_path: Path | None = None

    @property
    def failed_objects(self) -> int:
        """Objects that could not be read (each one failed item)."""
        return sum(1 for o in self.objects if o.error)

    @property
    def failed_count(self) -> int:
        return self.rejected_records + self.failed_objects + self.sink_unwritten

    @property
    def processed_count(self) -> int:
        return self.records + self.failed_objects

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        return "completed_with_errors" if self.failed_count else "completed"

    def result_json(self) -> dict[str, Any]:
        """The seed's result fields, plus ``errors`` (what failed, where and why)."""
        timed = [o.seconds for o in self.objects]
        return {
            "trace_id": self.trace_id,
            "processed_count": self.processed_count,
            "duplicate_count": self.duplicates,
            "upsert_count": self.upserts - self.sink_unwritten,
            "failed_count": self.failed_count,
            "timestamp": self.started_at.isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "processing_time_ms": self.processing_time_ms,
            "s3_key": ",".join(ObjectRef(o.uri).key for o in self.objects),
            "batch_statistics": {
                "total_batches": len(self.objects),
                "successful_batches": sum(1 for o in self.objects if not o.failed),
                "failed_batches": sum(1 for o in self.objects if o.failed),
                "avg_batch_time_ms": round(1000 * sum(timed) / len(timed)) if timed else 0,
            },
            "errors": self.errors[:MAX_ERRORS_IN_RESULT],
        }


def _stage_object(
    con: duckdb.DuckDBPyConnection, ref: ObjectRef, spool: Path, tlog: TraceLog
) -> ObjectOutcome:
    outcome = ObjectOutcome(ref.uri)
    started = time.monotonic()
    try:
        with open_decompressed(ref) as (stream, compression), spool.open("wb") as out:
            outcome.compression = compression
            head = stream.peek(64)[:64]
            if not head:  # nothing to parse: not an empty feed, which is a <feed> element
                after = "" if compression == "none" else f" after {compression} decompression"
                raise ObjectError(f"{ref.uri}: empty object (0 bytes{after})")
            outcome.format = detect_format(head)
            summary = PARSERS[outcome.format](stream, out)
        outcome.empty_feed, outcome.api_errors = summary.empty_feed, summary.api_errors
        con.execute("begin")
        try:
            inserted = con.execute(
                _LOAD_SPOOL_SQL, {"object": ref.uri, "spool": str(spool), "delim": SPOOL_DELIMITER}
            ).fetchall()[0][0]
        except duckdb.Error:
            con.execute("rollback")
            raise
        con.execute("commit")
        outcome.records = int(inserted)
    except (ObjectError, ValueError, duckdb.Error) as error:  # ParseError is a ValueError
        message = str(error).strip().splitlines()[0]
        outcome.error = message if message.startswith(ref.uri) else f"{ref.uri}: {message}"
    finally:
        spool.unlink(missing_ok=True)
        outcome.seconds = time.monotonic() - started
    if outcome.error:
        tlog.error("object failed: %s", outcome.error, metadata={"object": ref.uri})
    elif outcome.empty_feed:
        tlog.warning("empty feed: %s has no entries", ref.uri, metadata={"object": ref.uri})
    else:
        tlog.info(
            "staged %d record(s) from %s (%s, %s)",
            outcome.records,
            ref.uri,
            outcome.format,
            outcome.compression,
            metadata={"object": ref.uri, "records": outcome.records},
        )
    return outcome


def _read_counts(warehouse: Path, result: PapersResult, tlog: TraceLog) -> None:
    con = db.connect(warehouse, read_only=True)
    try:
        records, rejected, in_batch, not_newer, upserts = con.execute(_COUNTS_SQL).fetchall()[0]
        result.records, result.rejected_records = int(records), int(rejected)
        result.duplicates, result.upserts = int(in_batch) + int(not_newer), int(upserts)
        for obj, line, reason in con.execute(_REJECTS_SQL, [MAX_ERRORS_IN_RESULT]).fetchall():
            result.errors.append({"object": obj, "line": line, "error": reason})
            tlog.warning(
                "record rejected: %s line %d: %s",
                obj,
                line,
                reason,
                metadata={"object": obj, "line": line},
            )
    finally:
        con.close()


def _write_to_dynamodb(warehouse: Path, table: str, result: PapersResult, tlog: TraceLog) -> None:
    stats = write_batch(warehouse, result.trace_id, table)
    result.sink_unwritten = len(stats.unprocessed)
    reason = stats.error or f"DynamoDB table {table}: still unprocessed after retries"
    for paper_id in stats.unprocessed[:MAX_ERRORS_IN_RESULT]:
        result.errors.append(
            {"object": f"dynamodb:{table}", "line": None, "error": f"{paper_id}: {reason}"}
        )
    tlog.info(
        "DynamoDB %s: %d item(s) written in %d request(s), %d retried, %d not written",
        table,
        stats.items_written,
        stats.requests,
        stats.retried_items,
        len(stats.unprocessed),
        metadata={"dynamodb": {**stats.__dict__, "unprocessed": len(stats.unprocessed)}},
    )


def _write_report(output: Path, result: PapersResult) -> Path:
    body = {
        **result.result_json(),
        "request_id": result.request_id,
        "error": result.error,
        "manifest": str(result.manifest_path) if result.manifest_path else None,
        "objects": [o.__dict__ for o in result.objects],
    }
    path = output / "reports" / f"papers_{result.started_at:%Y%m%d}_{result.trace_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, json.dumps(body, indent=2, default=str).encode())
    return path


def process_objects(
    refs: list[ObjectRef],
    warehouse: Path,
    output: Path,
    *,
    request_id: str | None = None,
    lock_timeout_s: float = 0.0,
    dynamodb_table: str | None = None,
    memory_limit_mb: int = MEMORY_LIMIT_MB,
) -> PapersResult:
    """Load ``refs`` as one batch; never raises for bad input (it is in the result). The
    sink is the warehouse plus Parquet, or with ``dynamodb_table`` the warehouse (which keeps
    the dedup state) plus that DynamoDB table."""
    started_at = datetime.now(UTC).replace(microsecond=0)
    clock = time.monotonic()
    trace_id = new_trace_id(started_at)
    request_id = request_id or f"req-{uuid.uuid4().hex[:12]}"
    tlog = TraceLog(log)  # service, trace_id and request_id come from the log context
    result = PapersResult(trace_id, request_id, [], started_at)
    work = output / "_dbt" / trace_id
    context = log_context(service=SERVICE, trace_id=trace_id, request_id=request_id)
    with context, run_locks(output, warehouse, lock_timeout_s):
        ensure_tables(warehouse, STATE_TABLES, "papers_create_state_tables", work / "setup")
        con = db.connect(warehouse, memory_limit_mb=memory_limit_mb)
        try:
            con.execute(f"delete from {RAW_TABLE}")
            with tempfile.TemporaryDirectory(prefix="papers-spool-") as spool_dir:
                for number, ref in enumerate(refs):
                    spool = Path(spool_dir) / f"{number:06d}.jsonl"
                    result.objects.append(_stage_object(con, ref, spool, tlog))
        finally:
            con.close()
        result.errors = [
            {"object": o.uri, "line": None, "error": o.error} for o in result.objects if o.error
        ]
        run = run_dbt(
            ["build", "--select", DBT_SELECTOR],
            warehouse=warehouse,
            target_path=work,
            dbt_vars={
                "papers_trace_id": trace_id,
                "papers_batch_timestamp": started_at.isoformat(),
            },
            memory_limit_mb=memory_limit_mb,
        )
        if run.success:
            _read_counts(warehouse, result, tlog)
            if dynamodb_table:
                _write_to_dynamodb(warehouse, dynamodb_table, result, tlog)
            else:
                counts = {k: v for k, v in result.result_json().items() if k.endswith("_count")}
                result.manifest_path = publish_partitions(
                    warehouse, output, trace_id=trace_id, dbt_target=work, counts=counts
                )
            shutil.rmtree(work, ignore_errors=True)
        else:
            result.error = "the dbt build failed; nothing was published: " + run.failure_summary()
            result.errors.append({"object": None, "line": None, "error": result.error})
        result.processing_time_ms = round(1000 * (time.monotonic() - clock))
        result.report_path = _write_report(output, result)
        level = logging.ERROR if result.error else logging.INFO
        tlog.log(level, "Batch processing completed", metadata=result.result_json())
    return result
