"""A run killed with SIGKILL at any moment leaves the dataset, read through current.json,
wholly old or wholly new; the next run repairs everything and commits."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from batch_processor.dataset_commit import CRASH_ENV
from batch_processor.reader import read_dataset
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.verify import verify_output

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "batch-processor")


def rows_of(output: Path) -> list[tuple]:
    return sorted(read_dataset(output, verify=True).fetchall(), key=str)


def run_cli(input_dir: Path, output: Path, crash_at: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    if crash_at:
        env[CRASH_ENV] = crash_at
    return subprocess.run(
        [CLI, "telemetry", "run", "--input", str(input_dir), "--output", str(output)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    ).returncode


@pytest.fixture(scope="module")
def states(tmp_path_factory):
    """An output with batch A committed, and the dataset that batch B would make."""
    base = tmp_path_factory.mktemp("crash")
    old_input = generate_demo_data(base / "a", sites=2, days=1, seed=21, malformed_files=False)
    new_input = generate_demo_data(base / "b", sites=2, days=2, seed=21, malformed_files=False)
    committed = base / "committed"
    assert run_cli(old_input.out_dir, committed) == 0
    expected = base / "expected"
    shutil.copytree(committed, expected)
    assert run_cli(new_input.out_dir, expected) == 0
    old_rows, new_rows = rows_of(committed), rows_of(expected)
    assert old_rows != new_rows
    return committed, new_input.out_dir, old_rows, new_rows


def check_then_repair(output: Path, new_input: Path, old_rows, new_rows, new_allowed: bool):
    seen = rows_of(output)  # verify=True: every listed file exists with its sha256
    assert seen == old_rows or (new_allowed and seen == new_rows)
    assert run_cli(new_input, output) == 0
    assert rows_of(output) == new_rows
    report = verify_output(output)
    assert report.ok, (report.problems, report.orphans)


@pytest.mark.parametrize(
    "point",
    ["before_move", "after_first_move", "before_manifest", "before_current", "after_current"],
)
def test_sigkill_at_a_commit_step(tmp_path, states, point):
    committed, new_input, old_rows, new_rows = states
    output = tmp_path / "out"
    shutil.copytree(committed, output)
    assert run_cli(new_input, output, crash_at=point) == -signal.SIGKILL
    check_then_repair(output, new_input, old_rows, new_rows, new_allowed=point == "after_current")


def test_sigkill_during_the_copy(tmp_path, states):
    committed, new_input, old_rows, new_rows = states
    output = tmp_path / "out"
    shutil.copytree(committed, output)
    process = subprocess.Popen(
        [CLI, "telemetry", "run", "--input", str(new_input), "--output", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        if any((output / ".staging").rglob("*.parquet")):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    assert process.wait() == -signal.SIGKILL, "the run finished before its COPY could be caught"
    check_then_repair(output, new_input, old_rows, new_rows, new_allowed=False)
