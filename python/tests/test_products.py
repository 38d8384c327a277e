"""Products sync: idempotent upserts, tie-safe keyset batches, one transaction per batch,
resume after a kill, dry run, canonical JSON."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from batch_processor.products.generator import generate_products_export
from batch_processor.products.sync import FAIL_BATCH_ENV, KILL_AFTER_BATCHES_ENV, sync_products

from .conftest import require_shared

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
CLI = str(Path(sys.executable).parent / "batch-processor")


def state(warehouse: Path) -> dict[str, list[tuple]]:
    """Everything a sync may change, without the columns that carry wall-clock time or ids."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return {
            "products": con.execute(
                "select brand_code, sku, name, price, currency, attributes::varchar, "
                "data_version, source_id, src_updated_at from products.products order by all"
            ).fetchall(),
            "changes": con.execute(
                "select brand_code, sku, change_type, old_data_version, new_data_version, "
                "changed_fields, source_id from products.product_change_log order by all"
            ).fetchall(),
            "watermark": con.execute(
                "select source_name, last_src_updated_at, last_id from products.etl_watermark"
            ).fetchall(),
        }
    finally:
        con.close()


def sync(source: Path, tmp: Path, **kwargs):
    return sync_products(source, tmp / "w.duckdb", tmp / "out", **kwargs)


def test_second_sync_of_the_same_export_changes_nothing(tmp_path: Path) -> None:
    export = generate_products_export(tmp_path / "in", rows=2_000, seed=3)
    first = sync(export.path.parent, tmp_path, limit=700)
    assert first.error is None
    assert len(first.batches) == 3
    assert first.total("rows") == 2_000
    # 2,000 rows of 1,800 products (rows 1,800+ repeat products 0-199, spelled differently);
    # two 'n/a' prices are rejected (rows 13 and 1,010; product 13 comes again valid)
    assert first.total("rejected") == 2
    assert first.total("inserted") == 1_799
    assert first.total("unchanged") == 199
    rejected = [r for b in first.batches for r in b.rejected_rows]
    assert {r["reason"] for r in rejected} == {"price is not a decimal: n/a"}
    assert all(r["file"] == str(export.path) and r["line"] == r["id"] + 1 for r in rejected)
    after_first = state(tmp_path / "w.duckdb")
    assert len(after_first["changes"]) == len(after_first["products"]) == 1_799

    second = sync(export.path.parent, tmp_path, limit=700)
    assert second.error is None and second.batches == []  # resumed after the watermark
    again = sync(export.path.parent, tmp_path, limit=700, resume=False)
    assert again.total("rows") == 2_000
    assert again.total("inserted") == again.total("updated") == 0
    assert again.total("unchanged") == 1_998
    assert state(tmp_path / "w.duckdb") == after_first

    report = json.loads(Path(str(first.report_path)).read_text())
    assert report["totals"]["inserted"] == 1_799 and report["status"] == "completed_with_rejects"


def test_a_sync_builds_once_per_batch_and_not_again_after_a_short_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch that takes fewer rows than the limit took every row left: no empty build after
    it. One that takes exactly the limit cannot know, so one more build finds nothing."""
    import batch_processor.products.sync as products_sync

    builds: list[object] = []
    commands: list[list[str]] = []
    real_run_dbt = products_sync.run_dbt

    def counting_run_dbt(*args: object, **kwargs: object) -> object:
        builds.append(kwargs["dbt_vars"])
        commands.append(list(args[0]))  # type: ignore[call-overload]
        return real_run_dbt(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(products_sync, "run_dbt", counting_run_dbt)
    export = generate_products_export(tmp_path / "in", rows=1_000, seed=5)
    short = sync(export.path.parent, tmp_path, limit=400)
    assert short.error is None and len(short.batches) == 3
    assert len(builds) == 3
    assert short.unsynced_rows == 0 and short.total("inserted") + short.total("rejected") > 0
    # the export is typed and de-duplicated once per sync, by its first batch
    whole = set(products_sync.WHOLE_EXPORT_MODELS)
    assert not whole & set(commands[0]) and all(whole <= set(c) for c in commands[1:])

    builds.clear()
    exact = sync(export.path.parent, tmp_path, limit=500, resume=False)
    assert exact.error is None and len(exact.batches) == 2
    assert len(builds) == 3
    assert exact.total("inserted") == 0 and exact.unsynced_rows == 0


def test_rows_sharing_one_timestamp_are_never_skipped(tmp_path: Path) -> None:
    export = generate_products_export(
        tmp_path / "in", rows=1_000, seed=4, tie_group=1_000, products=1_000
    )
    result = sync(export.path.parent, tmp_path, limit=300)
    assert [b.rows for b in result.batches] == [300, 300, 300, 100]
    assert result.total("inserted") + result.total("rejected") == 1_000
    products = state(tmp_path / "w.duckdb")["products"]
    assert len(products) == 1_000 - result.total("rejected")

    # the plan we replace: `src_updated_at > watermark order by src_updated_at limit N`
    con = duckdb.connect()
    rows = f"read_csv('{export.path}', all_varchar = true)"
    seen, watermark = 0, "0000"
    while True:
        batch = con.execute(
            f"select src_updated_at from {rows} where src_updated_at > ? "
            "order by src_updated_at limit 300",
            [watermark],
        ).fetchall()
        if not batch:
            break
        seen += len(batch)
        watermark = max(r[0] for r in batch)
    assert seen == 300  # it loses 700 rows: ours loses none


def test_a_failing_batch_rolls_back_and_leaves_the_watermark(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    export = generate_products_export(tmp_path / "in", rows=900, seed=5, products=900)
    monkeypatch.setenv(FAIL_BATCH_ENV, "2")
    failed = sync(export.path.parent, tmp_path, limit=300)
    assert failed.error is not None and "batch 2 failed" in failed.error
    assert "model.batch_processor.products" in failed.error
    after = state(tmp_path / "w.duckdb")
    assert len(after["products"]) == len(after["changes"]) == 300 - failed.total("rejected")
    assert after["watermark"][0][2] == 300  # batch 1's last id: batch 2 left no trace

    monkeypatch.delenv(FAIL_BATCH_ENV)
    resumed = sync(export.path.parent, tmp_path, limit=300)
    assert resumed.error is None and [b.rows for b in resumed.batches] == [300, 300]
    clean = tmp_path / "clean"
    sync(export.path.parent, clean, limit=900)
    assert state(tmp_path / "w.duckdb") == state(clean / "w.duckdb")


@pytest.mark.slow
def test_a_sync_killed_between_batches_resumes_without_loss_or_duplicates(
    tmp_path: Path,
) -> None:
    export = generate_products_export(tmp_path / "in", rows=1_500, seed=6)
    revision = generate_products_export(
        tmp_path / "in", rows=1_500, seed=6, revision=1, changed_fraction=0.3
    )
    assert revision.rows > 0
    command = [
        CLI, "products", "sync", "--input", str(export.path.parent), "--limit", "400",
        "--warehouse", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, KILL_AFTER_BATCHES_ENV: "2"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == -9
    assert state(tmp_path / "w.duckdb")["watermark"][0][2] > 0

    resumed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert resumed.returncode in (0, 3), resumed.stderr
    clean = tmp_path / "clean"
    sync(export.path.parent, clean, limit=400)
    got, expected = state(tmp_path / "w.duckdb"), state(clean / "w.duckdb")
    assert got == expected
    keys = [(c[0], c[1], c[4]) for c in got["changes"]]
    assert len(keys) == len(set(keys))  # every change logged once
    assert any(c[2] == "update" for c in got["changes"])


def test_dry_run_changes_nothing_and_predicts_the_real_run(tmp_path: Path) -> None:
    base = generate_products_export(tmp_path / "in", rows=600, seed=7)
    sync(base.path.parent, tmp_path, limit=1_000)
    generate_products_export(tmp_path / "in", rows=600, seed=7, revision=1, changed_fraction=0.2)
    warehouse = tmp_path / "w.duckdb"
    before_bytes, before = warehouse.read_bytes(), state(warehouse)
    dry = sync(base.path.parent, tmp_path, limit=1_000, dry_run=True)
    assert warehouse.read_bytes() == before_bytes and state(warehouse) == before
    assert dry.total("updated") > 0
    real = sync(base.path.parent, tmp_path, limit=1_000)
    for name in ("rows", "inserted", "updated", "unchanged", "stale", "rejected"):
        assert dry.total(name) == real.total(name), name
    assert state(warehouse) != before


def _reference_canonical(value: object) -> object:
    """The documented rules, in Python, to check the SQL against."""
    if isinstance(value, dict):
        kept = {k: _reference_canonical(v) for k, v in value.items()}
        return {
            k: v
            for k, v in sorted(kept.items(), key=lambda kv: kv[0].encode())
            if not (v is None or v == [] or v == {} or (isinstance(v, str) and not v.strip()))
        }
    if isinstance(value, list):
        return [_reference_canonical(v) for v in value]
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _random_json(rng: random.Random, depth: int = 0) -> object:
    kind = rng.choice(["obj", "obj", "list", "int", "float", "str", "bool", "null", "empty"])
    if depth > 3:
        kind = rng.choice(["int", "str", "float"])
    if kind == "obj":
        return {
            rng.choice(["a", "b", "Z", "é", "k k", 'x"q', "10", "2"]): _random_json(rng, depth + 1)
            for _ in range(rng.randint(0, 4))
        }
    if kind == "list":
        return [_random_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        "int": rng.randint(-1000, 1000),
        "float": rng.choice([1.0, 2.5, -0.125, 3.0, 1e3]),
        "str": rng.choice(["x", "é", 'a"b', "tab\tbed", "1.0"]),
        "bool": rng.choice([True, False]),
        "null": None,
        "empty": rng.choice(["", "  "]),
    }[kind]


def _spell(value: object, rng: random.Random) -> str:
    """One of many JSON spellings of ``value``: key order, spacing, escapes, number forms."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        sep = rng.choice([",", " , ", ",\n "])
        return (
            "{"
            + sep.join(
                f"{json.dumps(k, ensure_ascii=rng.random() < 0.5)}"
                f"{rng.choice([':', ' : '])}{_spell(v, rng)}"
                for k, v in items
            )
            + "}"
        )
    if isinstance(value, list):
        return "[" + rng.choice([",", ", "]).join(_spell(v, rng) for v in value) + "]"
    if isinstance(value, float) and value.is_integer():
        return rng.choice([f"{value:.1f}", f"{value:.0e}".replace("e+0", "e"), f"{value:.3f}"])
    if isinstance(value, bool) or value is None or isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, ensure_ascii=rng.random() < 0.5)


def test_canonical_json_follows_the_rules_for_any_spelling(tmp_path: Path) -> None:
    rng = random.Random(11)
    docs = [{"root": _random_json(rng), "n": i} for i in range(150)]
    folder = tmp_path / "in"
    folder.mkdir()
    with (folder / "attrs.jsonl").open("w") as out:
        for i, doc in enumerate(docs):
            for copy in range(2):  # the same document spelled twice, as two products
                out.write(json.dumps({
                    "id": 2 * i + copy + 1, "brand_code": "b", "sku": f"s{i}-{copy}",
                    "src_updated_at": "2026-01-01T00:00:00Z", "attributes": _spell(doc, rng),
                }) + "\n")  # fmt: skip
    result = sync(folder, tmp_path)
    assert result.error is None and result.total("rejected") == 0
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    stored = dict(con.execute("select sku, attributes::varchar from products.products").fetchall())
    versions = dict(con.execute("select sku, data_version from products.products").fetchall())
    for i, doc in enumerate(docs):
        expected = json.dumps(_reference_canonical(doc), separators=(",", ":"), ensure_ascii=False)
        assert stored[f"s{i}-0"] == stored[f"s{i}-1"] == expected
        # same meaning, different sku: the record differs, so data_version must differ
        assert versions[f"s{i}-0"] != versions[f"s{i}-1"]


def test_bad_export_files_are_set_aside_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    generate_products_export(folder, rows=50, seed=8)
    (folder / "binary.csv").write_bytes(b"\x00\x01\x02garbage\xff\xfe")
    (folder / "no_key.csv").write_text("id,name\n1,x\n")
    result = sync(folder, tmp_path)
    by_name = {Path(f.path).name: f for f in result.files}
    assert by_name["products_000.csv"].status == "loaded"
    assert by_name["no_key.csv"].status == "rejected"
    assert "missing required column(s): brand_code, sku, src_updated_at" in str(
        by_name["no_key.csv"].reason
    )
    assert by_name["binary.csv"].status == "rejected" and by_name["binary.csv"].reason
    assert result.error is None and result.total("rows") == 50


@pytest.mark.shared_data
def test_the_jaffle_shop_catalogue_mapped_to_the_staging_shape(tmp_path: Path) -> None:
    source = require_shared(SHARED / "jaffle-shop-products" / "raw_products.csv")
    folder = tmp_path / "in"
    folder.mkdir()
    con = duckdb.connect()
    con.execute(
        f"""copy (
            select row_number() over () as id, 'JAFFLE' as brand_code, sku, name,
                price / 100 as price, 'USD' as currency,
                json_object('type', type, 'description', description)::varchar as attributes,
                '2026-01-01T00:00:00Z' as src_updated_at
            from read_csv('{source}')
        ) to '{folder / "products.csv"}' (header true)"""
    )
    expected = con.execute(f"select count(distinct sku) from read_csv('{source}')").fetchall()
    result = sync(folder, tmp_path, limit=4)
    assert result.error is None and result.total("rejected") == 0
    products = state(tmp_path / "w.duckdb")["products"]
    assert len(products) == expected[0][0]
    assert all(p[0] == "JAFFLE" and p[4] == "USD" for p in products)
