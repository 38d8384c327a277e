"""End to end through the console script's main(): exit codes, logs, the dbt-built inventory."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime

import duckdb
import pytest

from batch_processor.cli import main
from batch_processor.errors import ConfigError
from batch_processor.exit_codes import ExitCode

from .conftest import ESB_RAW, require_shared

pytestmark = pytest.mark.slow


def test_run_with_rejects_exits_3_and_builds_the_inventory(batch_copy, tmp_path, capsys):
    esb = require_shared(ESB_RAW)
    shutil.copy(esb, batch_copy / esb.name)
    warehouse = tmp_path / "wh.duckdb"
    code = main(
        [
            "telemetry",
            "run",
            "--input",
            str(batch_copy),
            "--output",
            str(tmp_path / "out"),
            "--warehouse",
            str(warehouse),
        ]
    )
    out = capsys.readouterr().out
    assert code == ExitCode.COMPLETED_WITH_REJECTS
    assert "malformed_binary.csv: binary content" in out

    con = duckdb.connect(str(warehouse), read_only=True)
    esb_row = con.execute(
        """
        select load_status, rows_read, repeated_header_rows, unreliable_cells, bad_timestamp_rows,
               first_reading_at, last_reading_at
        from telemetry.dim_telemetry_input_files where relative_path = 'ESB Chiller 1.csv'
        """
    ).fetchone()
    assert esb_row[:5] == ("loaded", 12799, 1, 12, 0)
    # -05:00 offsets are honoured: 2018-05-01 00:00-05:00 is 05:00 UTC
    assert esb_row[5] == datetime(2018, 5, 1, 5, 0, tzinfo=UTC)
    unreliable = con.execute(
        """
        select raw_column, reading_value from telemetry_staging.stg_telemetry_raw__readings
        where site_id = 'ESB-CH1' and source_line = 9494 and is_unreliable order by raw_column
        """
    ).fetchall()
    assert unreliable == [("Cond Entering Water Temp", 80.564), ("Cond Leaving Water Temp", 86.306)]
    # naive local time of a Taipei site is read in Asia/Taipei (UTC+8)
    first_cgmh = con.execute(
        """
        select min(reading_at) from telemetry_staging.stg_telemetry_raw__readings
        where site_id = 'CGMH-TY' and raw_timestamp = '2025-06-01 08:00:00'
        """
    ).fetchone()[0]
    assert first_cgmh == datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
    con.close()


def test_clean_batch_exits_0(tmp_path, capsys):
    assert (
        main(
            [
                "telemetry",
                "generate",
                "--output",
                str(tmp_path / "in"),
                "--sites",
                "1",
                "--days",
                "1",
                "--no-malformed",
            ]
        )
        == 0
    )
    code = main(
        [
            "telemetry",
            "run",
            "--input",
            str(tmp_path / "in"),
            "--output",
            str(tmp_path / "out"),
            "--warehouse",
            str(tmp_path / "wh.duckdb"),
        ]
    )
    assert code == ExitCode.OK, capsys.readouterr()


def test_missing_input_fails_with_a_clear_message(tmp_path, capfd):
    code = main(
        [
            "telemetry",
            "run",
            "--input",
            str(tmp_path / "nope"),
            "--output",
            str(tmp_path / "out"),
            "--warehouse",
            str(tmp_path / "wh.duckdb"),
        ]
    )
    assert code == ExitCode.FAILED
    assert "input folder not found" in capfd.readouterr().err


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("memory_limit_mb = 1\n", "memory_limit_mb"),
        (
            "resample_minutes = 5\ntime_resolution_minutes = 60\n",
            "time_resolution_minutes (60) must match resample_minutes (5)",
        ),
        ('max_time_span_per_file = "1 fortnight"\n', "is not a duration"),
        ('max_time_span_per_file = "1m"\n', "shorter than the resample interval"),
        ("[telemtry]\nmax_rows_per_file = 5\n", "unknown top-level key(s) 'telemtry'"),
        ("x = 1\n[telemetry]\n", "unknown top-level key(s) 'x'"),
    ],
)
def test_bad_config_is_a_usage_error(tmp_path, capfd, settings, message):
    config = tmp_path / "bad.toml"
    config.write_text(settings if "[" in settings else "[telemetry]\n" + settings)
    code = main(
        [
            "telemetry",
            "run",
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "o"),
            "--config",
            str(config),
        ]
    )
    assert code == ExitCode.USAGE
    assert message in capfd.readouterr().err


def test_environment_overrides_the_config_file(tmp_path, monkeypatch):
    from batch_processor.config import load_telemetry_config

    config = tmp_path / "c.toml"
    config.write_text("[telemetry]\nmemory_limit_mb = 700\nmax_reject_ratio = 0.2\n")
    monkeypatch.setenv("BATCH_PROCESSOR_MEMORY_LIMIT_MB", "900")
    loaded = load_telemetry_config(config)
    assert (loaded.memory_limit_mb, loaded.max_reject_ratio) == (900, 0.2)
    # and an explicit (CLI) value overrides both
    assert load_telemetry_config(config, memory_limit_mb=128).memory_limit_mb == 128


def test_help_documents_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["telemetry", "run", "--help"])
    assert "3 completed, but some input files or rows were rejected" in " ".join(
        capsys.readouterr().out.split()
    )


def test_json_logs_are_one_object_per_line(batch_copy, tmp_path, capfd):
    code = main(
        [
            "--log-format",
            "json",
            "telemetry",
            "load",
            "--input",
            str(batch_copy),
            "--warehouse",
            str(tmp_path / "wh.duckdb"),
        ]
    )
    assert code == ExitCode.COMPLETED_WITH_REJECTS
    lines = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    rejected = [r for r in records if r.get("status") == "rejected"]
    assert rejected and all(r["file"] and r["reason"] for r in rejected)
    assert any(r["message"].startswith("loading files") for r in records)


def test_settings_reach_dbt_as_vars():
    from batch_processor.config import load_telemetry_config

    config = load_telemetry_config(
        resample_minutes=15,
        max_rows_per_file=500,
        compression="zstd",
        max_time_span_per_file="1d",
    )
    assert config.dbt_vars() == {
        "telemetry_resample_minutes": 15,
        "telemetry_max_rows_per_file": 500,
        "telemetry_max_time_span_per_file_s": 86400,
        "telemetry_parquet_compression": "zstd",
    }


def _leaf_parsers(parser, path=()):
    import argparse

    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not actions:
        yield path, parser
        return
    for name, child in actions[0].choices.items():
        yield from _leaf_parsers(child, (*path, name))


def test_every_command_documents_its_exit_codes_and_takes_the_global_options():
    from batch_processor.cli import build_parser

    leaves = list(_leaf_parsers(build_parser()))
    assert len(leaves) >= 15
    for path, parser in leaves:
        text = " ".join(parser.format_help().split())
        assert "exit codes:" in text, path
        assert "--log-format" in text and "--verbose" in text, path
    # the same names for the same things
    options = {path: {s for a in p._actions for s in a.option_strings} for path, p in leaves}
    for path, names in options.items():
        assert not names & {"--out", "--source", "--in"}, path
    for path in [("telemetry", "run"), ("products", "sync"), ("papers", "load")]:
        assert {"--input", "--output", "--warehouse", "--config"} <= options[path], path


def test_version_and_global_options_after_the_subcommand(tmp_path, capsys):
    from batch_processor import __version__

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and __version__ in capsys.readouterr().out
    # --log-format after the subcommand: the error line is one JSON object
    code = main(["telemetry", "run", "--input", str(tmp_path / "none"), "--output",
                 str(tmp_path / "o"), "--log-format", "json"])  # fmt: skip
    assert code == ExitCode.FAILED
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert json.loads(line)["level"] == "ERROR"


def test_one_configuration_mechanism_for_every_pipeline(tmp_path, monkeypatch):
    from batch_processor.config import (
        CrmSettings,
        PapersSettings,
        ProductsSettings,
        load_settings,
    )

    config = tmp_path / "c.toml"
    config.write_text(
        "[products]\nlimit = 50\nsource_name = 'from-file'\n"
        "[crm]\nnats_url = 'nats://file:1'\n[papers]\nsink = 'dynamodb'\ndynamodb_table = 't'\n"
    )
    monkeypatch.setenv("BATCH_PROCESSOR_SOURCE_NAME", "from-env")
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(tmp_path / "env.duckdb"))
    products = load_settings(ProductsSettings, config, limit=None)
    assert (products.limit, products.source_name) == (50, "from-env")  # file < env
    assert load_settings(ProductsSettings, config, limit=7).limit == 7  # env, file < flag
    assert products.warehouse_for(tmp_path / "out") == tmp_path / "env.duckdb"
    assert load_settings(CrmSettings, config).nats_url == "nats://file:1"
    assert load_settings(PapersSettings, config).dynamodb_table == "t"
    monkeypatch.setenv("BATCH_PROCESSOR_CONFIG", str(config))  # the file from the environment
    assert load_settings(ProductsSettings).limit == 50
    monkeypatch.delenv("BATCH_PROCESSOR_DUCKDB_PATH")
    assert (
        products.model_copy(update={"warehouse_path": None}).warehouse_for(tmp_path / "out")
        == tmp_path / "out" / "warehouse.duckdb"
    )
    with pytest.raises(ConfigError, match="limit"):
        load_settings(ProductsSettings, None, limit=0)
    bad = tmp_path / "bad.toml"
    bad.write_text("[products]\nlimt = 5\n")
    with pytest.raises(ConfigError, match="limt"):
        load_settings(ProductsSettings, bad)


def test_the_cli_honours_the_warehouse_variable(tmp_path, monkeypatch, capsys):
    from batch_processor.telemetry.generator import generate_demo_data

    batch = generate_demo_data(tmp_path / "in", sites=1, days=1, seed=3, malformed_files=False)
    warehouse = tmp_path / "from-env.duckdb"
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(warehouse))
    assert main(["telemetry", "load", "--input", str(batch.out_dir)]) == ExitCode.OK
    assert warehouse.exists()
    assert str(warehouse) in capsys.readouterr().out


def test_the_warehouse_setting_follows_the_same_precedence(tmp_path, monkeypatch):
    from batch_processor.config import load_telemetry_config

    config = tmp_path / "c.toml"
    config.write_text(f"[telemetry]\nwarehouse_path = '{tmp_path / 'file.duckdb'}'\n")
    assert load_telemetry_config(config).warehouse_path == tmp_path / "file.duckdb"
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(tmp_path / "env.duckdb"))
    assert load_telemetry_config(config).warehouse_path == tmp_path / "env.duckdb"
    flag = load_telemetry_config(config, warehouse_path=tmp_path / "flag.duckdb")
    assert flag.warehouse_path == tmp_path / "flag.duckdb"
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", "")  # empty: not set
    monkeypatch.setenv("BATCH_PROCESSOR_LOCK_TIMEOUT_S", "")
    loaded = load_telemetry_config(config)
    assert (loaded.warehouse_path, loaded.lock_timeout_s) == (tmp_path / "file.duckdb", 0.0)


def test_a_published_folder_without_its_warehouse_is_refused(tmp_path, capfd):
    from batch_processor.products.generator import generate_products_export

    export = generate_products_export(tmp_path / "in", rows=20, seed=1)
    output = tmp_path / "out"
    (output / "manifests").mkdir(parents=True)
    (output / "manifests" / "current.json").write_text("{}")  # published by an older version
    code = main(["products", "sync", "--input", str(export.path.parent), "--output", str(output)])
    assert code == ExitCode.USAGE
    err = capfd.readouterr().err
    assert "holds a published dataset but not its warehouse" in err and "--warehouse" in err
    assert not (output / "warehouse.duckdb").exists()
