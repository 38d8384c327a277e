"""Shared fixtures: generated data made once per session, paths to the shared corpora."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest

from batch_processor import config as config_module
from batch_processor import devservers
from batch_processor.config import ENV_PREFIX, TelemetryConfig, load_telemetry_config
from batch_processor.papers import lambda_handler
from batch_processor.paths import PROJECT_ROOT
from batch_processor.telemetry.generator import GeneratedBatch, generate_demo_data

SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"
ESB_RAW = SHARED_DATA / "vanderbilt-esb-chillers" / "raw_imperial_2018-10-01" / "ESB Chiller 1.csv"
EDGE_CASES = SHARED_DATA / "duckdb-csv-edgecases"


def require_shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared corpus not available: {path} (tests use ../shared/data in place)")
    return path


# Settings come from BATCH_PROCESSOR_* variables too: none from the shell or CI that runs the
# tests may leak into them (a test that wants one sets it itself).
for _name in [name for name in os.environ if name.startswith(ENV_PREFIX)]:
    del os.environ[_name]
# the HTML quality report costs ~2 s a batch: only the tests of it (and the README's run,
# which starts from a clean environment) make it
os.environ[ENV_PREFIX + "QUALITY_REPORT"] = "false"


# the longest tests first: pytest-xdist's worksteal hands out the collection order, so a long
# test collected last (test_readme.py, alphabetically late) would otherwise run alone at the
# end while the other worker idles
SLOW_FIRST = (
    "test_readme.py",
    "test_crash.py",
    "test_crm.py",
    "test_products_publish.py",
    "test_products_postgres.py",
    "test_products_inputs.py",
    "test_products.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)


@pytest.fixture(autouse=True)
def _private_default_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets its own default warehouse (the one used when neither --warehouse,
    BATCH_PROCESSOR_DUCKDB_PATH nor an --output names one): with pytest-xdist the workers run
    tests side by side, and a test that relies on the default must never share one (DuckDB
    allows one writer per file) nor write into the checkout."""
    private = tmp_path / "default-warehouse.duckdb"
    monkeypatch.setattr(config_module, "DEFAULT_WAREHOUSE", private)
    monkeypatch.setattr(lambda_handler, "DEFAULT_WAREHOUSE", private)


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL server on loopback, started by the project's own script (which
    installs Debian's postgresql if it is missing); its admin URL."""
    with devservers.postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, empty database on the session's server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f"create database {name}")
    return postgres_server.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[dict[str, str]]:
    """moto's AWS server mode on loopback, a real HTTP endpoint (no in-process patching);
    the AWS settings that point boto3 (and the CLI) at it."""
    with devservers.moto_server() as settings:
        yield settings


@pytest.fixture
def s3_bucket(moto_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the moto server; boto3 in this process points at it."""
    for key, value in moto_server.items():
        monkeypatch.setenv(key, value)
    name = f"papers-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name
