"""The telemetry job: lock the output, repair after any interrupted run, load the batch, run
one dbt build (models, tests, the Parquet post-hook), then commit only if every error-severity
test passed. A batch report is written in every case."""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batch_processor.config import TelemetryConfig
from batch_processor.dataset_commit import CURRENT, DatasetPaths, publish_report
from batch_processor.dbt_runner import DbtRun, batch_build, run_dbt
from batch_processor.errors import RunFailedError
from batch_processor.exit_codes import ExitCode
from batch_processor.run_lock import run_locks
from batch_processor.seed_state import forget_seeds, record_seeds, seeds_digest, seeds_loaded
from batch_processor.telemetry.ledger import read_accounting
from batch_processor.telemetry.loader import LoadSummary, TelemetryLoader
from batch_processor.telemetry.publisher import (
    CommitResult,
    abandon_batch,
    commit_batch,
    prune_dbt_artifacts,
    queue_full_rebuild,
    reconcile,
)
from batch_processor.telemetry.report import write_report

log = logging.getLogger(__name__)

DBT_SELECTOR = "tag:telemetry"


@dataclass
class TelemetryRunResult:
    batch_id: str
    load: LoadSummary | None = None
    dbt: DbtRun | None = None
    commit: CommitResult | None = None
    dry_run: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    quality_report_path: Path | None = None
    accounting: dict[str, Any] | None = None  # telemetry.ledger.batch_accounting
    dataset_current: str | None = None  # the dataset's current.json (a path or an s3:// URI)

    @property
    def conflicts(self) -> int:
        if self.accounting is None:
            return 0
        return int(self.accounting["within_file_conflicts"]["count"])

    @property
    def bad_timestamp_rows(self) -> int:
        if self.accounting is None:
            return 0
        return int(self.accounting["ledger"]["totals"]["rows"].get("bad_timestamp_rows", 0))

    @property
    def exit_code(self) -> ExitCode:
        """0 only when nothing was lost: no file set aside, no row rejected, no line
        swallowed, no row with an unparseable timestamp, no conflicting value discarded."""
        if (
            (self.load is not None and self.load.has_rejects)
            or self.conflicts
            or self.bad_timestamp_rows
        ):
            return ExitCode.COMPLETED_WITH_REJECTS
        return ExitCode.OK


class BatchFailedError(RunFailedError):
    """The batch failed after it started; the report says why."""

    def __init__(self, message: str, report_path: Path | None) -> None:
        suffix = f" (report: {report_path})" if report_path else ""
        super().__init__(message + suffix)
        self.report_path = report_path


def _unbalanced(accounting: dict[str, Any] | None) -> str:
    """The files whose ledger does not add up, as a sentence; empty when all do."""
    files = accounting["ledger"]["totals"]["unbalanced_files"] if accounting else []
    if not files:
        return ""
    return (
        "the ledger does not balance for " + ", ".join(files) + ": lines or cells are "
        "unaccounted for (see the batch report's ledger)"
    )


def require_balanced(accounting: dict[str, Any] | None) -> dict[str, Any]:
    """A batch whose ledger does not add up has lost something: it is not committed."""
    if accounting is None:
        raise RunFailedError("the batch's ledger was not built: nothing can prove nothing was lost")
    if unbalanced := _unbalanced(accounting):
        raise RunFailedError(unbalanced)
    return accounting


def run_telemetry(
    config: TelemetryConfig,
    input_dir: Path,
    output: Path | str,
    *,
    only_site: str | None = None,
    dry_run: bool = False,
    rebuild_all: bool = False,
) -> TelemetryRunResult:
    """One batch. ``rebuild_all`` rebuilds the marts from scratch (the history is never
    rebuilt) and republishes every partition: the way to bring a dataset published by an
    older version to the current schema. ``output`` is a folder or ``s3://bucket/prefix``
    (``TelemetryConfig.output_paths``)."""
    if not input_dir.is_dir():
        raise RunFailedError(f"input folder not found: {input_dir}")
    # dbt resolves relative paths against the project, not the caller's folder
    input_dir = input_dir.absolute()
    paths = config.output_paths(output)
    output_dir = paths.root
    # the dataset's history lives with the dataset (its work folder) unless a warehouse is given
    config = config.model_copy(
        update={"warehouse_path": config.warehouse_for(output_dir).absolute()}
    )
    started_at = datetime.now(UTC)
    result = TelemetryRunResult(batch_id=str(uuid.uuid4()), dry_run=dry_run)
    with run_locks(output_dir, config.warehouse, config.lock_timeout_s):
        paths.make()
        try:
            step = time.monotonic()
            reconciled = reconcile(paths, config.warehouse)
            result.timings["reconcile_s"] = time.monotonic() - step

            target_path = build_batch(
                config,
                paths,
                input_dir,
                result,
                only_site=only_site,
                rebuild_all=rebuild_all,
            )
            accounting = require_balanced(result.accounting)

            step = time.monotonic()
            if dry_run:
                abandon_batch(paths, config.warehouse, result.batch_id)
            else:
                result.commit = commit_batch(
                    paths,
                    config.warehouse,
                    result.batch_id,
                    target_path,
                    accounting,
                    reconciled.current_version,
                )
            result.timings["commit_s"] = time.monotonic() - step
        except Exception as exc:
            abandon_batch(paths, config.warehouse, result.batch_id)
            failure = getattr(exc, "failure", None) or {}
            failure.setdefault("kind", "error")
            failure["message"] = str(exc)
            if not isinstance(exc, RunFailedError):
                failure["traceback"] = traceback.format_exc()
            message = str(exc)
            try:
                result.report_path = write_report(
                    paths, config, result, started_at, input_dir, failure=failure
                )
                publish_report(paths, result.report_path)
            except OSError as report_error:  # a full disk: the cause still reaches the user
                message += f"; the batch report could not be written: {report_error}"
            raise BatchFailedError(message, result.report_path) from exc
        finally:
            prune_artifacts(paths, config)
        result.report_path = write_report(paths, config, result, started_at, input_dir)
        publish_report(paths, result.report_path)
        result.quality_report_path = quality_report_after_commit(paths, result, config)
        result.dataset_current = paths.store.uri(CURRENT)
    return result


def prune_artifacts(paths: DatasetPaths, config: TelemetryConfig) -> None:
    """Bound the run's dbt artifact folders (``<root>/_dbt``): housekeeping, never the
    reason a batch fails."""
    try:
        prune_dbt_artifacts(
            paths.root / "_dbt", config.dbt_artifacts_kept, config.failed_artifacts_kept_days
        )
    except OSError as exc:
        log.warning("could not prune %s: %s", paths.root / "_dbt", exc)


class BuildFailedError(RunFailedError):
    """The dbt build failed; ``failure`` is the report's record of which nodes and why."""

    def __init__(self, message: str, failure: dict[str, Any]) -> None:
        super().__init__(message)
        self.failure = failure


def build_batch(
    config: TelemetryConfig,
    paths: DatasetPaths,
    input_dir: Path,
    result: TelemetryRunResult,
    *,
    only_site: str | None = None,
    only_files: frozenset[str] | None = None,
    rebuild_all: bool = False,
) -> Path:
    """Load the batch's files into ``config.warehouse`` and run its one dbt build, which
    stages the rebuilt partitions in ``paths``' staging folder; fills ``result`` (load, dbt,
    accounting, timings, and the batch id: dbt's invocation id) and returns the folder of
    dbt's artifacts. The caller holds the locks and has reconciled. Raises RunFailedError,
    or BuildFailedError when dbt failed."""
    step = time.monotonic()
    result.load = TelemetryLoader(config, result.batch_id).load(
        input_dir, only_site=only_site, only_files=only_files
    )
    result.timings["load_s"] = time.monotonic() - step
    load = result.load
    if config.stop_on_error and load.has_rejects:
        first = load.set_aside[0] if load.set_aside else ("?", "rows rejected")
        raise RunFailedError(f"--stop-on-error: {first[0]}: {first[1]}")
    loaded = load.by_status.get("loaded") or load.by_status.get("partial")
    if not loaded and not rebuild_all:
        raise RunFailedError(
            f"no file of the batch could be loaded ({load.files_total} found under {input_dir})"
        )

    if rebuild_all:  # every partition is left to rebuild, even if this run is killed
        queue_full_rebuild(config.warehouse)
    step = time.monotonic()
    target_path = paths.root / "_dbt" / result.batch_id
    seeds = seeds_digest()
    seeds_current = not rebuild_all and seeds_loaded(config.warehouse, seeds)
    if not seeds_current:
        forget_seeds(config.warehouse)
    result.dbt = run_dbt(
        batch_build(
            DBT_SELECTOR, *(["--full-refresh"] if rebuild_all else []), skip_seeds=seeds_current
        ),
        warehouse=config.warehouse,
        target_path=target_path,
        dbt_vars=config.dbt_vars(),
        dbt_env=config.dbt_env(paths.staging_root),
        memory_limit_mb=config.memory_limit_mb,
    )
    result.timings["dbt_build_s"] = time.monotonic() - step
    result.batch_id = result.dbt.invocation_id or result.batch_id
    result.accounting = read_accounting(config.warehouse)
    if not result.dbt.success:
        failure = {
            "kind": "dbt",
            "failing_nodes": result.dbt.failure_records(),
            "error": result.dbt.error,
        }
        notes = [f"dbt build failed: {result.dbt.failure_summary()}"]
        notes.append(_unbalanced(result.accounting))
        summary = f"{result.dbt.failure_summary()} {result.dbt.error}"
        if "seed.batch_processor." in summary:
            notes.append(
                "a seed could not be loaded into its existing table (its columns "
                "changed, e.g. after an upgrade): run once with --rebuild-all"
            )
        if "out of sync" in summary:
            notes.append(
                "the warehouse holds marts of an older schema: run once with "
                "--rebuild-all to republish the dataset in the current one"
            )
        raise BuildFailedError("; ".join(note for note in notes if note), failure)
    if not seeds_current:
        record_seeds(config.warehouse, seeds)
    return target_path


def quality_report_after_commit(
    paths: DatasetPaths, result: TelemetryRunResult, config: TelemetryConfig
) -> Path | None:
    """The HTML quality report of the dataset a batch just committed (a folder or an S3
    prefix). The dataset and the batch report are already written: a page that cannot be
    made is a warning, not a failed batch (``batch-processor telemetry report`` makes it
    again)."""
    if result.commit is None or not config.quality_report:
        return None
    from batch_processor.telemetry.quality_report import write_quality_report

    step = time.monotonic()
    try:
        return write_quality_report(paths, memory_limit_mb=config.memory_limit_mb)
    except Exception as error:
        log.warning("the quality report could not be written: %s", error)
        return None
    finally:
        result.timings["quality_report_s"] = time.monotonic() - step
