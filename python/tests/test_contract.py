"""The data contract of fct_telemetry_readings catches a model change that breaks
quality_flags: cast to a number (the PRD's Float64 accident) or made NULL."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from batch_processor.config import load_telemetry_config
from batch_processor.dbt_runner import batch_build
from batch_processor.paths import PROJECT_ROOT
from batch_processor.telemetry.loader import TelemetryLoader

pytestmark = pytest.mark.slow

MART = Path("models/telemetry/marts/fct_telemetry_readings.sql")
GOOD = "coalesce(flags_per_bucket.quality_flags, cast([] as varchar[])) as quality_flags"


def project_copy(tmp_path: Path) -> Path:
    target = tmp_path / "project"
    target.mkdir()
    for name in ["dbt_project.yml", "profiles.yml"]:
        shutil.copy(PROJECT_ROOT / name, target / name)
    for name in ["models", "macros", "seeds", "tests"]:
        shutil.copytree(PROJECT_ROOT / name, target / name)
    return target


def dbt_build(project: Path, warehouse: Path) -> subprocess.CompletedProcess[str]:
    dbt = Path(sys.executable).parent / "dbt"
    return subprocess.run(
        [
            str(dbt),
            *batch_build("+fct_telemetry_readings"),  # what a batch runs (no ci_only tests)
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
            "--target-path",
            str(project / "target"),
        ],
        env={**os.environ, "BATCH_PROCESSOR_DUCKDB_PATH": str(warehouse)},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture
def loaded_warehouse(tmp_path, generated) -> Path:
    config = load_telemetry_config(warehouse_path=tmp_path / "wh.duckdb")
    TelemetryLoader(config, "contract").load(generated.out_dir)
    return config.warehouse_path


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (
            "cast(len(coalesce(flags_per_bucket.quality_flags, [])) as double) as quality_flags",
            "contract",
        ),
        ("cast(null as varchar[]) as quality_flags", "not null"),
    ],
)
def test_contract_rejects_a_broken_quality_flags(tmp_path, loaded_warehouse, broken, expected):
    project = project_copy(tmp_path)
    mart = project / MART
    source = mart.read_text()
    assert GOOD in source, "the mart no longer builds quality_flags the way this test expects"

    intact = dbt_build(project, loaded_warehouse)
    assert intact.returncode == 0, intact.stdout[-3000:]

    mart.write_text(source.replace(GOOD, broken))
    result = dbt_build(project, loaded_warehouse)
    assert result.returncode != 0
    output = result.stdout.lower()
    assert expected in output and "quality_flags" in output, result.stdout[-3000:]
