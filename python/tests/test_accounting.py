"""Every input line and cell is accounted for: the cell-level merge, conflicts inside a file,
lines lost to quoting errors, mixed line endings, gaps, corrections that arrive later with an
older mtime, and the per-file ledger that must balance."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from batch_processor.config import load_telemetry_config
from batch_processor.exit_codes import ExitCode
from batch_processor.reader import read_dataset
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.loader import TelemetryLoader
from batch_processor.telemetry.pipeline import TelemetryRunResult, run_telemetry

from .conftest import EDGE_CASES, require_shared

pytestmark = pytest.mark.slow

SITE = "CGMH-TY"  # metric export, 1-minute raw interval, Asia/Taipei wall time
TAIPEI = timedelta(hours=8)
WIDE_HEADER = ["timestamp", "CH1_KW", "CH1_CHWS_TEMP_C", "CH1_CHWR_TEMP_C", "CH1_STATUS"]


def write_csv(path: Path, header: list[str], rows: list[list[object]], *, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "\n".join(",".join(str(c) for c in line) for line in [header, *rows]) + "\n",
        encoding="utf-8",
    )
    os.utime(path, (mtime, mtime))
    return path


def minutes(start: datetime, count: int) -> list[str]:
    return [f"{start + timedelta(minutes=i):%Y-%m-%d %H:%M:%S}" for i in range(count)]


def wide_rows(start: datetime, count: int, kw: float = 120.0) -> list[list[object]]:
    """Rows of WIDE_HEADER, one a minute from ``start`` (local wall time)."""
    return [
        [ts, kw + i % 7, 7.0 + (i % 5) / 10, 12.0 + (i % 3) / 10, 1]
        for i, ts in enumerate(minutes(start, count))
    ]


def day_file(folder: Path, name: str, start: datetime, count: int, **options: Any) -> Path:
    kw = options.pop("kw", 120.0)
    mtime = options.pop("mtime", time.time())
    return write_csv(folder / SITE / name, WIDE_HEADER, wide_rows(start, count, kw), mtime=mtime)


def run(input_dir: Path, output: Path, **overrides: Any) -> TelemetryRunResult:
    return run_telemetry(load_telemetry_config(**overrides), input_dir, output)


def report_of(result: TelemetryRunResult) -> dict[str, Any]:
    assert result.report_path is not None
    report: dict[str, Any] = json.loads(result.report_path.read_text())
    return report


def dataset(output: Path, columns: str) -> list[tuple[Any, ...]]:
    return read_dataset(output).order("site_id, timestamp").project(columns).fetchall()


def assert_balanced(report: dict[str, Any]) -> None:
    ledger = report["ledger"]
    assert ledger["totals"]["balanced"], ledger["totals"]["unbalanced_files"]
    for entry in ledger["files"]:
        lines, cells = entry["lines"], entry["cells"]
        assert lines["physical_lines"] == sum(v for k, v in lines.items() if k != "physical_lines")
        assert cells["total"] == sum(v for k, v in cells.items() if k != "total"), entry


def test_a_narrow_file_never_erases_a_wide_files_channels(tmp_path: Path) -> None:
    """The chiller's wide export and, newer, a tower-fan export for the same times: every
    wide channel survives, and the fan values come from the fan file."""
    generated = generate_demo_data(
        tmp_path / "gen", sites=1, days=1, seed=5, malformed_files=False, files_per_day=1
    )
    wide = next((generated.out_dir / SITE).glob("*.csv"))
    alone, both = tmp_path / "alone", tmp_path / "both"
    shutil.copytree(generated.out_dir, alone)
    shutil.copytree(generated.out_dir, both)
    # the narrow export: every timestamp of the wide file, tower fan columns only, newer mtime
    con = duckdb.connect()
    con.execute(
        "copy (select timestamp, 9.5 as CT1_FAN_KW, 80.0 as CT1_FAN_SPEED_PCT "
        "from read_csv($p, all_varchar = true)) to $o (header)",
        {"p": str(wide), "o": str(both / SITE / "tower_fans.csv")},
    )
    later = wide.stat().st_mtime + 3600
    os.utime(both / SITE / "tower_fans.csv", (later, later))

    run(alone, tmp_path / "out_alone", warehouse_path=tmp_path / "a.duckdb")
    result = run(both, tmp_path / "out_both", warehouse_path=tmp_path / "b.duckdb")

    channels = "timestamp, chiller_power_kw, chw_supply_temp_c, chw_flow_m3_s, cdw_return_temp_c"
    expected = dataset(tmp_path / "out_alone", channels)
    assert sum(1 for row in expected if row[1] is not None) > 200
    assert dataset(tmp_path / "out_both", channels) == expected
    fans = dataset(tmp_path / "out_both", "tower_fan_power_kw, tower_fan_speed_frac")
    assert {row for row in fans if row[0] is not None} == {(9.5, 0.8)}
    report = report_of(result)
    assert_balanced(report)
    (fan_ledger,) = [
        f for f in report["ledger"]["files"] if f["relative_path"].endswith("fans.csv")
    ]
    assert fan_ledger["cells"]["superseded"] == 0, "the newer fan file wins its own cells"
    lost = {(s["losing_file"], s["winning_file"]): s for s in report["superseded_cells"]}
    assert lost[(str(both / SITE / wide.name), str(both / SITE / "tower_fans.csv"))]["cells"] > 0


def test_conflicting_duplicates_in_a_file_are_reported_not_averaged(tmp_path: Path) -> None:
    start = datetime(2025, 6, 1, 8, 0)  # local wall time (UTC+8)
    rows = wide_rows(start, 60)
    conflict = list(rows[10])
    conflict[1] = 100.0
    rows[10][1] = 0.0
    identical = list(rows[20])
    out_of_order = rows.pop(30)
    # a second reading 20 s into minute 40 lands on the same raw sample time: a distinct
    # reading (finer than the seeded interval), averaged, not a conflict
    finer = ["2025-06-01 08:40:20", 300.0, 7.0, 12.0, 1]
    body = [*rows[:11], conflict, *rows[11:21], identical, *rows[21:40], finer, *rows[40:]]
    body.append(out_of_order)
    path = write_csv(tmp_path / "in" / SITE / "day.csv", WIDE_HEADER, body, mtime=time.time() - 60)

    result = run(tmp_path / "in", tmp_path / "out", warehouse_path=tmp_path / "wh.duckdb")

    assert result.exit_code == ExitCode.COMPLETED_WITH_REJECTS, "a discarded value is not exit 0"
    report = report_of(result)
    assert_balanced(report)
    conflicts = report["within_file_conflicts"]
    assert conflicts["count"] == 1
    (only,) = conflicts["first"]
    assert only["file"] == str(path)
    assert only["point_id"] == "chiller_power"
    assert only["lines"] == [12, 13] and only["values"] == ["0.0", "100.0"]
    assert only["kept_line"] == 13 and only["kept_value"] == "100.0"
    (ledger,) = report["ledger"]["files"]
    assert ledger["cells"]["conflict_lost"] == 1
    # the identical row's four cells, and the three cells the conflicting row repeats unchanged
    assert ledger["cells"]["duplicate_in_file"] == 4 + 3
    assert ledger["rows"]["out_of_order_rows"] == 1
    assert ledger["rows"]["repeated_timestamp_rows"] == 2
    bucket = (start - TAIPEI).replace(minute=10)
    ((kw, conflicting, count),) = (
        read_dataset(tmp_path / "out")
        .filter(f"timestamp = '{bucket:%Y-%m-%d %H:%M}:00+00'")
        .project("chiller_power_kw, conflicting_cells, sample_count")
        .fetchall()
    )
    # bucket 08:10-08:15 holds minutes 10..14: 100 (the last line) + 121..124 (never 50)
    assert kw == pytest.approx((100.0 + sum(120.0 + i % 7 for i in range(11, 15))) / 5)
    assert (conflicting, count) == (1, 5)
    ((finer_kw, finer_count),) = (
        read_dataset(tmp_path / "out")
        .filter(f"timestamp = '{bucket:%Y-%m-%d %H}:40:00+00'")
        .project("chiller_power_kw, sample_count")
        .fetchall()
    )
    assert finer_count == 6
    assert finer_kw == pytest.approx((300.0 + sum(120.0 + i % 7 for i in range(40, 45))) / 6)


def test_unterminated_quote_past_the_probe_counts_every_lost_line(tmp_path: Path) -> None:
    start = datetime(2025, 6, 1, 0, 0)
    rows = wide_rows(start, 3000)
    rows[2500][1] = '"120.5'  # line 2502: the quote never closes and swallows the rest
    path = write_csv(tmp_path / "in" / SITE / "quote.csv", WIDE_HEADER, rows, mtime=time.time())
    assert path.read_bytes().index(b'"') > 64 * 1024, "past the probe's first 64 KiB"
    for ratio, status in ((0.5, "partial"), (0.1, "rejected")):
        config = load_telemetry_config(
            warehouse_path=tmp_path / f"wh{ratio}.duckdb", max_reject_ratio=ratio
        )
        summary = TelemetryLoader(config, "b1").load(tmp_path / "in")
        con = duckdb.connect(str(config.warehouse), read_only=True)
        found = con.execute(
            "select status, reason, rows_read, rows_rejected, lines_swallowed, physical_lines "
            "from telemetry_raw.files"
        ).fetchone()
        con.close()
        assert found is not None
        got_status, reason, read, rejected, swallowed, physical = found
        assert (read, rejected, swallowed, physical) == (2500, 1, 499, 3001)
        assert got_status == status, reason
        expected = "499 line(s) swallowed" if status == "partial" else "500 of 3000 data lines lost"
        assert expected in reason
        assert summary.lines_swallowed == 499


def test_a_file_whose_line_endings_change_half_way_loads_every_row(tmp_path: Path) -> None:
    start = datetime(2025, 6, 1, 0, 0)
    lines = [",".join(str(c) for c in r) for r in [WIDE_HEADER, *wide_rows(start, 600)]]
    data = "\n".join(lines[:300]) + "\n" + "\r\n".join(lines[300:]) + "\r\n"
    path = tmp_path / "in" / SITE / "mixed.csv"
    path.parent.mkdir(parents=True)
    path.write_bytes(data.encode())
    before = path.read_bytes()

    result = run(tmp_path / "in", tmp_path / "out", warehouse_path=tmp_path / "wh.duckdb")

    assert result.exit_code == ExitCode.OK
    assert path.read_bytes() == before, "the input file is never modified"
    (ledger,) = report_of(result)["ledger"]["files"]
    assert ledger["status"] == "loaded"
    assert ledger["lines"]["rows_read"] == 600 and ledger["lines"]["lines_swallowed"] == 0
    assert ledger["cells"]["kept"] == 600 * 4
    values = dataset(tmp_path / "out", "chiller_status")
    assert all(v[0] is not None for v in values), "no value keeps a stray carriage return"


def test_a_long_hole_is_in_the_gaps_model_and_the_report(tmp_path: Path) -> None:
    first = datetime(2025, 6, 1, 0, 0)
    day_file(tmp_path / "in", "a.csv", first, 120)
    after = first + timedelta(days=3, hours=2)
    day_file(tmp_path / "in", "b.csv", after, 120)

    result = run(tmp_path / "in", tmp_path / "out", warehouse_path=tmp_path / "wh.duckdb")

    gaps = report_of(result)["gaps"]
    long_gaps = [g for g in gaps if not g["published_as_empty_rows"]]
    assert len(long_gaps) == 1, gaps
    (gap,) = long_gaps
    assert gap["site_id"] == SITE
    assert gap["start"] == (first - TAIPEI + timedelta(hours=2)).isoformat() + "+00:00"
    assert gap["end"] == (after - TAIPEI).isoformat() + "+00:00"
    assert gap["duration_hours"] == 72
    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    found = con.execute(
        "select count(*) from telemetry.fct_telemetry_gaps where not published_as_empty_rows"
    ).fetchone()
    assert found == (1,)
    con.close()


def test_a_correction_with_an_older_mtime_in_a_later_batch_wins_and_both_count(
    tmp_path: Path,
) -> None:
    """Batch 1 delivers a day; batch 2 re-delivers it corrected, copied with `cp -p` so its
    mtime is older. The correction wins, the report of batch 2 counts the cells it replaced
    for both files, and the seed's manifest reader reads the whole dataset."""
    start = datetime(2025, 6, 2, 0, 0)
    original = day_file(tmp_path / "in1", "day.csv", start, 120)
    corrected = day_file(
        tmp_path / "in2", "day.csv", start, 120, kw=200.0, mtime=time.time() - 86400
    )
    day_file(tmp_path / "in2", "july.csv", datetime(2025, 7, 3), 60)
    output = tmp_path / "out"
    first = run(tmp_path / "in1", output, warehouse_path=tmp_path / "wh.duckdb")
    second = run(tmp_path / "in2", output, warehouse_path=tmp_path / "wh.duckdb")

    power = [row[0] for row in dataset(output, "chiller_power_kw") if row[0] is not None]
    assert len(power) == 24 + 12
    assert min(power[:24]) >= 200.0, "the correction wins although its mtime is older"
    pairs = report_of(second)["superseded_cells"]
    (pair,) = pairs
    assert pair["losing_file"] == str(original) and pair["winning_file"] == str(corrected)
    assert pair["losing_batch_id"] == first.batch_id and pair["winning_batch_id"] == second.batch_id
    assert pair["cells"] == 120 * 4 and pair["changed_cells"] == 120
    assert report_of(second)["duplicates_dropped"] == 120 * 4
    assert report_of(first)["duplicates_dropped"] == 0

    # seed 001 §3.2's reader, adapted only for paths ("processed" is our "data")
    manifest_path = output / "manifests" / "current.json"
    manifest = json.loads(manifest_path.read_text())
    base_dir = manifest_path.parent.parent / "data"
    files = [base_dir / f for f in manifest["output_files"]]
    import polars as pl

    frame = pl.scan_parquet(files).collect()
    total = read_dataset(output).count("*").fetchall()[0][0]
    assert frame.height == manifest["statistics"]["total_rows"] == total
    assert frame.schema["quality_flags"] == pl.List(pl.Utf8)
    assert manifest["site_id"] == SITE and manifest["input_files_count"] == 2
    assert {f.split("/")[1] for f in manifest["output_files"]} == {"year=2025"}
    assert len({f.split("/")[2] for f in manifest["output_files"]}) == 2, "June and July"
    for file in files:
        assert str(pq.read_schema(file).field("timestamp").type) == "timestamp[ns, tz=UTC]"


def test_max_time_span_per_file_cuts_files_by_time(tmp_path: Path) -> None:
    start = datetime(2025, 6, 1, 0, 0)
    day_file(tmp_path / "in", "a.csv", start, 60 * 30)
    result = run(
        tmp_path / "in",
        tmp_path / "out",
        warehouse_path=tmp_path / "wh.duckdb",
        max_time_span_per_file="6h",
        max_rows_per_file=50,
    )
    assert result.commit is not None
    files = result.commit.manifest["written_files"]
    spans = [
        datetime.fromisoformat(f["max_timestamp"]) - datetime.fromisoformat(f["min_timestamp"])
        for f in files
    ]
    assert max(spans) < timedelta(hours=6)
    assert all(f["rows"] <= 50 for f in files)
    # 30 h from 16:00 UTC: 6-hour slots 12-18 (2 h), 18-24, 0-6, 6-12, 12-18, 18-24 (4 h)
    slots = {datetime.fromisoformat(f["min_timestamp"]).replace(minute=0).hour // 6 for f in files}
    assert len(files) == sum(-(-rows // 50) for rows in (24, 72, 72, 72, 72, 48))
    assert slots == {0, 1, 2, 3}


@pytest.mark.shared_data
def test_the_ledger_balances_for_the_demo_mixed_with_the_malformed_corpus(tmp_path: Path) -> None:
    corpus = require_shared(EDGE_CASES)
    generated = generate_demo_data(tmp_path / "gen", sites=2, days=1, seed=7)
    batch = tmp_path / "in"
    shutil.copytree(generated.out_dir, batch)
    for source in corpus.rglob("*.csv"):
        link = batch / SITE / "edge" / source.relative_to(corpus)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    result = run(
        batch, tmp_path / "out", warehouse_path=tmp_path / "wh.duckdb", link_roots=[corpus]
    )
    report = report_of(result)
    assert_balanced(report)
    files = report["ledger"]["files"]
    assert len(files) == report["files"]["total"] > len(list(corpus.rglob("*.csv")))
    by_status = {f["status"] for f in files}
    assert {"loaded", "rejected"} <= by_status
    manifest = result.commit.manifest if result.commit else {}
    assert manifest["ledger"]["balanced"] and manifest["input_files_count"] == len(files)


def load_raw_files(tmp_path: Path, name: str, data: bytes) -> dict[str, Any]:
    """Load one file with the loader alone and return its telemetry_raw.files row."""
    path = tmp_path / "in" / SITE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    config = load_telemetry_config(warehouse_path=tmp_path / f"{name}.duckdb")
    TelemetryLoader(config, "b1").load(tmp_path / "in")
    con = duckdb.connect(str(config.warehouse), read_only=True)
    cursor = con.execute(
        "select * from telemetry_raw.files where relative_path = $p", {"p": f"{SITE}/{name}"}
    )
    names = [d[0] for d in cursor.description or []]
    row = dict(zip(names, cursor.fetchone() or (), strict=True))
    rejects = con.execute("select line, error_type from telemetry_raw.rejected_rows").fetchall()
    con.close()
    path.unlink()
    row["rejects"] = rejects
    return row


def line_ledger_balances(row: dict[str, Any]) -> bool:
    parts = ("header_line", "blank_data_lines", "rows_read", "continuation_lines")
    return (
        row["physical_lines"]
        == sum(row[k] for k in parts) + row["rows_rejected"] + row["lines_swallowed"]
        and row["lines_swallowed"] >= 0
    )


def test_a_quote_closed_rows_later_sets_the_rows_between_aside(tmp_path: Path) -> None:
    """The stray quote opens in row 10 and closes in row 20 of the same column: DuckDB reads
    one row whose cell holds ten rows. That row is rejected and its lines are swallowed."""
    lines = [",".join(WIDE_HEADER)] + [
        ",".join(str(c) for c in r) for r in wide_rows(datetime(2025, 6, 1), 30)
    ]
    lines[10] = lines[10].replace(",", ',"', 1)  # row 10 (line 11): a quote opens
    parts = lines[20].split(",")
    lines[20] = ",".join([parts[0], parts[1] + '"', *parts[2:]])  # row 20 (line 21): closes
    row = load_raw_files(tmp_path, "stray.csv", ("\n".join(lines) + "\n").encode())
    assert row["status"] == "partial", row["reason"]
    assert (row["rows_read"], row["rows_rejected"], row["lines_swallowed"]) == (19, 1, 10)
    assert row["rejects"] == [(11, "QUOTED ROWS")]
    assert line_ledger_balances(row)


@pytest.mark.parametrize(
    ("data", "blank", "continuation"),
    [
        # a note with an empty line inside its quotes (the scan counts the empty line as blank)
        (
            b"timestamp,CH1_KW,OAT_C\n2025-06-01 10:00:00,100,30\n"
            b'2025-06-01 10:01:00,101,"30.1\n\nsensor fault"\n2025-06-01 10:02:00,102,31\n',
            1,
            1,
        ),
        # an old Mac export: lone CR endings and an empty line
        (b"timestamp,CH1_KW\r2025-06-01 10:00:00,1\r\r2025-06-01 10:01:00,2\r", 1, 0),
    ],
)
def test_blank_lines_are_counted_once(
    tmp_path: Path, data: bytes, blank: int, continuation: int
) -> None:
    row = load_raw_files(tmp_path, "notes.csv", data)
    assert row["status"] == "loaded", row["reason"]
    assert (row["blank_data_lines"], row["continuation_lines"], row["lines_swallowed"]) == (
        blank,
        continuation,
        0,
    )
    assert line_ledger_balances(row)


def test_unparseable_timestamps_and_invalid_corrections_are_not_silent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from another folder with relative paths: a file whose timestamps Excel rewrote
    makes the run exit 3 and is named; a newer delivery's out-of-range value does not erase
    the older file's measurement."""
    from batch_processor.cli import main

    start = datetime(2025, 6, 1, 0, 0)
    day_file(tmp_path / "in", "a.csv", start, 60, mtime=time.time() - 600)
    bad = [
        [f"{start + timedelta(minutes=5 + i):%m/%d/%Y %H:%M}", 999.0, 7.0, 12.0, 1]
        for i in range(3)
    ]
    write_csv(tmp_path / "in" / SITE / "excel.csv", WIDE_HEADER, bad, mtime=time.time())
    # newer, for minute 5 only: CH1_KW far out of range (rated 350 kW)
    newer = [[f"{start + timedelta(minutes=5):%Y-%m-%d %H:%M:%S}", 7770.0, 7.0, 12.0, 1]]
    write_csv(tmp_path / "in" / SITE / "newer.csv", WIDE_HEADER, newer, mtime=time.time())
    monkeypatch.chdir(tmp_path)
    code = main(["telemetry", "run", "--input", "in", "--output", "out"])
    assert code == ExitCode.COMPLETED_WITH_REJECTS
    (report_path,) = (tmp_path / "out" / "reports").glob("*.json")
    report = json.loads(report_path.read_text())
    assert_balanced(report)
    excel = next(f for f in report["ledger"]["files"] if f["relative_path"].endswith("excel.csv"))
    assert excel["rows"]["bad_timestamp_rows"] == 3 and excel["cells"]["in_untimed_rows"] == 12
    newer_ledger = next(
        f for f in report["ledger"]["files"] if f["relative_path"].endswith("newer.csv")
    )
    assert newer_ledger["cells"]["superseded"] == 1, "the invalid value lost to the valid one"
    first_bucket = dataset(tmp_path / "out", "chiller_power_kw")[0][0]
    assert first_bucket == pytest.approx(sum(120.0 + i % 7 for i in range(5)) / 5)
    assert not (Path(__file__).parents[2] / "out").exists(), "nothing written into the project"


def test_rebuild_all_brings_an_older_dataset_to_the_current_schema(tmp_path: Path) -> None:
    """A warehouse built before a schema change (here: the mart lacks conflicting_cells)
    refuses the next batch with dbt's schema message; --rebuild-all with an empty input
    republishes every partition from the history, which a full refresh never touches."""
    from batch_processor.telemetry.pipeline import BatchFailedError

    output, warehouse = tmp_path / "out", tmp_path / "wh.duckdb"
    day_file(tmp_path / "in1", "june.csv", datetime(2025, 6, 2), 120)
    day_file(tmp_path / "in1", "july.csv", datetime(2025, 7, 2), 60)
    first = run(tmp_path / "in1", output, warehouse_path=warehouse)
    assert first.commit is not None
    before = dataset(output, "timestamp, chiller_power_kw")
    con = duckdb.connect(str(warehouse))
    con.execute("alter table telemetry.fct_telemetry_readings drop column conflicting_cells")
    (history_rows,) = con.execute(
        "select count(*) from telemetry_intermediate.int_telemetry__readings_history"
    ).fetchone() or (0,)
    con.close()

    day_file(tmp_path / "in2", "june_more.csv", datetime(2025, 6, 3), 30)
    with pytest.raises(BatchFailedError, match="fct_telemetry_readings"):
        run(tmp_path / "in2", output, warehouse_path=warehouse)

    (tmp_path / "empty").mkdir()
    rebuilt = run_telemetry(
        load_telemetry_config(warehouse_path=warehouse),
        tmp_path / "empty",
        output,
        rebuild_all=True,
    )
    assert rebuilt.commit is not None
    manifest = rebuilt.commit.manifest
    assert {f["path"] for f in manifest["written_files"]} == set(manifest["output_files"])
    assert not set(manifest["output_files"]) & {
        f["path"] for f in first.commit.manifest["dataset_files"]
    }
    assert dataset(output, "timestamp, chiller_power_kw") == before
    assert dataset(output, "conflicting_cells") == [(0,)] * len(before)
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute(
        "select count(*) from telemetry_intermediate.int_telemetry__readings_history"
    ).fetchone() == (history_rows,), "the history survives the full refresh"
    con.close()


def test_gaps_carry_over_and_a_queued_full_rebuild_republishes_everything(tmp_path: Path) -> None:
    """The manifest lists the gaps of partitions a batch did not touch too; a --rebuild-all
    that was killed after queueing leaves the next plain run to republish every partition;
    verify notices a file whose schema is not the manifest's."""
    from batch_processor.checksums import sha256_file
    from batch_processor.manifest_common import with_checksum
    from batch_processor.telemetry.publisher import queue_full_rebuild
    from batch_processor.telemetry.verify import verify_output

    output, warehouse = tmp_path / "out", tmp_path / "wh.duckdb"
    day_file(tmp_path / "in1", "june_a.csv", datetime(2025, 6, 2), 120)
    day_file(tmp_path / "in1", "june_b.csv", datetime(2025, 6, 6), 120)
    first = run(tmp_path / "in1", output, warehouse_path=warehouse)
    assert first.commit is not None
    june_gaps = [g for g in first.commit.manifest["gaps"] if not g["published_as_empty_rows"]]
    assert len(june_gaps) == 1

    day_file(tmp_path / "in2", "july.csv", datetime(2025, 7, 10), 60)
    second = run(tmp_path / "in2", output, warehouse_path=warehouse)
    assert second.commit is not None
    assert june_gaps[0] in second.commit.manifest["gaps"], "June was not rebuilt: its gap stays"
    assert {f["partition"]["month"] for f in second.commit.manifest["written_files"]} == {"07"}

    queue_full_rebuild(warehouse)  # as a --rebuild-all killed during its build leaves it
    day_file(tmp_path / "in3", "july_more.csv", datetime(2025, 7, 11), 60)
    third = run(tmp_path / "in3", output, warehouse_path=warehouse)
    assert third.commit is not None
    manifest = third.commit.manifest
    assert {f["partition"]["month"] for f in manifest["written_files"]} == {"06", "07"}
    assert set(manifest["output_files"]) == {f["path"] for f in manifest["written_files"]}
    assert verify_output(output).ok

    # a data file rewritten without a column: verify names the schema difference
    victim = output / "data" / manifest["output_files"][0]
    con = duckdb.connect()
    rewritten = tmp_path / "rewritten.parquet"
    con.execute(
        "copy (select * exclude (conflicting_cells) from read_parquet($p)) to $o (format parquet)",
        {"p": str(victim), "o": str(rewritten)},
    )
    con.close()
    shutil.copyfile(rewritten, victim)
    current = output / "manifests" / "current.json"
    body = json.loads(current.read_text())
    for entry in body["dataset_files"]:
        if entry["path"] == manifest["output_files"][0]:
            entry["sha256"], entry["bytes"] = sha256_file(victim), victim.stat().st_size
    body.pop("checksum")
    current.write_text(json.dumps(with_checksum(body)))  # re-sealed: only the schema differs
    problems = verify_output(output).problems
    assert any(p.startswith("schema:") for p in problems), problems
