"""Devices as data: a site with several chillers, pumps and fans is a seed edit, the per-device
flags name the device they are about, the published schema does not depend on the number of
devices, and a history written before devices existed is migrated in place."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from batch_processor.config import load_telemetry_config
from batch_processor.reader import read_dataset
from batch_processor.telemetry.generator import DEFAULT_START, generate_demo_data
from batch_processor.telemetry.pipeline import BatchFailedError, TelemetryRunResult, run_telemetry

pytestmark = pytest.mark.slow

MULTI = "VN-HCM-03"  # seeds only: 2 chillers, 1 + 1 pumps, 4 tower fans, 1-minute data, UTC+7
SINGLE = "CGMH-TY"  # one of each
VN = timedelta(hours=7)
DAY = datetime(2025, 6, 1)  # the generator's first day (local wall time below)


def local_minutes(start: str, count: int) -> set[str]:
    first = datetime.fromisoformat(f"{DAY:%Y-%m-%d} {start}")
    return {f"{first + timedelta(minutes=i):%Y-%m-%d %H:%M:%S}" for i in range(count)}


def edit_cells(folder: Path, times: set[str], column: str, edit: Any) -> int:
    """Rewrite ``column`` at ``times`` in every file of the site (the files overlap)."""
    changed = 0
    for path in sorted(folder.glob("*.csv")):
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        index = rows[0].index(column)
        for row in rows[1:]:
            if row[0] in times:
                row[index] = edit(row[index])
                changed += 1
        with path.open("w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, lineterminator="\n").writerows(rows)
    return changed


def run(input_dir: Path, output: Path, warehouse: Path) -> TelemetryRunResult:
    return run_telemetry(load_telemetry_config(warehouse_path=warehouse), input_dir, output)


def flag_events(warehouse: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select site_id, timestamp, flag, device_id, point_id, channel, rule "
            "from telemetry.fct_telemetry_flag_events order by all"
        ).fetchall()


def utc(local: str) -> datetime:
    return datetime.fromisoformat(f"{DAY:%Y-%m-%d} {local}+00:00") - VN


def test_a_site_with_two_chillers_and_four_fans_gets_every_flag_per_device(
    tmp_path: Path,
) -> None:
    generated = generate_demo_data(
        tmp_path / "input",
        sites=1,
        days=1,
        seed=7,
        malformed_files=False,
        files_per_day=2,
        site_ids=[SINGLE, MULTI],
    )
    folder = generated.out_dir / MULTI
    # faults on single devices, on top of the generator's (day 1: CH1 stuck supply sensor
    # 09:00-11:00, CH2 heat balance 12:00-13:00, fan CT1 power x1.8 14:00-15:00 local):
    # fan CT3's power meter repeats one reading for an hour ...
    frozen = local_minutes("10:00:00", 60)
    held = {"value": ""}

    def hold(value: str) -> str:
        held["value"] = held["value"] or value
        return held["value"]

    assert edit_cells(folder, frozen, "CT3_FAN_KW", hold) >= 60
    # ... fan CT4's power is blank for one bucket (the site total must not drop by a fan) ...
    assert edit_cells(folder, local_minutes("16:20:00", 5), "CT4_FAN_KW", lambda v: "") >= 5
    # ... and chiller CH2's supply temperature jumps 1.5 K for one bucket
    assert (
        edit_cells(
            folder,
            local_minutes("17:30:00", 5),
            "CH2_CHWS_TEMP_C",
            lambda v: f"{float(v) + 1.5:.3f}",
        )
        >= 5
    )

    warehouse = tmp_path / "warehouse.duckdb"
    result = run(generated.out_dir, tmp_path / "out", warehouse)
    report = json.loads(result.report_path.read_text()) if result.report_path else {}
    assert report["ledger"]["totals"]["balanced"]
    events = [e for e in flag_events(warehouse) if e[0] == MULTI]

    def channels(flag: str, rule: str | None = None) -> set[str]:
        return {e[5] for e in events if e[2] == flag and (rule is None or e[6] == rule)}

    assert channels("AFFINITY_VIOLATION") == {"CT1"}, "the one fan whose power is off"
    assert all(e[3] == "CT1" and e[4] is None for e in events if e[2] == "AFFINITY_VIOLATION")
    assert channels("HEAT_IMBALANCE") == {"CH2"}, "the chiller whose condenser reads high"
    assert channels("FROZEN") == {"CH1.chw_supply_temp", "CT3.tower_fan_power"}
    frozen_fan = {e[1] for e in events if e[5] == "CT3.tower_fan_power"}
    assert utc("10:10:00") in frozen_fan and utc("10:50:00") in frozen_fan
    assert channels("OUTLIER", "mad") == {"CH2.chw_supply_temp"}
    assert {e[1] for e in events if e[6] == "mad"} == {utc("17:30:00")}
    assert channels("OUTLIER", "above_range") == {"CH1.chw_supply_temp"}

    # published: the same schema for both sites, every device in device_readings
    files = sorted((tmp_path / "out" / "data").rglob("*.parquet"))
    schemas = {f.parent.parent.parent.name: pq.read_schema(f) for f in files}
    assert schemas[f"site_id={SINGLE}"].equals(schemas[f"site_id={MULTI}"])
    con = duckdb.connect()
    read_dataset(tmp_path / "out", connection=con).create_view("dataset")
    devices = con.execute(
        "select d.device_id, d.point_id, d.value, d.quality_flags from "
        "(select unnest(device_readings) as d from dataset where site_id = $s and timestamp = $t)",
        {"s": MULTI, "t": utc("14:20:00")},
    ).fetchall()
    by_channel = {(d, p): (v, flags) for d, p, v, flags in devices}
    assert {d for d, _ in by_channel} == {
        "CH1",
        "CH2",
        "CHWP1",
        "CDWP1",
        "CT1",
        "CT2",
        "CT3",
        "CT4",
        "PLANT",
    }
    assert by_channel[("CT1", "tower_fan_power")][1] == ["AFFINITY_VIOLATION"]
    assert by_channel[("CT2", "tower_fan_power")][1] == []
    (total,) = con.execute(
        "select tower_fan_power_kw from dataset where site_id = $s and timestamp = $t",
        {"s": MULTI, "t": utc("14:20:00")},
    ).fetchone() or (None,)
    fans = [by_channel[(f"CT{i}", "tower_fan_power")][0] for i in range(1, 5)]
    assert total == pytest.approx(sum(fans)), "the site column sums the four fans"
    blank = con.execute(
        "select tower_fan_power_kw, tower_fan_speed_frac from dataset "
        "where site_id = $s and timestamp = $t",
        {"s": MULTI, "t": utc("16:20:00")},
    ).fetchone()
    assert blank is not None and blank[0] is None and blank[1] is not None, (
        "a fan without a value makes the site total NULL, not a smaller sum"
    )


HISTORY = "telemetry_intermediate.int_telemetry__readings_history"


def to_cell_per_row_history(con: duckdb.DuckDBPyConnection) -> None:
    """Rewrite the readings history as versions before this one stored it: one row per
    delivered cell, the cell's fields as columns."""
    con.execute(
        f"""
        create table telemetry_intermediate.legacy_history as
        select
            site_id, cell.device_id, cell.point_id, cell.channel_class, sample_at, reading_at,
            file_id, source_file, source_line, relative_path, modified_at, cell.raw_value,
            cell.invalid_reason, cell.value_si, cell.violated_limit, cell.out_of_range_value,
            batch_id, loaded_at
        from (select *, unnest(cells) as cell from {HISTORY})
        """
    )
    con.execute(f"drop table {HISTORY}")
    schema, name = HISTORY.split(".")
    con.execute(f"alter table {schema}.legacy_history rename to {name}")


def test_a_history_of_one_row_per_cell_is_migrated_in_place(tmp_path: Path) -> None:
    """A warehouse whose history holds one row per cell (every version before this one): the
    next plain run groups the cells of each source row into one row, keeping every delivery,
    and publishes what a warehouse that always had rows publishes."""
    days = [
        generate_demo_data(
            tmp_path / f"day{day}",
            sites=1,
            days=1,
            seed=3,
            malformed_files=False,
            files_per_day=2,
            site_ids=["ESB-CH1"],
            start=DEFAULT_START + timedelta(days=day),
        )
        for day in range(2)
    ]
    migrated, fresh = tmp_path / "migrated.duckdb", tmp_path / "fresh.duckdb"
    for warehouse, output in ((migrated, tmp_path / "a"), (fresh, tmp_path / "b")):
        run(days[0].out_dir, output, warehouse)
    with duckdb.connect(str(migrated)) as con:
        (cells,) = con.execute(
            f"select sum(len(cells)) from {HISTORY}"
        ).fetchone() or (0,)
        to_cell_per_row_history(con)
        assert con.execute(f"select count(*) from {HISTORY}").fetchone() == (cells,)
    for warehouse, output in ((migrated, tmp_path / "a"), (fresh, tmp_path / "b")):
        run(days[1].out_dir, output, warehouse)

    def history(warehouse: Path) -> list[tuple[object, ...]]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(
                f"""
                select site_id, source_line, cell.point_id, cell.raw_value, cell.value_si
                from (select *, unnest(cells) as cell from {HISTORY})
                order by all
                """
            ).fetchall()

    assert history(migrated) == history(fresh)
    assert len(history(migrated)) > cells
    columns = "site_id, timestamp, chiller_power_kw, tower_fan_power_kw, quality_flags"
    assert (
        read_dataset(tmp_path / "a").order("site_id, timestamp").project(columns).fetchall()
        == read_dataset(tmp_path / "b").order("site_id, timestamp").project(columns).fetchall()
    )


def test_a_history_from_before_devices_is_migrated_in_place(tmp_path: Path) -> None:
    """A warehouse as every one written before devices were data: the seeds in their old
    shape, a history without device_id and with the old point ids of the tower fans
    (tower_fan_a_* and tower_fan_b_*). A plain run stops and says to run --rebuild-all; that
    run keeps every stored delivery: each row gets the device the point map names (fan b the
    second fan) and the dataset comes out the same."""
    generated = generate_demo_data(
        tmp_path / "input",
        sites=1,
        days=1,
        seed=3,
        malformed_files=False,
        files_per_day=2,
        site_ids=[SINGLE, "ESB-CH1"],  # one fan; two fans (CT1A, CT1B)
    )
    warehouse = tmp_path / "warehouse.duckdb"
    run(generated.out_dir, tmp_path / "out", warehouse)
    columns = "site_id, timestamp, tower_fan_power_kw, chiller_power_kw, quality_flags"
    before = read_dataset(tmp_path / "out").order("site_id, timestamp").project(columns).fetchall()
    history = HISTORY
    with duckdb.connect(str(warehouse)) as con:
        to_cell_per_row_history(con)  # the oldest history: one row per cell, no device_id
        (rows,) = con.execute(f"select count(*) from {history}").fetchone() or (0,)
        (second_fan,) = con.execute(
            f"select count(*) from {history} where device_id = 'CT1B'"
        ).fetchone() or (0,)
        con.execute(
            f"update {history} set point_id = replace(point_id, 'tower_fan_', "
            "case when device_id = 'CT1B' then 'tower_fan_b_' else 'tower_fan_a_' end) "
            "where point_id like 'tower_fan_%'"
        )
        con.execute(f"alter table {history} drop column device_id")
        con.execute("alter table reference.telemetry_sites add column chiller_rated_kw double")
        con.execute("drop table telemetry_meta.loaded_seeds")  # it came after devices
    assert second_fan > 0

    with pytest.raises(BatchFailedError, match="--rebuild-all"):
        run(generated.out_dir, tmp_path / "out", warehouse)
    config = load_telemetry_config(warehouse_path=warehouse)
    run_telemetry(config, generated.out_dir, tmp_path / "out", rebuild_all=True)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        migrated = con.execute(
            f"select count(*), count(device_id), count(*) filter (where point_id like "
            f"'tower_fan_a%' or point_id like 'tower_fan_b%'), "
            f"count(*) filter (where device_id = 'CT1B') "
            f"from (select unnest(cells, recursive := true) from {history})"
        ).fetchone()
    assert migrated is not None
    assert migrated[0] >= rows and migrated[1] == migrated[0], "every row has a device"
    assert migrated[2] == 0 and migrated[3] >= second_fan, "fan b became the second fan"
    after = read_dataset(tmp_path / "out").order("site_id, timestamp").project(columns).fetchall()
    assert after == before
