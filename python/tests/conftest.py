"""Shared fixtures: generated data made once per session, paths to the shared corpora."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batch_processor.config import TelemetryConfig, load_telemetry_config
from batch_processor.paths import PROJECT_ROOT
from batch_processor.telemetry.generator import GeneratedBatch, generate_demo_data

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ESB_RAW = SHARED_DATA / "vanderbilt-esb-chillers" / "raw_imperial_2018-10-01" / "ESB Chiller 1.csv"
EDGE_CASES = SHARED_DATA / "duckdb-csv-edgecases"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared corpus not available: {path} (tests use ../shared/data in place)")
    return path


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> GeneratedBatch:
    """Two sites (metric + Metasys imperial) x 1 day, with the malformed files."""
    out = tmp_path_factory.mktemp("generated") / "input"
    return generate_demo_data(out, sites=3, days=1, seed=11)


@pytest.fixture
def batch_copy(generated: GeneratedBatch, tmp_path: Path) -> Path:
    """A private copy of the generated batch that a test may add files to."""
    target = tmp_path / "input"
    shutil.copytree(generated.out_dir, target)
    return target


@pytest.fixture
def config(tmp_path: Path) -> TelemetryConfig:
    return load_telemetry_config(warehouse_path=tmp_path / "wh.duckdb", memory_limit_mb=512)
