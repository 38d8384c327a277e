"""One papers batch: stage every object of an S3 event (or one object) as spool lines, run one
dbt build over them, then publish the changed Parquet partitions or, with a DynamoDB sink,
deliver the items pending in the outbox; return the result JSON.

Python only moves bytes: each object is streamed from S3 (or a local file), decompressed,
parsed by the format's parser into a spool file on local disk, and DuckDB reads the spool
file into ``papers_raw.paper_records``. Typing, dedup (within the batch and against the
stored papers), the upsert and the outbox are dbt models. An object that cannot be read
(missing key, truncated gzip, not XML, an entity bomb, no bytes at all) is set aside with its
reason and counted as one failed item; the batch goes on with the others. Every path is made
absolute first, so nothing depends on the folder dbt runs in.

Counts (they add up): processed_count = records read + objects that could not be read;
failed_count = rejected records + objects that could not be read (+ with a DynamoDB sink,
the batch's papers DynamoDB did not acknowledge); duplicate_count = records that lost the
dedup inside the batch + winners not newer than the stored paper (with a sink: and already
delivered); upsert_count = papers inserted or replaced (with a sink: the batch's papers
DynamoDB acknowledged, including a stored version that was still pending for it, change type
``retry``). processed = failed + duplicate + upsert. With a sink, ``sink`` adds: written
(items acknowledged in this run), from_earlier_batches (those of them that earlier batches
stored: not records of this batch, so outside the sum), pending (items left for the next
run).

``batch_statistics``: a batch is one 25-item write batch (BatchWriteItem request with its
retries) when the DynamoDB sink writes (the seed's 833 upserts are 34 = ceil(833/25)
batches; nothing pending, 0 batches), otherwise one input object; a failed object batch is
one that could not be read or is an arXiv API error feed, a failed write batch one with an
item DynamoDB did not acknowledge. Status: failed when the dbt build failed or a DynamoDB
request failed outright (a missing table: the items stay pending, exit 1);
completed_with_errors when anything failed or is still pending; else completed.
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
from batch_processor.dataset_commit import DatasetPaths, as_dataset_paths, publish_report
from batch_processor.dbt_runner import batch_build, ensure_tables, run_dbt
from batch_processor.durable import replace_atomic
from batch_processor.errors import BatchProcessorError
from batch_processor.logs import log_context
from batch_processor.papers.dynamodb_sink import (
    OUTBOX,
    OUTBOX_TABLE,
    SinkStats,
    deliver_pending,
)
from batch_processor.papers.events import new_trace_id
from batch_processor.papers.objects import ObjectError, ObjectRef, open_decompressed
from batch_processor.papers.parsers import PARSERS, detect_format
from batch_processor.papers.publish import publish_partitions
from batch_processor.run_lock import run_locks

log = logging.getLogger(__name__)

SERVICE = "batch-processor"
DBT_SELECTOR = "tag:papers"
RAW_TABLE = "papers_raw.paper_records"
STATE_TABLES = [("papers_raw", "paper_records"), OUTBOX_TABLE, ("papers", "published_batches")]
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
        where change_type in ('insert', 'update', 'retry'))
"""
# after a delivery: this batch's papers acknowledged / not, earlier batches' acknowledged, and
# everything still pending for the table
_SINK_COUNTS_SQL = f"""
select
    count(*) filter (where batch.paper_id is not null and outbox.acknowledged_by = $trace_id),
    count(*) filter (where batch.paper_id is not null and outbox.acknowledged_at is null),
    count(*) filter (where batch.paper_id is null and outbox.acknowledged_by = $trace_id),
    count(*) filter (where outbox.acknowledged_at is null)
from {OUTBOX} as outbox
left join (
    select paper_id from papers_intermediate.int_papers__changes
    where change_type in ('insert', 'update', 'retry')
) as batch on outbox.paper_id = batch.paper_id
where outbox.dynamodb_table = $table
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
class SinkOutcome:
    """One delivery of the outbox to a DynamoDB table, counted from the outbox afterwards."""

    table: str
    stats: SinkStats
    batch_written: int = 0  # this batch's papers DynamoDB acknowledged
    batch_unwritten: int = 0  # this batch's papers left pending (failed items)
    earlier_written: int = 0  # pending papers of earlier batches delivered now
    pending: int = 0  # everything still pending for the table

    def result_json(self) -> dict[str, Any]:
        return {
            "dynamodb_table": self.table,
            "written": self.batch_written + self.earlier_written,
            "from_earlier_batches": self.earlier_written,
            "pending": self.pending,
        }


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
    error: str | None = None  # the batch failed as a whole (dbt, publish, DynamoDB)
    sink: SinkOutcome | None = None  # with a DynamoDB sink, once the dbt build succeeded
    manifest_path: str | None = None  # the manifest this batch published (path or URI)
    report_path: Path | None = None

    @property
    def failed_objects(self) -> int:
        """Objects that could not be read (each one failed item)."""
        return sum(1 for o in self.objects if o.error)

    @property
    def failed_count(self) -> int:
        unwritten = self.sink.batch_unwritten if self.sink else 0
        return self.rejected_records + self.failed_objects + unwritten

    @property
    def processed_count(self) -> int:
        return self.records + self.failed_objects

    @property
    def status(self) -> str:
        if self.error is not None:
            return "failed"
        pending = self.sink.pending if self.sink else 0
        return "completed_with_errors" if self.failed_count or pending else "completed"

    def batch_statistics(self) -> dict[str, int]:
        """Write batches when the DynamoDB sink wrote, input objects otherwise."""
        if self.sink is not None:
            stats = self.sink.stats
            return {
                "total_batches": stats.write_batches,
                "successful_batches": stats.write_batches - stats.failed_batches,
                "failed_batches": stats.failed_batches,
                "avg_batch_time_ms": stats.avg_batch_ms,
            }
        timed = [o.seconds for o in self.objects]
        return {
            "total_batches": len(self.objects),
            "successful_batches": sum(1 for o in self.objects if not o.failed),
            "failed_batches": sum(1 for o in self.objects if o.failed),
            "avg_batch_time_ms": round(1000 * sum(timed) / len(timed)) if timed else 0,
        }

    def result_json(self) -> dict[str, Any]:
        """The seed's result fields, plus ``errors`` (what failed, where and why) and, with a
        DynamoDB sink, ``sink``."""
        unwritten = self.sink.batch_unwritten if self.sink else 0
        body = {
            "trace_id": self.trace_id,
            "processed_count": self.processed_count,
            "duplicate_count": self.duplicates,
            "upsert_count": self.upserts - unwritten,
            "failed_count": self.failed_count,
            "timestamp": self.started_at.isoformat().replace("+00:00", "Z"),
            "status": self.status,
            "processing_time_ms": self.processing_time_ms,
            "s3_key": ",".join(ObjectRef(o.uri).key for o in self.objects),
            "batch_statistics": self.batch_statistics(),
            "errors": self.errors[:MAX_ERRORS_IN_RESULT],
        }
        if self.sink is not None:
            body["sink"] = self.sink.result_json()
        return body


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


def _deliver_to_dynamodb(warehouse: Path, table: str, result: PapersResult, tlog: TraceLog) -> None:
    """Send what is pending for ``table`` (this batch's papers and earlier batches' leftovers)
    and count the outcome from the outbox."""
    stats = deliver_pending(warehouse, table, result.trace_id)
    sink = result.sink = SinkOutcome(table, stats)
    con = db.connect(warehouse, read_only=True)
    try:
        counts = con.execute(
            _SINK_COUNTS_SQL, {"trace_id": result.trace_id, "table": table}
        ).fetchall()[0]
    finally:
        con.close()
    sink.batch_written, sink.batch_unwritten, sink.earlier_written, sink.pending = map(int, counts)
    default = stats.error or f"DynamoDB table {table}: still unprocessed after retries"
    for paper_id in stats.unprocessed[:MAX_ERRORS_IN_RESULT]:
        reason = stats.item_errors.get(paper_id, default)
        result.errors.append(
            {"object": f"dynamodb:{table}", "line": None, "error": f"{paper_id}: {reason}"}
        )
    if stats.error:
        result.error = (
            f"{stats.error}; {sink.pending} item(s) stay pending in the outbox for the next run"
        )
    tlog.log(
        logging.ERROR if stats.error else logging.INFO,
        "DynamoDB %s: %d item(s) written in %d write batch(es) (%d request(s), %d item(s) "
        "retried), %d from earlier batches, %d still pending",
        table,
        stats.items_written,
        stats.write_batches,
        stats.requests,
        stats.retried_items,
        sink.earlier_written,
        sink.pending,
        metadata={"dynamodb": {**sink.result_json(), "requests": stats.requests}},
    )


def _write_report(paths: DatasetPaths, result: PapersResult) -> Path:
    body = {
        **result.result_json(),
        "request_id": result.request_id,
        "error": result.error,
        "manifest": str(result.manifest_path) if result.manifest_path else None,
        "objects": [o.__dict__ for o in result.objects],
    }
    path = paths.reports / f"papers_{result.started_at:%Y%m%d}_{result.trace_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, json.dumps(body, indent=2, default=str).encode())
    publish_report(paths, path)
    return path


def process_objects(
    refs: list[ObjectRef],
    warehouse: Path,
    output: DatasetPaths | Path,
    *,
    request_id: str | None = None,
    lock_timeout_s: float = 0.0,
    dynamodb_table: str | None = None,
    memory_limit_mb: int = MEMORY_LIMIT_MB,
) -> PapersResult:
    """Load ``refs`` as one batch; never raises for bad input (it is in the result). The
    sink is the warehouse plus Parquet, or with ``dynamodb_table`` the warehouse (which keeps
    the dedup state and the outbox) plus that DynamoDB table, which also receives what
    earlier batches left pending for it. ``output``: a folder, or the paths of an ``s3://``
    dataset with its local work folder (``DatasetSettings.output_paths``)."""
    warehouse, paths = warehouse.absolute(), as_dataset_paths(output)
    started_at = datetime.now(UTC).replace(microsecond=0)
    clock = time.monotonic()
    trace_id = new_trace_id(started_at)
    request_id = request_id or f"req-{uuid.uuid4().hex[:12]}"
    tlog = TraceLog(log)  # service, trace_id and request_id come from the log context
    result = PapersResult(trace_id, request_id, [], started_at)
    work = paths.root / "_dbt" / trace_id
    context = log_context(service=SERVICE, trace_id=trace_id, request_id=request_id)
    with context, run_locks(paths.root, warehouse, lock_timeout_s):
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
            batch_build(DBT_SELECTOR),
            warehouse=warehouse,
            target_path=work,
            dbt_vars={
                "papers_trace_id": trace_id,
                "papers_batch_timestamp": started_at.isoformat(),
                "papers_dynamodb_table": dynamodb_table or "",
            },
            memory_limit_mb=memory_limit_mb,
        )
        if run.success:
            _read_counts(warehouse, result, tlog)
            if dynamodb_table:
                _deliver_to_dynamodb(warehouse, dynamodb_table, result, tlog)
            else:
                counts = {k: v for k, v in result.result_json().items() if k.endswith("_count")}
                try:
                    result.manifest_path = publish_partitions(
                        warehouse, paths, trace_id=trace_id, dbt_target=work, counts=counts
                    )
                except BatchProcessorError as exc:  # e.g. another writer committed first
                    result.error = f"the papers were stored but not published: {exc}"
                    result.errors.append({"object": None, "line": None, "error": result.error})
            shutil.rmtree(work, ignore_errors=True)
        else:
            result.error = "the dbt build failed; nothing was published: " + run.failure_summary()
            result.errors.append({"object": None, "line": None, "error": result.error})
        result.processing_time_ms = round(1000 * (time.monotonic() - clock))
        result.report_path = _write_report(paths, result)
        level = logging.ERROR if result.error else logging.INFO
        tlog.log(level, "Batch processing completed", metadata=result.result_json())
    return result
