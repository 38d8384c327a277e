"""The loader on real files: generated faults, hostile names, the rejects it keeps."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import pytest

from batch_processor.config import load_telemetry_config
from batch_processor.telemetry.loader import TelemetryLoader

from .conftest import EDGE_CASES, ESB_RAW, require_shared


def tree_state(root: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def files_table(config) -> dict[str, dict]:
    con = duckdb.connect(str(config.warehouse_path), read_only=True)
    try:
        cursor = con.execute("select * from telemetry_raw.files")
        columns = [d[0] for d in cursor.description]
        return {row[3]: dict(zip(columns, row, strict=True)) for row in cursor.fetchall()}
    finally:
        con.close()


def query(config, sql, params=None):
    con = duckdb.connect(str(config.warehouse_path), read_only=True)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def test_generated_batch_isolates_each_malformed_file(batch_copy, config):
    before = tree_state(batch_copy)
    summary = TelemetryLoader(config, "b1").load(batch_copy)
    files = files_table(config)
    assert tree_state(batch_copy) == before, "the loader must never modify an input file"

    expected = {
        "CGMH-TY/malformed_empty.csv": ("rejected", "empty file"),
        "CGMH-TY/malformed_header_only.csv": ("rejected", "header only"),
        "CGMH-TY/malformed_binary.csv": ("rejected", "NUL byte"),
        "CGMH-TY/malformed_wrong_delimiter.csv": ("rejected", "wrong delimiter"),
        "CGMH-TY/malformed_ragged_rows.csv": ("partial", "2 row(s) rejected"),
    }
    for relative, (status, reason) in expected.items():
        assert files[relative]["status"] == status, relative
        assert reason in files[relative]["reason"], files[relative]["reason"]
    good = {k: v for k, v in files.items() if "malformed" not in k}
    assert good and all(v["status"] == "loaded" and v["reason"] is None for v in good.values())
    # every good file loads completely: rows read == data lines in the file
    for relative, row in good.items():
        lines = (batch_copy / relative).read_text().splitlines()
        assert row["rows_read"] == len(lines) - 1, relative
        assert row["sha256"] == hashlib.sha256((batch_copy / relative).read_bytes()).hexdigest()
    assert summary.has_rejects
    assert summary.by_status == {"loaded": len(good), "partial": 1, "rejected": 4}


def test_rejected_rows_keep_file_line_column_and_error(batch_copy, config):
    TelemetryLoader(config, "b1").load(batch_copy)
    ragged = batch_copy / "CGMH-TY" / "malformed_ragged_rows.csv"
    lines = ragged.read_text().splitlines()
    rejects = query(
        config,
        """
        select j.line, list(distinct j.error_type), any_value(j.csv_line)
        from telemetry_raw.rejected_rows j
        join telemetry_raw.files f using (file_id) where f.relative_path = $p
        group by j.line order by j.line
        """,
        {"p": "CGMH-TY/malformed_ragged_rows.csv"},
    )
    assert [r[1] for r in rejects] == [["TOO MANY COLUMNS"], ["MISSING COLUMNS"]]
    for line, _, csv_line in rejects:
        assert lines[line - 1] == csv_line  # the reported line is the physical line
    # lineage of accepted rows is exact after the rejected line too
    after = rejects[1][0] + 3
    rows = query(
        config,
        """
        select r.raw_timestamp from telemetry_raw.csv_rows r
        join telemetry_raw.files f using (file_id) where f.relative_path = $p and source_line = $l
        """,
        {"p": "CGMH-TY/malformed_ragged_rows.csv", "l": after},
    )
    assert rows == [(lines[after - 1].split(",")[0],)]


def test_hostile_names_are_data_not_sql_or_paths(tmp_path, generated):
    sample = next((generated.out_dir / "CGMH-TY").glob("CGMH-TY_*.csv"))
    batch = tmp_path / "in"
    names = ["o'brien; drop table x.csv", "with space ü ñ 日本.csv", "a..b.csv", '"; --.csv']
    for name in names:
        (batch / "CGMH-TY").mkdir(parents=True, exist_ok=True)
        shutil.copy(sample, batch / "CGMH-TY" / name)
    hostile_site = "o'brien; drop table x"
    (batch / hostile_site).mkdir()
    shutil.copy(sample, batch / hostile_site / "data.csv")
    seed = tmp_path / "sites.csv"
    seed.write_text(
        "site_id,timezone,timestamp_column,csv_delimiter,file_name_pattern,raw_interval_s\n"
        f'CGMH-TY,Asia/Taipei,timestamp,",",,60\n"{hostile_site}",UTC,timestamp,",",,60\n'
    )
    config = load_telemetry_config(warehouse_path=tmp_path / "wh.duckdb", sites_seed=seed)
    con = duckdb.connect(str(config.warehouse_path))
    con.execute("create table x as select 1 as canary")
    con.close()

    TelemetryLoader(config, "b1").load(batch)
    files = files_table(config)
    assert {f"CGMH-TY/{n}" for n in names} | {f"{hostile_site}/data.csv"} == set(files)
    assert all(f["status"] == "loaded" for f in files.values())
    assert files[f"{hostile_site}/data.csv"]["site_id"] == hostile_site
    assert query(config, "select canary from x") == [(1,)]


def test_unknown_site_is_set_aside_with_reason(tmp_path, generated, config):
    sample = next((generated.out_dir / "CGMH-TY").glob("CGMH-TY_*.csv"))
    (tmp_path / "in" / "nowhere").mkdir(parents=True)
    shutil.copy(sample, tmp_path / "in" / "nowhere" / "plant.csv")
    summary = TelemetryLoader(config, "b1").load(tmp_path / "in")
    assert summary.by_status == {"rejected": 1}
    assert "cannot tell the site" in summary.set_aside[0][1]


def test_only_site_skips_other_sites(batch_copy, config):
    summary = TelemetryLoader(config, "b1").load(batch_copy, only_site="ESB-CH1")
    files = files_table(config)
    assert {f["site_id"] for f in files.values() if f["status"] == "loaded"} == {"ESB-CH1"}
    assert summary.by_status["skipped"] > 0


def test_a_rerun_replaces_the_batch_instead_of_adding_to_it(batch_copy, config):
    TelemetryLoader(config, "b1").load(batch_copy)
    first = query(config, "select count(*) from telemetry_raw.csv_rows")
    TelemetryLoader(config, "b2").load(batch_copy)
    assert query(config, "select count(*) from telemetry_raw.csv_rows") == first
    assert query(config, "select distinct batch_id from telemetry_raw.files") == [("b2",)]


@pytest.mark.shared_data
def test_every_edge_case_file_is_loaded_or_set_aside(tmp_path, generated):
    """DuckDB's malformed-CSV corpus, read through the real read path (a site whose timestamp
    is the first column, so no file stops at the header check), mixed with generated files."""
    corpus = require_shared(EDGE_CASES)
    batch = tmp_path / "in"
    shutil.copytree(generated.out_dir, batch)
    for source in corpus.rglob("*.csv"):
        link = batch / "EDGE" / source.relative_to(corpus)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(source)
    seed = tmp_path / "sites.csv"
    seed.write_text(
        "site_id,timezone,timestamp_column,csv_delimiter,file_name_pattern,raw_interval_s\n"
        'EDGE,UTC,,",",,60\n'
        'CGMH-TY,Asia/Taipei,timestamp,",",,60\n'
        'CGMH-KH,Asia/Taipei,timestamp,",",,60\n'
        'ESB-CH1,America/Chicago,Time,",",,300\n'
    )
    config = load_telemetry_config(
        warehouse_path=tmp_path / "wh.duckdb", sites_seed=seed, link_roots=[corpus]
    )
    TelemetryLoader(config, "b1").load(batch)
    files = files_table(config)
    edge = {k: v for k, v in files.items() if k.startswith("EDGE/")}
    assert len(edge) == len(list(corpus.rglob("*.csv")))
    for relative, row in edge.items():
        assert row["status"] in {"loaded", "partial", "rejected"}, relative
        if row["status"] != "loaded":
            assert row["reason"], relative
    # a sample of what the corpus must produce
    assert edge["EDGE/empty.csv"]["reason"].startswith("empty file")
    assert "NUL byte" in edge["EDGE/nullbyte.csv"]["reason"]
    assert "not UTF-8" in edge["EDGE/test/invalid_utf_header.csv"]["reason"]
    assert edge["EDGE/rejects/incorrect_columns/few_columns.csv"]["status"] == "partial"
    assert edge["EDGE/people.csv"]["status"] == "loaded"
    # every line of every file read is accounted for; a quoted line break is not a loss
    lines = {
        relative: (status, swallowed, continuation)
        for relative, status, swallowed, continuation in query(
            config,
            "select relative_path, status, lines_swallowed, continuation_lines "
            "from telemetry_raw.files where header_line is not null",
        )
    }
    assert all(s is None or s >= 0 for _, s, _ in lines.values()), lines
    assert lines["EDGE/all_quotes.csv"] == ("loaded", 0, 1)
    # the generated good files are unaffected by the corpus next to them
    generated_good = [
        v for k, v in files.items() if not k.startswith("EDGE/") and "malformed" not in k
    ]
    assert generated_good and all(v["status"] == "loaded" for v in generated_good)


@pytest.mark.shared_data
def test_real_esb_export_loads_with_its_defects(tmp_path, config):
    source = require_shared(ESB_RAW)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / source.name).symlink_to(source)
    config = config.model_copy(update={"link_roots": [source.parent]})
    TelemetryLoader(config, "b1").load(tmp_path / "in")
    row = files_table(config)["ESB Chiller 1.csv"]
    assert (row["site_id"], row["status"], row["rows_read"], row["rows_rejected"]) == (
        "ESB-CH1",
        "loaded",
        12799,
        0,
    )
    header_row = query(
        config,
        "select len(raw_values), count(raw_timestamp) from telemetry_raw.csv_rows "
        "where source_line = 8924 group by all",
    )
    assert header_row == [(18, 0)]  # the repeated header row, kept for staging to classify
