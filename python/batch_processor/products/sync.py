"""``batch-processor products sync``: register the source, then run one dbt build per batch
until the source is drained.

The source is an export folder (registered whole, then batched by dbt's keyset model) or a
PostgreSQL table (each batch fetched from a server-side keyset cursor and staged just before
its dbt build).

Each batch is one dbt invocation over ``tag:products``; the `products` model applies the
batch, appends its change log and moves the watermark in one transaction, so a failure or a
kill leaves the previous batch's state and the next sync resumes from there. Python only
moves data into the source table, runs dbt, reads the batch's counts and writes the report.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import duckdb

from batch_processor import db
from batch_processor.config import ProductsSettings
from batch_processor.dataset_commit import DatasetPaths, as_dataset_paths, publish_report
from batch_processor.dbt_runner import DbtRun, batch_build, ensure_tables, run_dbt
from batch_processor.durable import replace_atomic
from batch_processor.errors import BatchProcessorError, ConfigError
from batch_processor.products.export_source import ExportFile, register_export
from batch_processor.products.postgres_source import (
    DEFAULT_TABLE,
    PostgresSource,
    Watermark,
    is_postgres_url,
)
from batch_processor.products.publish import publish_snapshot
from batch_processor.products.unchanged_export import (
    export_digest,
    forget_export,
    record_export,
    unchanged_export,
)
from batch_processor.run_lock import run_locks

log = logging.getLogger(__name__)

DBT_SELECTOR = "tag:products"
# the models over the whole registered source (not one batch of it)
WHOLE_EXPORT_MODELS = ("stg_products__staging", "int_products__source_rows")
DEFAULT_LIMIT: int = ProductsSettings.model_fields["limit"].default
DEFAULT_SOURCE_NAME: str = ProductsSettings.model_fields["source_name"].default
# The per-batch counts, in the order reports and the summary line give them.
COUNTS = (
    "rows",
    "inserted",
    "updated",
    "unchanged",
    "stale",
    "rejected",
    "duplicates",
    "redelivered",
)
# Test hooks: SIGKILL the process right after this many batches have committed; make batch
# number N fail inside its transaction, after the merge (dbt var products_fail_after_apply).
KILL_AFTER_BATCHES_ENV = "BATCH_PROCESSOR_PRODUCTS_KILL_AFTER_BATCHES"
FAIL_BATCH_ENV = "BATCH_PROCESSOR_PRODUCTS_FAIL_BATCH"
MAX_REJECTS_IN_REPORT = 1000
POSTGRES_MIN_ID = -(2**63)  # below every bigint id: a start "at since, any id"

_BATCH_COUNTS_SQL = """
select
    count(*) as rows,
    count(*) filter (where reject_reason is not null) as rejected,
    count(*) filter (where is_duplicate) as duplicates,
    coalesce(sum(redelivered_copies), 0) as redelivered
from products_intermediate.int_products__batch_records
"""
_LAST_CURSOR_SQL = """
select src_updated_at, source_id, count(*) over () as selected_rows
from products_intermediate.int_products__batch
order by src_updated_at desc, source_id desc
limit 1
"""
_CHANGE_COUNTS_SQL = """
select change_type, count(*) from products_intermediate.int_products__changes group by all
"""
_REJECTS_SQL = """
select source_file, source_line, source_id, reject_reason
from products_intermediate.int_products__batch_records
where reject_reason is not null
order by src_updated_at, source_id
limit ?
"""
# The tables the sync needs before its first dbt build; the newest of them (last_sync_input) also
# tells a warehouse made by an older version, which the macro then brings up to date (it adds
# the columns load_error and changes).
STATE_TABLES = [
    ("products_raw", "products_staging"),
    ("products", "published_snapshots"),
    ("products", "synced_rows"),
    ("products", "last_sync_input"),
]
_WATERMARK_SQL = """
select last_src_updated_at, last_id, batch_id from products.etl_watermark where source_name = ?
"""
_NO_CURSOR_SQL = """
select count(*) over (), source_file, source_line, reject_reason
from products_staging.stg_products__staging where not has_cursor
order by source_file, source_line
limit ?
"""
_UNSYNCED_SQL = """
select count(*) over (), source_id, src_updated_at, source_file, source_line, unsynced_reason
from products_intermediate.int_products__unsynced_rows
order by src_updated_at, source_id
limit ?
"""


@dataclass
class BatchResult:
    batch_id: str | None
    rows: int = 0
    rejected: int = 0
    duplicates: int = 0
    redelivered: int = 0  # identical copies of a row delivered again (one row counted)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    seconds: float = 0.0
    watermark: dict[str, Any] | None = None
    last_cursor: tuple[datetime, int] | None = None  # the batch's last (src_updated_at, id)
    rejected_rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SyncResult:
    sync_id: str
    source: str
    dry_run: bool
    files: list[ExportFile] = field(default_factory=list)
    batches: list[BatchResult] = field(default_factory=list)
    rows_without_cursor: int = 0
    first_without_cursor: str | None = None
    rows_without_cursor_detail: list[dict[str, Any]] = field(default_factory=list)
    # rows behind the watermark no batch ever took in (late arrivals): not synced by a resume
    unsynced_rows: int = 0
    unsynced_detail: list[dict[str, Any]] = field(default_factory=list)
    # the export is the one the last sync took in whole: no dbt build ran
    export_unchanged: bool = False
    error: str | None = None
    failing_nodes: list[dict[str, Any]] = field(default_factory=list)
    report_path: Path | None = None
    manifest_path: str | None = None  # the snapshot this sync published (path or URI), if any

    def total(self, name: str) -> int:
        return sum(int(getattr(batch, name)) for batch in self.batches)

    def totals(self) -> dict[str, int]:
        return {name: self.total(name) for name in COUNTS}

    @property
    def has_rejects(self) -> bool:
        return (
            self.total("rejected") > 0
            or self.rows_without_cursor > 0
            or self.unsynced_rows > 0
            or any(f.status != "loaded" for f in self.files)
        )


@contextmanager
def _scratch_copy(warehouse: Path) -> Iterator[Path]:
    """A throw-away copy of the warehouse: a dry run does everything there."""
    with tempfile.TemporaryDirectory(prefix="products-dry-run-") as folder:
        copy = Path(folder) / warehouse.name
        if warehouse.exists():
            shutil.copy2(warehouse, copy)
        yield copy


def _read_batch(
    warehouse: Path, run: DbtRun, source_name: str, seconds: float
) -> tuple[BatchResult, int]:
    """The batch's counts, and how many source rows its keyset chose (every copy of a
    redelivered row counted)."""
    con = db.connect(warehouse, read_only=True)
    try:
        rows, rejected, duplicates, redelivered = con.execute(_BATCH_COUNTS_SQL).fetchall()[0]
        batch = BatchResult(
            run.invocation_id,
            int(rows),
            int(rejected),
            int(duplicates),
            int(redelivered),
            seconds=seconds,
        )
        last = con.execute(_LAST_CURSOR_SQL).fetchall()
        batch.last_cursor = (last[0][0], int(last[0][1])) if last else None
        selected_rows = int(last[0][2]) if last else 0
        for change_type, count in con.execute(_CHANGE_COUNTS_SQL).fetchall():
            setattr(
                batch,
                {"insert": "inserted", "update": "updated"}.get(change_type, change_type),
                int(count),
            )
        batch.rejected_rows = [
            {"file": f, "line": line, "id": i, "reason": r}
            for f, line, i, r in con.execute(_REJECTS_SQL, [MAX_REJECTS_IN_REPORT]).fetchall()
        ]
        mark = con.execute(_WATERMARK_SQL, [source_name]).fetchall()
        if mark:
            batch.watermark = {
                "last_src_updated_at": mark[0][0].isoformat(),
                "last_id": mark[0][1],
                "batch_id": mark[0][2],
            }
        return batch, selected_rows
    finally:
        con.close()


def _batch_target(work: Path, number: int) -> Path:
    return work / f"batch-{number:05d}"


def _stored_watermark(warehouse: Path, source_name: str) -> Watermark | None:
    con = db.connect(warehouse, read_only=True)
    try:
        found = con.execute(_WATERMARK_SQL, [source_name]).fetchall()
    finally:
        con.close()
    return Watermark(found[0][0], int(found[0][1])) if found else None


def _register(warehouse: Path, source: Path, result: SyncResult) -> None:
    if not source.is_dir():
        raise ConfigError(f"--input {source}: not a folder of CSV / JSON lines exports")
    con = db.connect(warehouse)
    try:
        result.files = register_export(con, source)
    finally:
        con.close()


def _run_batches(
    warehouse: Path,
    *,
    work: Path,
    result: SyncResult,
    source_name: str,
    limit: int,
    resume: bool,
    since: datetime | None,
    memory_limit_mb: int | None,
    stage_next: Callable[[], int] | None = None,
) -> None:
    """One dbt build per batch until a batch finds no rows, or (a source registered whole)
    takes fewer than ``limit`` rows. ``stage_next``, for a source read batch by batch, stages
    the next batch first (and 0 rows ends the loop).

    The first batch starts at the stored watermark (``resume``), at ``since`` (every row at
    or after it), or at the beginning; every later one right after the previous batch's
    last cursor, so a replay behind the watermark walks the whole replay (the watermark
    itself only ever moves forward)."""
    kill_after = int(os.environ.get(KILL_AFTER_BATCHES_ENV, "0") or 0)
    fail_batch = int(os.environ.get(FAIL_BATCH_ENV, "0") or 0)
    number = 0
    start: tuple[datetime, int | None] | None = (since, None) if since else None
    while True:
        number += 1
        started = time.monotonic()
        if stage_next is not None and stage_next() == 0:
            return
        dbt_vars = {
            "products_source_name": source_name,
            "products_batch_limit": limit,
            "products_resume": resume and since is None,
            "products_after_updated_at": start[0].isoformat() if start else "",
            "products_after_id": start[1] if start else None,
            "products_fail_after_apply": number == fail_batch,
        }
        run = run_dbt(
            # an export is registered once per sync: the batches after the first find its
            # rows typed and de-duplicated by the first one (over the whole export: most of a
            # batch's cost at 1 M rows), and leave those models and their tests as they are
            batch_build(
                DBT_SELECTOR,
                exclude=WHOLE_EXPORT_MODELS if stage_next is None and number > 1 else (),
            ),
            warehouse=warehouse,
            target_path=_batch_target(work, number),
            dbt_vars=dbt_vars,
            memory_limit_mb=memory_limit_mb,
        )
        if not run.success:
            result.failing_nodes = run.failure_records()
            result.error = (
                f"batch {number} failed and was rolled back; the watermark did not move: "
                + run.failure_summary()
            )
            return
        batch, selected_rows = _read_batch(warehouse, run, source_name, time.monotonic() - started)
        if batch.rows == 0 or batch.last_cursor is None:
            return
        result.batches.append(batch)
        start = batch.last_cursor
        log.info(
            "batch %d (%s): %d rows, %d inserted, %d updated, %d unchanged, %d stale, "
            "%d rejected, %d duplicates, %d redelivered",
            number,
            batch.batch_id,
            batch.rows,
            batch.inserted,
            batch.updated,
            batch.unchanged,
            batch.stale,
            batch.rejected,
            batch.duplicates,
            batch.redelivered,
        )
        if kill_after and len(result.batches) >= kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if stage_next is None and selected_rows < limit:
            # the batch took every source row after its start: the next would find none, and
            # not running it saves a dbt build per sync
            return


def _write_report(output: Path, result: SyncResult, started_at: datetime) -> Path:
    report = {
        "sync_id": result.sync_id,
        "source": result.source,
        "dry_run": result.dry_run,
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "status": "failed"
        if result.error
        else ("completed_with_rejects" if result.has_rejects else "ok"),
        "error": result.error,
        "failing_nodes": result.failing_nodes,
        "files": [asdict(f) for f in result.files],
        "export_unchanged": result.export_unchanged,
        "rows_without_cursor": result.rows_without_cursor,
        "first_row_without_cursor": result.first_without_cursor,
        "rows_without_cursor_detail": result.rows_without_cursor_detail,
        "unsynced_rows": result.unsynced_rows,
        "unsynced_rows_detail": result.unsynced_detail,
        "totals": result.totals(),
        "manifest": str(result.manifest_path) if result.manifest_path else None,
        "batches": [asdict(b) for b in result.batches],
    }
    day = started_at.strftime("%Y%m%d")
    path = output / "reports" / f"products_sync_{day}_{result.sync_id}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, json.dumps(report, indent=2, default=str).encode())
    return path


def sync_products(
    source: Path | str,
    warehouse: Path,
    output: DatasetPaths | Path,
    *,
    limit: int = DEFAULT_LIMIT,
    resume: bool = True,
    since: datetime | None = None,
    dry_run: bool = False,
    source_name: str = DEFAULT_SOURCE_NAME,
    source_table: str = DEFAULT_TABLE,
    memory_limit_mb: int | None = None,
    lock_timeout_s: float = 0.0,
) -> SyncResult:
    """Sync ``source`` (an export folder, or a ``postgresql://`` URL and ``source_table``).
    ``since`` (tz-aware) takes in every row at or after it again, whatever the watermark.
    ``output``: a folder, or the paths of an ``s3://`` dataset with its local work folder
    (``DatasetSettings.output_paths``), which holds the lock, dbt's artifacts and reports."""
    if limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    if since is not None and since.tzinfo is None:
        raise ConfigError(f"--since {since.isoformat()}: give a time zone offset (or Z)")
    started_at = datetime.now(UTC)
    paths = as_dataset_paths(output)
    postgres = PostgresSource(str(source), source_table) if is_postgres_url(str(source)) else None
    label = postgres.label if postgres else str(source)
    result = SyncResult(uuid.uuid4().hex[:12], label, dry_run)
    work = paths.root / "_dbt" / f"products-{result.sync_id}"
    batches = partial(
        _run_batches,
        work=work,
        result=result,
        source_name=source_name,
        limit=limit,
        resume=resume,
        since=since,
        memory_limit_mb=memory_limit_mb,
    )
    with run_locks(paths.root, warehouse, lock_timeout_s):
        with _scratch_copy(warehouse) if dry_run else nullcontext(warehouse) as target:
            # the source and state tables come from dbt's on-run-start macro (one definition)
            ensure_tables(target, STATE_TABLES, "products_create_state_tables", work / "setup")
            if postgres is not None:
                forget_export(target)  # the source table will hold the server's rows
                after = _stored_watermark(target, source_name) if resume else None
                if since is not None:  # every row at or after since: any id at that time
                    after = Watermark(since, POSTGRES_MIN_ID)
                with postgres.open(target, after, limit) as cursor:
                    batches(target, stage_next=cursor.stage_next)
                if cursor.rows_without_cursor:
                    result.rows_without_cursor = cursor.rows_without_cursor
                    result.first_without_cursor = f"{label}: rows with a NULL id or src_updated_at"
            else:
                export = Path(source)
                # an unchanged export needs no dbt build (products/unchanged_export.py)
                digest = (
                    export_digest(export)
                    if resume and since is None and not dry_run and export.is_dir()
                    else None
                )
                unchanged = unchanged_export(target, source_name, digest) if digest else None
                if unchanged is not None:
                    result.files, result.export_unchanged = unchanged, True
                    log.info("the export is unchanged since the last sync: nothing to take in")
                else:
                    forget_export(target)
                    _register(target, export, result)
                    batches(target)
                _count_rows_without_cursor(target, result)
                if result.error is None:
                    _count_unsynced_rows(target, result)
                    if digest is not None and unchanged is None:
                        record_export(target, source_name, digest, result.files, result.sync_id)
            if not dry_run and result.error is None:
                try:
                    result.manifest_path = publish_snapshot(
                        target,
                        paths,
                        sync_id=result.sync_id,
                        source=label,
                        totals=result.totals(),
                        dbt_runs=[
                            (batch.batch_id, _batch_target(work, number))
                            for number, batch in enumerate(result.batches, start=1)
                        ],
                    )
                except BatchProcessorError as exc:  # e.g. another writer committed first
                    result.error = f"the sync's rows are in the warehouse, not published: {exc}"
        result.report_path = _write_report(paths.root, result, started_at)
        if not dry_run:
            publish_report(paths, result.report_path)
        if result.error is None:  # a failed sync keeps dbt's logs for the report's reader
            shutil.rmtree(work, ignore_errors=True)
    return result


def _count_rows_without_cursor(warehouse: Path, result: SyncResult) -> None:
    con = db.connect(warehouse, read_only=True)
    try:
        rows = con.execute(_NO_CURSOR_SQL, [MAX_REJECTS_IN_REPORT]).fetchall()
    except duckdb.CatalogException:  # the staging view is absent after a failed build
        rows = []
    finally:
        con.close()
    result.rows_without_cursor = int(rows[0][0]) if rows else 0
    result.rows_without_cursor_detail = [
        {"file": f, "line": line, "reason": reason} for _, f, line, reason in rows
    ]
    if rows:
        _, f, line, reason = rows[0]
        result.first_without_cursor = f"{f}:{line}: {reason}"


def _count_unsynced_rows(warehouse: Path, result: SyncResult) -> None:
    """Rows behind the watermark that no batch took in (they arrived late)."""
    con = db.connect(warehouse, read_only=True)
    try:
        rows = con.execute(_UNSYNCED_SQL, [MAX_REJECTS_IN_REPORT]).fetchall()
    except duckdb.CatalogException:  # no batch was built
        rows = []
    finally:
        con.close()
    result.unsynced_rows = int(rows[0][0]) if rows else 0
    result.unsynced_detail = [
        {"id": i, "src_updated_at": at.isoformat(), "file": f, "line": line, "reason": reason}
        for _, i, at, f, line, reason in rows
    ]
    if rows:
        first = result.unsynced_detail[0]
        log.warning(
            "%d row(s) behind the watermark not taken in (first: id %s at %s in %s:%s: %s); "
            "take them in with --since %s",
            result.unsynced_rows,
            first["id"],
            first["src_updated_at"],
            first["file"],
            first["line"],
            first["reason"],
            first["src_updated_at"],
        )
