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


def _warehouse_counts(warehouse: Path) -> dict[str, Any]:
    """Rejected rows by file and dropped duplicate deliveries, as the models counted them."""
    counts: dict[str, Any] = {"rejected_rows_by_file": {}, "duplicates_dropped": None}
    if not warehouse.exists():
        return counts
    con = connect(warehouse, read_only=True)
    try:
        counts["rejected_rows_by_file"] = dict(
            con.execute(
                "select path, rows_rejected from telemetry_raw.files where rows_rejected > 0 "
                "order by path"
            ).fetchall()
        )
        found = con.execute(
            "select sum(dropped_deliveries) "
            "from telemetry_intermediate.int_telemetry__duplicate_deliveries"
        ).fetchone()
        counts["duplicates_dropped"] = int(found[0]) if found and found[0] is not None else 0
    except Exception as exc:  # the tables do not exist when the batch failed early
        log.debug("no warehouse counts for the report: %s", exc)
    finally:
        con.close()
    return counts


def write_report(
    paths: DatasetPaths,
    config: TelemetryConfig,
    result: TelemetryRunResult,
    started_at: datetime,
    input_dir: Path,
    *,
    failure: dict[str, Any] | None = None,
) -> Path:
    load = result.load
    status = "failed" if failure else ("dry_run" if result.dry_run else "committed")
    manifest = result.commit.manifest if result.commit else None
    report: dict[str, Any] = {
        "batch_id": result.batch_id,
        "status": status,
        "exit_code": None if failure else int(result.exit_code),
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "input_dir": str(input_dir),
        "output_dir": str(paths.root),
        "warehouse": str(config.warehouse),
        "files": {
            "total": load.files_total if load else 0,
            "by_status": load.by_status if load else {},
            "failed": [{"path": p, "reason": r} for p, r in (load.set_aside if load else [])],
        },
        "rows": {
            "read": load.rows_read if load else 0,
            "rejected": load.rows_rejected if load else 0,
            "written": sum(f["rows"] for f in manifest["output_files"]) if manifest else 0,
            "dataset_total": manifest["statistics"]["total_rows"] if manifest else None,
        },
        **_warehouse_counts(config.warehouse),
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "manifest": str(result.commit.manifest_path) if result.commit else None,
        "failure": failure,
    }
    paths.reports.mkdir(parents=True, exist_ok=True)
    path = paths.reports / f"batch_report_{started_at:%Y%m%d}_{result.batch_id}.json"
    replace_atomic(path, json.dumps(report, indent=2, default=str).encode())
    return path
