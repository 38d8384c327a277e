"""Nothing is deleted without proof and nothing outside the input folder is read: a lost,
unreadable or edited current.json stops the run (``repair`` rebuilds it), a listed file that
is gone fails the commit, a foreign file in data/ is left alone; links out of the input
folder, glob characters in names and files that change while read are handled."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest

from batch_processor.cli import main
from batch_processor.config import load_telemetry_config
from batch_processor.exit_codes import ExitCode
from batch_processor.telemetry import loader as loader_module
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import BatchFailedError, TelemetryRunResult, run_telemetry

pytestmark = pytest.mark.slow

SITE = "CGMH-TY"


def run(input_dir: Path, output: Path) -> TelemetryRunResult:
    return run_telemetry(load_telemetry_config(), input_dir, output)


def data_files(output: Path) -> dict[str, bytes]:
    found = (output / "data").rglob("*")
    return {str(p.relative_to(output)): p.read_bytes() for p in found if p.is_file()}


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A committed dataset of two sites (two partitions), and its input."""
    base = tmp_path_factory.mktemp("safety")
    generated = generate_demo_data(
        base / "input", sites=2, days=1, seed=9, malformed_files=False, files_per_day=1
    )
    run(generated.out_dir, base / "out")
    return generated.out_dir, base / "out"


@pytest.fixture
def output(published: tuple[Path, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "out"
    shutil.copytree(published[1], copy)
    return copy


def test_a_lost_current_json_stops_the_run_and_repair_restores_it(
    published: tuple[Path, Path], output: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = data_files(output)
    pointer = json.loads((output / "manifests" / "current.json").read_text())
    (output / "manifests" / "current.json").unlink()
    with pytest.raises(BatchFailedError, match=r"current\.json is missing.*repair"):
        run(published[0], output)
    assert data_files(output) == before, "nothing was deleted"

    assert main(["repair", "--output", str(output)]) == ExitCode.OK
    assert json.loads((output / "manifests" / "current.json").read_text()) == pointer
    assert main(["verify", "--output", str(output)]) == ExitCode.OK
    assert "ok" in capsys.readouterr().out
    run(published[0], output)  # and the next run works again


@pytest.mark.parametrize(
    "damage", ["edited", "invalid_json"], ids=["edited row count", "invalid JSON"]
)
def test_an_edited_or_broken_current_json_stops_the_run(
    published: tuple[Path, Path], output: Path, damage: str
) -> None:
    before = data_files(output)
    current = output / "manifests" / "current.json"
    if damage == "edited":
        manifest = json.loads(current.read_text())
        manifest["dataset_files"] = manifest["dataset_files"][:1]  # "forget" the other files
        current.write_text(json.dumps(manifest))
        expected = "checksum does not match"
    else:
        current.write_text(current.read_text()[:-20])
        expected = "not a valid JSON manifest"
    with pytest.raises(BatchFailedError, match=expected) as failed:
        run(published[0], output)
    assert str(current) in str(failed.value) and "repair" in str(failed.value)
    assert data_files(output) == before, "nothing was deleted"
    assert main(["repair", "--output", str(output)]) == ExitCode.OK
    assert main(["verify", "--output", str(output)]) == ExitCode.OK


def test_an_interrupted_first_commit_is_cleaned_up(
    published: tuple[Path, Path], tmp_path: Path
) -> None:
    """A first commit killed after moving files (no current.json yet, its staging folder
    still there): the next run removes those files as ours and publishes."""
    output = tmp_path / "fresh"
    source = next((published[1] / "data").rglob("*.parquet"))
    leftover = output / "data" / source.parent.relative_to(published[1] / "data")
    leftover.mkdir(parents=True)
    moved = leftover / "part-1b2c3d4e-aaaa-bbbb-cccc-0123456789ab-0-ffff.parquet"
    shutil.copy(source, moved)
    (output / ".staging" / "1b2c3d4e-aaaa-bbbb-cccc-0123456789ab").mkdir(parents=True)
    result = run(published[0], output)
    assert result.commit is not None and not moved.exists()
    assert main(["verify", "--output", str(output)]) == ExitCode.OK


def test_repair_never_promotes_an_older_manifest_over_a_newer_one(
    published: tuple[Path, Path], output: Path
) -> None:
    """Batch B (newer) lost a file and current.json is gone: repair refuses rather than
    pointing at A (whose files are still there one commit longer), which would un-publish B
    and let the next run delete B's files."""
    run(published[0], output)  # batch B supersedes A
    current = json.loads((output / "manifests" / "current.json").read_text())
    (output / "data" / current["dataset_files"][0]["path"]).unlink()
    (output / "manifests" / "current.json").unlink()
    before = data_files(output)
    assert main(["repair", "--output", str(output)]) == ExitCode.FAILED
    assert not (output / "manifests" / "current.json").exists()
    assert data_files(output) == before


def test_a_listed_file_that_is_gone_fails_the_commit(
    published: tuple[Path, Path], output: Path, tmp_path: Path
) -> None:
    manifest = json.loads((output / "manifests" / "current.json").read_text())
    other = next(f for f in manifest["dataset_files"] if f["partition"]["site_id"] != SITE)
    (output / "data" / other["path"]).unlink()
    only_site = tmp_path / "input"
    shutil.copytree(published[0] / SITE, only_site / SITE)  # rebuilds SITE's partition only
    pointer = (output / "manifests" / "current.json").read_bytes()
    with pytest.raises(BatchFailedError, match="missing or changed"):
        run(only_site, output)
    assert (output / "manifests" / "current.json").read_bytes() == pointer, "not committed"


def test_a_file_that_is_not_ours_is_left_in_place(
    published: tuple[Path, Path], output: Path
) -> None:
    foreign = output / "data" / f"site_id={SITE}" / "notes.parquet"
    foreign.write_bytes(b"someone else's file")
    lookalike = foreign.with_name("part-0000-1.parquet")  # our naming, but no batch of ours
    lookalike.write_bytes(b"x")
    run(published[0], output)
    assert foreign.exists() and lookalike.exists()


def write_site_file(folder: Path, name: str, rows: int, kw: float) -> Path:
    path = folder / SITE / name
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["timestamp,CH1_KW"] + [
        f"2025-06-01 08:{minute:02d}:00,{kw + minute % 3}" for minute in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def files_table(output: Path) -> dict[str, tuple[Any, ...]]:
    with duckdb.connect(str(output / "warehouse.duckdb"), read_only=True) as con:
        return {
            row[0]: row[1:]
            for row in con.execute(
                "select relative_path, status, reason, rows_read from telemetry_raw.files"
            ).fetchall()
        }


def test_links_out_of_the_input_folder_are_not_read(tmp_path: Path) -> None:
    batch = tmp_path / "input"
    write_site_file(batch, "real.csv", 10, 100.0)
    secret = tmp_path / "outside" / "secret.csv"
    secret.parent.mkdir()
    secret.write_text("timestamp,CH1_KW\n2025-06-01 09:00:00,SECRET-VALUE-42\n")
    (batch / SITE / "passwd.csv").symlink_to(secret)
    (batch / SITE / "inside.csv").symlink_to(batch / SITE / "real.csv")
    os.mkfifo(batch / SITE / "pipe.csv")
    (batch / SITE / "loop.csv").symlink_to(batch / SITE / "loop.csv")
    result = run(batch, tmp_path / "out")
    files = files_table(tmp_path / "out")
    assert files[f"{SITE}/passwd.csv"][0] == "rejected"
    assert "outside the input folder" in files[f"{SITE}/passwd.csv"][1]
    assert files[f"{SITE}/pipe.csv"][0] == "rejected"
    assert "not a regular file" in files[f"{SITE}/pipe.csv"][1]
    assert files[f"{SITE}/inside.csv"][0] == "loaded", "a link to a file inside may be read"
    assert files[f"{SITE}/loop.csv"][0] == "rejected"
    assert result.report_path is not None
    assert "SECRET-VALUE-42" not in result.report_path.read_text()
    manifest = (tmp_path / "out" / "manifests" / "current.json").read_text()
    assert "SECRET-VALUE-42" not in manifest


def test_glob_characters_in_names_are_read_literally(tmp_path: Path) -> None:
    batch = tmp_path / "input"
    names = ["star*.csv", "what?.csv", "class[1].csv", "brace{a,b}.csv"]
    for index, name in enumerate(names):
        write_site_file(batch, name, 5 + index, 100.0 + index)
    write_site_file(batch, "plain.csv", 20, 50.0)
    run(batch, tmp_path / "out")
    files = files_table(tmp_path / "out")
    for index, name in enumerate(names):
        assert files[f"{SITE}/{name}"][0] == "loaded", files[f"{SITE}/{name}"]
        assert files[f"{SITE}/{name}"][2] == 5 + index, f"{name} read only its own rows"


def test_a_file_that_changes_while_read_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = tmp_path / "input"
    growing = write_site_file(batch, "growing.csv", 10, 100.0)
    write_site_file(batch, "steady.csv", 10, 100.0)
    original = loader_module.TelemetryLoader._read_csv

    def read_then_append(self: Any, con: Any, file_id: int, path: Path, *args: Any) -> None:
        original(self, con, file_id, path, *args)
        if path.name == "growing.csv":
            with path.open("a", encoding="utf-8") as handle:
                handle.write("2025-06-01 08:30:00,120\n")  # the exporter is still writing

    monkeypatch.setattr(loader_module.TelemetryLoader, "_read_csv", read_then_append)
    run(batch, tmp_path / "out")
    files = files_table(tmp_path / "out")
    assert files[f"{SITE}/growing.csv"][0] == "rejected"
    assert "changed while reading" in files[f"{SITE}/growing.csv"][1]
    assert files[f"{SITE}/steady.csv"][0] == "loaded"
    assert growing.exists()


def test_the_manifest_states_what_its_files_hold(
    published: tuple[Path, Path], tmp_path: Path
) -> None:
    """Two outputs sharing one warehouse: each manifest's statistics are those of its own
    files (the warehouse's mart holds both sites' rows)."""
    warehouse = tmp_path / "shared.duckdb"
    sites = sorted(p.name for p in published[0].iterdir() if p.is_dir())
    for site in sites:
        single = tmp_path / f"in-{site}"
        shutil.copytree(published[0] / site, single / site)
        config = load_telemetry_config(warehouse_path=warehouse)
        run_telemetry(config, single, tmp_path / f"out-{site}")
    for site in sites:
        output = tmp_path / f"out-{site}"
        manifest = json.loads((output / "manifests" / "current.json").read_text())
        stats = manifest["statistics"]
        assert list(stats["per_site"]) == [site]
        with duckdb.connect() as con:
            files = [str(p) for p in (output / "data").rglob("*.parquet")]
            (rows,) = con.execute("select count(*) from read_parquet($f)", {"f": files}).fetchone()
        assert stats["total_rows"] == rows == sum(f["rows"] for f in manifest["dataset_files"])


def test_paths_are_values_never_yaml_or_jinja(published: tuple[Path, Path], tmp_path: Path) -> None:
    """An output folder named with quotes, braces, Jinja, an emoji and spaces is used as
    written: nothing is rendered ({{ 7*7 }} stays, no "49" folder) and the run succeeds."""
    odd = tmp_path / 'it\'s {{ 7*7 }} {% raw %} \u00e9 \U0001f600 "q"'
    result = run(published[0], odd)
    assert result.commit is not None
    assert list((odd / "data").rglob("*.parquet")), "the dataset is under the literal path"
    assert not any("49" in p.name for p in tmp_path.iterdir())
    assert main(["verify", "--output", str(odd)]) == ExitCode.OK


def test_dbt_artifacts_are_bounded(tmp_path: Path) -> None:
    """The newest N artifact folders stay; older ones go, except a recent failed run's."""
    import time

    from batch_processor.telemetry.publisher import prune_dbt_artifacts

    folder = tmp_path / "_dbt"
    now = time.time()
    for index in range(8):
        run_dir = folder / f"run{index}"
        run_dir.mkdir(parents=True)
        status = "error" if index in (1, 2) else "success"
        (run_dir / "run_results.json").write_text(json.dumps({"results": [{"status": status}]}))
        age = (8 - index) * 3600 + (10 * 86400 if index == 1 else 0)  # run1: failed, 10 days
        os.utime(run_dir, (now - age, now - age))
    removed = prune_dbt_artifacts(folder, keep=3, failed_keep_days=7)
    assert sorted(p.name for p in folder.iterdir()) == ["run2", "run5", "run6", "run7"]
    assert sorted(p.name for p in removed) == ["run0", "run1", "run3", "run4"]


def test_glob_characters_in_the_output_path_are_literal(
    published: tuple[Path, Path], tmp_path: Path
) -> None:
    """An output folder ``ds[1]`` next to a folder ``ds1`` (which the glob ``ds[1]`` matches):
    the reader, verify and the next commit read only the named folder's files."""
    from batch_processor.reader import read_dataset

    odd, decoy = tmp_path / "ds[1]", tmp_path / "ds1"
    shutil.copytree(published[1], odd)
    shutil.copytree(published[1], decoy)  # same relative file names: a glob reads both
    manifest = json.loads((odd / "manifests" / "current.json").read_text())
    total = manifest["statistics"]["total_rows"]
    assert total > 0
    assert read_dataset(odd).count("*").fetchall() == [(total,)]
    assert main(["verify", "--output", str(odd)]) == ExitCode.OK

    more = tmp_path / "more"
    write_site_file(more, "extra.csv", 30, 80.0)
    result = run(more, odd)
    assert result.commit is not None
    after = json.loads((odd / "manifests" / "current.json").read_text())
    assert read_dataset(odd).count("*").fetchall() == [(after["statistics"]["total_rows"],)]
    assert main(["verify", "--output", str(odd)]) == ExitCode.OK


def test_text_values_reach_dbt_as_data_never_jinja(tmp_path: Path) -> None:
    """A source name with quotes, Jinja, a comment and an emoji is stored exactly as given;
    a value that could end dbt's raw block is refused by name."""
    from batch_processor.dbt_runner import vars_argument
    from batch_processor.errors import ConfigError
    from batch_processor.products.generator import generate_products_export
    from batch_processor.products.sync import sync_products

    name = "it's {{ 7*7 }} {# c #} {% if %} \U0001f600"
    export = generate_products_export(tmp_path / "in", rows=50, seed=3)
    warehouse = tmp_path / "w.duckdb"
    sync_products(export.path.parent, warehouse, tmp_path / "out", source_name=name)
    with duckdb.connect(str(warehouse), read_only=True) as con:
        stored = con.execute("select source_name from products.etl_watermark").fetchall()
    assert stored == [(name,)]
    with pytest.raises(ConfigError, match="products_source_name"):
        vars_argument({"products_source_name": "x {% endraw %} {{ 7*7 }}"})


def test_a_relative_products_output_is_resolved_against_the_callers_folder(
    tmp_path: Path,
) -> None:
    """Run from a folder outside the project: the dataset and dbt's artifacts land under
    that folder, not in the checkout."""
    import subprocess
    import sys

    from batch_processor.paths import PROJECT_ROOT
    from batch_processor.products.generator import generate_products_export

    generate_products_export(tmp_path / "in", rows=40, seed=4)
    before = set((PROJECT_ROOT).iterdir())
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "batch-processor"),
            "products",
            "sync",
            "--input",
            "in",
            "--warehouse",
            "w.duckdb",
            "--output",
            "out",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == ExitCode.COMPLETED_WITH_REJECTS, done.stderr  # 1 bad row made
    assert (tmp_path / "out" / "manifests" / "current.json").exists()
    assert main(["verify", "--output", str(tmp_path / "out")]) == ExitCode.OK
    assert set(PROJECT_ROOT.iterdir()) == before, "nothing was written into the checkout"


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 24 MB tmpfs (root only; skipped where mounting is not allowed)."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_names_the_path_and_leaves_the_dataset_as_it_was(
    published: tuple[Path, Path], small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = small_disk / "out"
    shutil.copytree(published[1], output)
    before = data_files(output)
    pointer = (output / "manifests" / "current.json").read_bytes()
    free = shutil.disk_usage(small_disk).free
    with (small_disk / "filler").open("wb") as filler:  # leave ~1 MB
        filler.write(b"\0" * max(0, free - 1_000_000))
    code = main(["telemetry", "run", "--input", str(published[0]), "--output", str(output)])
    assert code == ExitCode.FAILED
    messages = " ".join(line for line in capsys.readouterr().err.splitlines() if "ERROR" in line)
    assert "No space left on device" in messages
    assert str(small_disk) in messages, "the message names where the disk is full"
    assert "Traceback" not in messages
    (small_disk / "filler").unlink()
    assert data_files(output) == before
    assert (output / "manifests" / "current.json").read_bytes() == pointer
    assert main(["verify", "--output", str(output)]) == ExitCode.OK
