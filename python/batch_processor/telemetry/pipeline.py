"""The telemetry job: load the batch's files, then one dbt build over the telemetry models."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from batch_processor.config import TelemetryConfig
from batch_processor.dbt_runner import DbtRun, run_dbt
from batch_processor.errors import RunFailedError
from batch_processor.exit_codes import ExitCode
from batch_processor.telemetry.loader import LoadSummary, TelemetryLoader

log = logging.getLogger(__name__)

DBT_SELECTOR = "tag:telemetry"


@dataclass
class TelemetryRunResult:
    batch_id: str
    load: LoadSummary
    dbt: DbtRun
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.COMPLETED_WITH_REJECTS if self.load.has_rejects else ExitCode.OK


def run_telemetry(
    config: TelemetryConfig,
    input_dir: Path,
    output_dir: Path,
    *,
    only_site: str | None = None,
) -> TelemetryRunResult:
    if not input_dir.is_dir():
        raise RunFailedError(f"input folder not found: {input_dir}")
    batch_id = str(uuid.uuid4())
    timings: dict[str, float] = {}
    started = time.monotonic()
    load = TelemetryLoader(config, batch_id).load(input_dir, only_site=only_site)
    timings["load_s"] = time.monotonic() - started
    if not load.by_status.get("loaded") and not load.by_status.get("partial"):
        raise RunFailedError(
            f"no file of the batch could be loaded ({load.files_total} found under {input_dir}); "
            "see the reasons above"
        )
    started = time.monotonic()
    target_path = output_dir / "_dbt" / batch_id
    dbt = run_dbt(
        ["build", "--select", DBT_SELECTOR],
        warehouse=config.warehouse_path,
        target_path=target_path,
        dbt_vars={"telemetry_batch_id": batch_id},
        memory_limit_mb=config.memory_limit_mb,
    )
    timings["dbt_build_s"] = time.monotonic() - started
    if not dbt.success:
        failed = ", ".join(f"{n.unique_id} ({n.status}: {n.message})" for n in dbt.failed_nodes)
        raise RunFailedError(f"dbt build failed: {failed or dbt.error}")
    return TelemetryRunResult(batch_id=batch_id, load=load, dbt=dbt, timings=timings)
