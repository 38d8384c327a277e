"""Publishing: the dataset read through its manifest, reruns, late files, failures, the lock."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest
from filelock import FileLock

from batch_processor.checksums import sha256_file
from batch_processor.cli import main
from batch_processor.config import load_telemetry_config
from batch_processor.errors import RunFailedError
from batch_processor.exit_codes import ExitCode
from batch_processor.manifest_common import checksum_ok
from batch_processor.reader import current_manifest, read_dataset, read_dataset_arrow
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import run_telemetry
from batch_processor.telemetry.verify import verify_output

pytestmark = pytest.mark.slow


def rows_of(output: Path) -> list[tuple]:
    relation = read_dataset(output)
    return sorted(relation.fetchall(), key=str)


def run(input_dir: Path, output: Path, **overrides) -> object:
    config = load_telemetry_config(**overrides)
    return run_telemetry(config, input_dir, output)


@pytest.fixture(scope="module")
def published(tmp_path_factory, generated) -> Path:
    """One committed batch with a small max_rows_per_file, so partitions hold several files."""
    output = tmp_path_factory.mktemp("published") / "out"
    result = run(generated.out_dir, output, max_rows_per_file=200)
    assert result.commit is not None
    return output


def test_manifest_matches_the_files_and_a_recount(published, generated):
    manifest = current_manifest(published)
    data = published / "data"
    assert checksum_ok(manifest)
    assert manifest["batch_id"] == manifest["dbt"]["invocation_id"]
    listed = {f["path"] for f in manifest["dataset_files"]}
    on_disk = {str(p.relative_to(data)) for p in data.rglob("*.parquet")}
    assert listed == on_disk, "every Parquet file is in the manifest and every listed file exists"
    per_partition: dict[tuple, int] = {}
    for entry in manifest["dataset_files"]:
        path = data / entry["path"]
        assert sha256_file(path) == entry["sha256"]
        assert path.stat().st_size == entry["bytes"]
        assert pq.ParquetFile(path).metadata.num_rows == entry["rows"] <= 200
        site, year, month = (p.name for p in (path.parents[2], path.parents[1], path.parent))
        assert site.startswith("site_id=") and year.startswith("year=")
        assert len(month) == len("month=06") and month.startswith("month=")  # zero-padded
        key = tuple(entry["partition"].values())
        per_partition[key] = per_partition.get(key, 0) + entry["rows"]
    # no small-file explosion: each partition holds exactly ceil(rows / max) files
    files_per_partition: dict[tuple, int] = {}
    for entry in manifest["dataset_files"]:
        key = tuple(entry["partition"].values())
        files_per_partition[key] = files_per_partition.get(key, 0) + 1
    for key, rows in per_partition.items():
        assert files_per_partition[key] == math.ceil(rows / 200), key
    con = duckdb.connect()
    relation = read_dataset(published, connection=con)
    total = relation.aggregate("count(*)").fetchall()[0][0]
    assert total == manifest["statistics"]["total_rows"] == sum(per_partition.values())
    flags = dict(
        con.sql(
            "select f, count(*) from relation, unnest(quality_flags) as t(f) group by f"
        ).fetchall()
    )
    assert flags == manifest["statistics"]["quality_flags_distribution"]
    nodes = {n["unique_id"]: n for n in manifest["dbt"]["nodes"]}
    readings = nodes["model.batch_processor.fct_telemetry_readings"]
    assert readings["status"] == "success" and readings["rows"] == total
    assert manifest["schema"]["timestamp"] == "INT64 TIMESTAMP(NANOS, UTC)"
    assert manifest["schema"]["quality_flags"] == "LIST<STRING>"
    assert manifest["schema"]["chw_supply_temp_c"] == "DOUBLE"
    assert len(manifest["input_files"]) == generated.files
    assert all(f["sha256"] and f["status"] for f in manifest["input_files"])


def test_three_readers_see_lists_of_strings(published):
    files = [published / "data" / f["path"] for f in current_manifest(published)["dataset_files"]]
    arrow = read_dataset_arrow(published).to_table()
    assert str(arrow.schema.field("quality_flags").type) == "list<element: string>"
    assert str(arrow.schema.field("timestamp").type) == "timestamp[ns, tz=UTC]"
    frame = pl.scan_parquet(
        [str(f) for f in files],
        hive_partitioning=True,
        hive_schema={"site_id": pl.String, "year": pl.Int32, "month": pl.Int32},
    ).collect()
    assert frame.schema["quality_flags"] == pl.List(pl.String)
    assert frame["quality_flags"].null_count() == 0
    duck_rows = read_dataset(published).aggregate("count(*)").fetchall()[0][0]
    assert frame.height == arrow.num_rows == duck_rows
    assert set(frame["site_id"].unique()) == set(arrow.column("site_id").to_pylist())


def test_same_input_twice_same_rows_no_duplicates(tmp_path, generated):
    output = tmp_path / "out"
    run(generated.out_dir, output)
    first = rows_of(output)
    run(generated.out_dir, output)
    assert rows_of(output) == first
    dupes = read_dataset(output).aggregate("site_id, timestamp, count(*) as n").filter("n > 1")
    assert dupes.fetchall() == []
    assert verify_output(output).ok


def test_late_overlapping_file_merges_and_leaves_other_partitions_alone(tmp_path):
    first = generate_demo_data(tmp_path / "a", sites=2, days=1, seed=4, malformed_files=False)
    output = tmp_path / "out"
    run(first.out_dir, output)
    before = current_manifest(output)
    untouched = {
        f["path"] for f in before["dataset_files"] if f["partition"]["site_id"] != "CGMH-TY"
    }
    # a late re-delivery of one CGMH-TY file with a corrected value, newer than the original
    late_dir = tmp_path / "late" / "CGMH-TY"
    late_dir.mkdir(parents=True)
    original = sorted((first.out_dir / "CGMH-TY").glob("CGMH-TY_*.csv"))[1]
    lines = original.read_text().splitlines()
    header = lines[0].split(",")
    oat = header.index("OAT_C")
    cells = lines[10].split(",")
    cells[oat] = "31.5"
    lines[10] = ",".join(cells)
    late = late_dir / ("late_" + original.name)
    late.write_text("\n".join(lines) + "\n")
    os.utime(late, (time.time() + 60, time.time() + 60))
    run(tmp_path / "late", output)
    after = current_manifest(output)
    assert untouched <= {f["path"] for f in after["dataset_files"]}
    dupes = read_dataset(output).aggregate("site_id, timestamp, count(*) as n").filter("n > 1")
    assert dupes.fetchall() == []
    assert after["statistics"]["total_rows"] == before["statistics"]["total_rows"]
    local = datetime.fromisoformat(cells[0]).replace(tzinfo=None)
    bucket = duckdb.sql(
        f"select time_bucket(interval 5 minute, timezone('Asia/Taipei', timestamp '{local}'))"
    ).fetchall()[0][0]
    mean = (
        read_dataset(output)
        .filter(f"site_id = 'CGMH-TY' and timestamp = '{bucket.isoformat()}'")
        .project("oat_c")
        .fetchall()[0][0]
    )
    original_mean = [
        float(line.split(",")[oat])
        for line in original.read_text().splitlines()[1:]
        if line.split(",")[0] != cells[0]
        and duckdb.sql(
            "select time_bucket(interval 5 minute, timezone('Asia/Taipei', "
            f"timestamp '{line.split(',')[0]}'))"
        ).fetchall()[0][0]
        == bucket
    ]
    expected = (sum(original_mean) + 31.5) / (len(original_mean) + 1)
    assert mean == pytest.approx(expected)


def test_a_failing_error_test_commits_nothing_and_names_the_test(tmp_path, generated):
    output = tmp_path / "out"
    run(generated.out_dir, output)
    before = (output / "manifests" / "current.json").read_bytes()
    rows_before = rows_of(output)
    future = generate_demo_data(
        tmp_path / "future",
        sites=1,
        days=1,
        seed=9,
        malformed_files=False,
        start=datetime(2099, 1, 1, tzinfo=UTC),
    )
    with pytest.raises(RunFailedError, match="not_in_future") as failure:
        run(future.out_dir, output)
    assert (output / "manifests" / "current.json").read_bytes() == before
    assert rows_of(output) == rows_before
    assert not any((output / ".staging").iterdir())
    report_path = Path(str(failure.value).rsplit("(report: ", 1)[1].rstrip(")"))
    report = json.loads(report_path.read_text())
    assert report["status"] == "failed"
    failing = {n["unique_id"]: n for n in report["failure"]["failing_nodes"]}
    assert any("not_in_future" in name and n["failures"] > 0 for name, n in failing.items())
    # the next good batch still commits, and the warehouse forgot the failed one
    run(generated.out_dir, output)
    assert verify_output(output).ok
    assert rows_of(output) == rows_before


def test_a_second_writer_gets_a_clear_error(tmp_path, generated, capfd):
    output = tmp_path / "out"
    output.mkdir()
    with FileLock(str(output / ".lock")):
        code = main(
            ["telemetry", "run", "--input", str(generated.out_dir), "--output", str(output)]
        )
    assert code == ExitCode.FAILED
    assert "is being written by" in capfd.readouterr().err


def test_dry_run_changes_nothing(tmp_path, generated):
    output = tmp_path / "out"
    config = load_telemetry_config()
    result = run_telemetry(config, generated.out_dir, output, dry_run=True)
    assert result.commit is None and not (output / "manifests" / "current.json").exists()
    con = duckdb.connect(str(output / "warehouse.duckdb"), read_only=True)
    history = con.execute(
        "select count(*) from telemetry_intermediate.int_telemetry__readings_history"
    ).fetchall()[0][0]
    con.close()
    assert history == 0
    assert list((output / "data").rglob("*.parquet")) == []


def test_verify_finds_tampering_and_orphans(tmp_path, published, capsys):
    output = tmp_path / "copy"
    shutil.copytree(published, output)
    assert main(["verify", "--output", str(output)]) == 0
    victim = output / "data" / current_manifest(output)["dataset_files"][0]["path"]
    victim.write_bytes(victim.read_bytes()[:-10] + b"0123456789")
    (output / "data" / "stray.parquet").write_bytes(b"x")
    assert main(["verify", "--output", str(output)]) == ExitCode.FAILED
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "orphan (not in the current manifest): stray.parquet" in out


def test_partition_values_are_decoded():
    from pathlib import PurePosixPath

    from batch_processor.telemetry.dataset import partition_of

    path = PurePosixPath("site_id=ESB%20CH1/year=2026/month=06/part.parquet")
    assert partition_of(path) == {"site_id": "ESB CH1", "year": "2026", "month": "06"}


def test_a_warehouse_that_does_not_know_the_dataset_is_refused(tmp_path, generated):
    output = tmp_path / "out"
    run(generated.out_dir, output)
    manifests = sorted(p.name for p in (output / "manifests").iterdir())
    (output / "warehouse.duckdb").unlink()
    with pytest.raises(RunFailedError, match="does not hold the history"):
        run(generated.out_dir, output)
    assert sorted(p.name for p in (output / "manifests").iterdir()) == manifests
    assert verify_output(output).ok


def test_two_batches_across_a_month_edge_equal_one_batch(tmp_path):
    """Splitting the same files into two batches at a month boundary gives exactly the rows
    of one batch: the month before is rebuilt when the next one's data reaches its edge."""
    both = generate_demo_data(
        tmp_path / "both",
        sites=2,
        days=2,
        seed=13,
        malformed_files=False,
        start=datetime(2025, 5, 31, tzinfo=UTC),
    )
    first, second = tmp_path / "may", tmp_path / "june"
    for source in both.out_dir.rglob("*.csv"):
        if source.name.startswith("_"):
            continue
        target = (first if "20250531" in source.name else second) / source.relative_to(both.out_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    one = tmp_path / "one"
    run(both.out_dir, one)
    split = tmp_path / "split"
    run(first, split)
    run(second, split)
    assert rows_of(split) == rows_of(one)
    assert verify_output(split).ok
