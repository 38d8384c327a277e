"""A batch loads and tests the seeds only when they changed: the first batch on a warehouse
loads them; the next skips them and the tests that read only seeds, yet still checks the
batch's rows against them (relationships to a seed); an edited seed file is loaded and
tested again, with the record cleared before that build (a build that fails half-way must
not leave a record that claims the seeds it may have replaced)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from batch_processor import seed_state
from batch_processor.config import load_telemetry_config
from batch_processor.reader import read_dataset
from batch_processor.telemetry import pipeline
from batch_processor.telemetry.generator import DEFAULT_START, generate_demo_data
from batch_processor.telemetry.pipeline import TelemetryRunResult, run_telemetry

pytestmark = pytest.mark.slow

RELATIONSHIP_TO_A_SEED = (
    "test.batch_processor.relationships_fct_telemetry_readings_site_id__site_id__"
    "ref_telemetry_sites_.1006b3e352"
)


def one_day(root: Path, day: int) -> Path:
    folder = root / f"day{day}"
    generate_demo_data(
        folder,
        sites=1,
        days=1,
        seed=day,
        malformed_files=False,
        start=DEFAULT_START + timedelta(days=day),
    )
    return folder


def seed_nodes(result: TelemetryRunResult) -> tuple[set[str], set[str]]:
    """(seeds built, tests run) of the batch's dbt build."""
    assert result.dbt is not None
    seeds = {n.unique_id for n in result.dbt.nodes if n.resource_type == "seed"}
    tests = {n.unique_id for n in result.dbt.nodes if n.resource_type == "test"}
    return seeds, tests


def test_seeds_are_loaded_once_per_edit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    warehouse, output = tmp_path / "wh.duckdb", tmp_path / "out"
    config = load_telemetry_config(warehouse_path=warehouse)
    digest = seed_state.seeds_digest()

    first = run_telemetry(config, one_day(tmp_path, 0), output)
    rows_of_one_day = read_dataset(output).aggregate("count(*)").fetchall()[0][0]
    seeds, first_tests = seed_nodes(first)
    assert len(seeds) == 6, "a new warehouse loads every seed"
    assert seed_state.seeds_loaded(warehouse, digest)

    second = run_telemetry(config, one_day(tmp_path, 1), output)
    seeds, tests = seed_nodes(second)
    assert seeds == set(), "unchanged seeds are not loaded again"
    assert RELATIONSHIP_TO_A_SEED in tests, "the batch's rows are still checked against a seed"
    seed_only = first_tests - tests
    assert seed_only and all("telemetry_readings" not in t for t in seed_only)
    assert tests < first_tests
    assert all(n.status in {"success", "pass"} for n in second.dbt.nodes if second.dbt)
    rows = read_dataset(output).aggregate("count(*)").fetchall()[0][0]
    assert rows >= 2 * rows_of_one_day - 1, "the second day is published next to the first"

    # an analyst edits a seed file: its digest changes, the next batch loads the seeds again,
    # and the old record is gone while that build runs
    edited = "f" * 64
    monkeypatch.setattr(pipeline, "seeds_digest", lambda: edited)
    real_run_dbt = pipeline.run_dbt
    records_during_build: list[bool] = []

    def run_dbt(*args: Any, **kwargs: Any) -> Any:
        records_during_build.append(seed_state.seeds_loaded(warehouse, digest))
        return real_run_dbt(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_dbt", run_dbt)
    third = run_telemetry(config, one_day(tmp_path, 2), output)
    seeds, tests = seed_nodes(third)
    assert len(seeds) == 6 and tests == first_tests
    assert records_during_build == [False]
    assert seed_state.seeds_loaded(warehouse, edited)
    assert not seed_state.seeds_loaded(warehouse, digest)
