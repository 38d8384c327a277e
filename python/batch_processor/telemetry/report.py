"""The batch report: what happened to every input file, the counts, the timings, and, when
the batch failed, which dbt nodes failed (with their failing-row counts) or the traceback of
an unexpected error. Written for committed, failed and dry-run batches alike."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_processor.db import connect
from batch_processor.durable import replace_atomic

if TYPE_CHECKING:
    from batch_processor.config import TelemetryConfig
    from batch_processor.dataset_commit import DatasetPaths
    from batch_processor.telemetry.pipeline import TelemetryRunResult

log = logging.getLogger(__name__)


def _rejected_rows_by_file(warehouse: Path) -> dict[str, int]:
    if not warehouse.exists():
        return {}
    con = connect(warehouse, read_only=True)
    try:
        return dict(
            con.execute(
                "select path, rows_rejected from telemetry_raw.files where rows_rejected > 0 "
                "order by path"
            ).fetchall()
        )
    except Exception as exc:  # the tables do not exist when the batch failed early
        log.debug("no rejected rows for the report: %s", exc)
        return {}
    finally:
        con.close()


def write_report(
    paths: DatasetPaths,
    config: TelemetryConfig,
    result: TelemetryRunResult,
    started_at: datetime,
    input_dir: Path,
    *,
    failure: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """``extra`` adds or replaces fields (a sharded batch: its shards, and no warehouse)."""
    load = result.load
    accounting = result.accounting
    status = "failed" if failure else ("dry_run" if result.dry_run else "committed")
    manifest = result.commit.manifest if result.commit else None
    report: dict[str, Any] = {
        "batch_id": result.batch_id,
        "status": status,
        "exit_code": None if failure else int(result.exit_code),
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "input_dir": str(input_dir),
        "output_dir": paths.location,
        "work_dir": str(paths.root),
        "warehouse": str(config.warehouse),
        "files": {
            "total": load.files_total if load else 0,
            "by_status": load.by_status if load else {},
            "failed": [{"path": p, "reason": r} for p, r in (load.set_aside if load else [])],
        },
        "rows": {
            "read": load.rows_read if load else 0,
            "rejected": load.rows_rejected if load else 0,
            "lines_swallowed": load.lines_swallowed if load else 0,
            "written": sum(f["rows"] for f in manifest["written_files"]) if manifest else 0,
            "dataset_total": manifest["statistics"]["total_rows"] if manifest else None,
        },
        "rejected_rows_by_file": _rejected_rows_by_file(config.warehouse),
        # cells this batch's files lost to other deliveries, or took from earlier batches' files
        "duplicates_dropped": (
            sum(s["cells"] for s in accounting["superseded_cells"]) if accounting else None
        ),
        **(accounting or {"ledger": None}),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "manifest": str(result.commit.manifest_path) if result.commit else None,
        "failure": failure,
        **(extra or {}),
    }
    paths.reports.mkdir(parents=True, exist_ok=True)
    path = paths.reports / f"batch_report_{started_at:%Y%m%d}_{result.batch_id}.json"
    replace_atomic(path, json.dumps(report, indent=2, default=str).encode())
    return path
