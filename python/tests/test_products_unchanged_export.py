"""A sync of the export the last sync took in whole, unchanged, runs no dbt build and reports
what a full sync would; any change (a file, the watermark, the options, a failed sync before)
has it register and build as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

import batch_processor.products.sync as products_sync
from batch_processor.products.generator import generate_products_export
from batch_processor.products.sync import FAIL_BATCH_ENV, SyncResult, sync_products

from .test_products import state


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The dbt builds the syncs run (their vars)."""
    seen: list[dict[str, Any]] = []
    real_run_dbt = products_sync.run_dbt

    def counting_run_dbt(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs["dbt_vars"])
        return real_run_dbt(*args, **kwargs)

    monkeypatch.setattr(products_sync, "run_dbt", counting_run_dbt)
    return seen


def sync(folder: Path, tmp: Path, **options: Any) -> SyncResult:
    result = sync_products(folder, tmp / "w.duckdb", tmp / "out", limit=400, **options)
    assert result.error is None, result.error
    return result


def report(result: SyncResult) -> dict[str, Any]:
    """The report without what differs between any two syncs (ids, times)."""
    body = json.loads(Path(str(result.report_path)).read_text())
    return {k: v for k, v in body.items() if k not in {"sync_id", "started_at", "finished_at"}}


def test_an_unchanged_export_is_not_built_again(
    tmp_path: Path, builds: list[dict[str, Any]]
) -> None:
    export = generate_products_export(tmp_path / "in", rows=1_000, seed=8)
    folder = export.path.parent
    sync(folder, tmp_path)
    full = sync(folder, tmp_path, resume=False)  # every row again: a full sync's report
    after_full = state(tmp_path / "w.duckdb")
    drained = sync(folder, tmp_path)  # a --no-resume sync leaves no record: this one builds
    assert not drained.export_unchanged and drained.batches == []

    builds.clear()
    unchanged = sync(folder, tmp_path)
    assert unchanged.export_unchanged and builds == []
    assert report(unchanged) == {**report(drained), "export_unchanged": True}
    assert unchanged.files == drained.files and unchanged.rows_without_cursor == (
        full.rows_without_cursor
    )
    assert state(tmp_path / "w.duckdb") == after_full

    # one more row in the export: registered and built, the row taken in
    with export.path.open("a", encoding="utf-8") as handle:
        handle.write('99999,BR-Z,SKU-NEW,"New",1.00,EUR,{},2030-01-01T00:00:00Z\n')
    changed = sync(folder, tmp_path)
    assert not changed.export_unchanged and len(builds) == 1
    assert changed.total("inserted") == 1

    # the watermark moved by something other than the recorded sync: built again
    builds.clear()
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("update products.etl_watermark set batch_id = 'another-run'")
    assert not sync(folder, tmp_path).export_unchanged and len(builds) == 1

    # a view the sync counts from is gone (dropped by hand): built again, not read as 0 rows
    builds.clear()
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("drop view products_intermediate.int_products__unsynced_rows")
    assert not sync(folder, tmp_path).export_unchanged and len(builds) == 1

    # --since and another source name are not the recorded sync's question: built again
    builds.clear()
    assert sync(folder, tmp_path).export_unchanged and builds == []
    since = sync(folder, tmp_path, since=datetime(2000, 1, 1, tzinfo=UTC))
    other = sync(folder, tmp_path, source_name="another_source")
    assert not since.export_unchanged and not other.export_unchanged
    assert builds and all(b["products_source_name"] for b in builds)


def test_a_failed_sync_leaves_no_record(
    tmp_path: Path, builds: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = generate_products_export(tmp_path / "in", rows=900, seed=5, products=900)
    sync(first.path.parent, tmp_path)
    revision = generate_products_export(
        tmp_path / "in", rows=900, seed=5, products=900, revision=1, changed_fraction=0.5
    )
    assert revision.rows > 0
    monkeypatch.setenv(FAIL_BATCH_ENV, "1")
    failed = sync_products(first.path.parent, tmp_path / "w.duckdb", tmp_path / "out", limit=400)
    assert failed.error is not None
    monkeypatch.delenv(FAIL_BATCH_ENV)
    builds.clear()
    resumed = sync(first.path.parent, tmp_path)
    assert not resumed.export_unchanged and builds, "the failed sync's export is built again"
    assert resumed.total("updated") > 0
