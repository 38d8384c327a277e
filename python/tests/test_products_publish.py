"""Products snapshot publishing: Parquet + manifest committed like telemetry's output, only
when the warehouse changed, and never half-written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from batch_processor.dataset_commit import CRASH_ENV
from batch_processor.products.generator import generate_products_export
from batch_processor.products.sync import sync_products
from batch_processor.telemetry.verify import verify_output

CLI = str(Path(sys.executable).parent / "batch-processor")


def current(output: Path) -> dict:
    return json.loads((output / "manifests" / "current.json").read_text())


def published_rows(output: Path) -> list[tuple]:
    files = [str(output / "data" / f["path"]) for f in current(output)["dataset_files"]]
    return duckdb.sql(
        "select brand_code, sku, data_version from read_parquet($files, hive_partitioning = true)"
        " order by all",
        params={"files": files},
    ).fetchall()


def warehouse_rows(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(
            "select brand_code, sku, data_version from products.products order by all"
        ).fetchall()
    finally:
        con.close()


def test_each_changing_sync_publishes_one_snapshot(tmp_path: Path) -> None:
    warehouse, output = tmp_path / "w.duckdb", tmp_path / "out"
    export = generate_products_export(tmp_path / "in", rows=800, seed=9)
    first = sync_products(export.path.parent, warehouse, output, limit=300)
    assert first.manifest_path == str(output / "manifests" / f"manifest-{first.sync_id}.json")
    manifest = current(output)
    assert manifest["batch_id"] == first.sync_id and manifest["dataset"] == "products"
    assert published_rows(output) == warehouse_rows(warehouse)
    assert {f["partition"]["brand_code"] for f in manifest["dataset_files"]} == {
        row[0] for row in warehouse_rows(warehouse)
    }
    assert manifest["statistics"]["total_rows"] == len(warehouse_rows(warehouse))
    files = [str(output / "data" / f["path"]) for f in manifest["dataset_files"]]
    measured = duckdb.sql(
        "select coalesce(currency, 'none'), count(*), min(src_updated_at), max(src_updated_at) "
        "from read_parquet($files) group by all",
        params={"files": files},
    ).fetchall()
    assert manifest["statistics"]["rows_per_currency"] == {c: n for c, n, _, _ in measured}
    first_at, last_at = manifest["statistics"]["src_updated_at_range"]
    assert first_at == min(m[2] for m in measured).isoformat()
    assert last_at == max(m[3] for m in measured).isoformat()
    assert [i["invocation_id"] for i in manifest["dbt"]["invocations"]] == [
        b.batch_id for b in first.batches
    ]
    assert verify_output(output).ok

    nothing_new = sync_products(export.path.parent, warehouse, output, limit=300)
    assert nothing_new.manifest_path is None and current(output) == manifest

    generate_products_export(tmp_path / "in", rows=800, seed=9, revision=1, changed_fraction=0.2)
    second = sync_products(export.path.parent, warehouse, output, limit=300)
    assert second.total("updated") > 0 and second.manifest_path is not None
    assert published_rows(output) == warehouse_rows(warehouse)
    superseded = {f["path"] for f in current(output)["superseded_files"]}
    assert superseded == {f["path"] for f in manifest["dataset_files"]}
    assert all((output / "data" / path).exists() for path in superseded)  # one commit longer
    assert verify_output(output).ok

    generate_products_export(tmp_path / "in", rows=800, seed=9, revision=2, changed_fraction=0.2)
    sync_products(export.path.parent, warehouse, output, limit=300)
    assert not any((output / "data" / path).exists() for path in superseded)
    assert verify_output(output).ok


@pytest.mark.slow
@pytest.mark.parametrize("crash_at", ["after_first_move", "before_current", "after_current"])
def test_a_publish_killed_midway_leaves_the_dataset_whole_and_the_next_sync_finishes(
    tmp_path: Path, crash_at: str
) -> None:
    warehouse, output = tmp_path / "w.duckdb", tmp_path / "out"
    export = generate_products_export(tmp_path / "in", rows=500, seed=10)
    sync_products(export.path.parent, warehouse, output, limit=500)
    before = current(output)
    generate_products_export(tmp_path / "in", rows=500, seed=10, revision=1, changed_fraction=0.3)
    command = [
        CLI, "products", "sync", "--input", str(export.path.parent),
        "--warehouse", str(warehouse), "--output", str(output),
    ]  # fmt: skip
    killed = subprocess.run(
        command, env={**os.environ, CRASH_ENV: crash_at}, capture_output=True, check=False
    )
    assert killed.returncode == -9
    if crash_at == "after_current":
        assert current(output)["batch_id"] != before["batch_id"]
    else:
        assert current(output) == before  # readers still see the whole previous snapshot
        assert verify_output(output).problems == []

    # the batches committed in the warehouse; the next sync finds no new rows but publishes
    after = sync_products(export.path.parent, warehouse, output)
    assert after.batches == []
    assert (after.manifest_path is None) == (crash_at == "after_current")
    assert published_rows(output) == warehouse_rows(warehouse)
    assert verify_output(output).ok
