"""A telemetry dataset on S3 (moto's server on loopback, a real HTTP endpoint): the same rows
as the local run, read through its manifest with DuckDB and with pyarrow; conditional writes
so that of two committers on one prefix exactly one wins; a killed run leaves the published
dataset as it was, and the next run removes only what the dead batch uploaded."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import boto3
import pytest

from batch_processor.config import load_telemetry_config
from batch_processor.dataset_commit import CRASH_ENV, PAUSE_ENV
from batch_processor.dataset_store import CommitConflictError, S3Store
from batch_processor.reader import current_manifest, read_dataset, read_dataset_arrow
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import run_telemetry

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "batch-processor")


def rows_of(location: Path | str) -> list[tuple]:
    return sorted(read_dataset(location, verify=True).fetchall(), key=str)


def arrow_rows_of(location: Path | str) -> list[tuple]:
    table = read_dataset_arrow(location).to_table()
    columns = [table.column(name).to_pylist() for name in table.column_names]
    return sorted(zip(*columns, strict=True), key=str)


def keys(bucket: str, prefix: str) -> set[str]:
    listed = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return {item["Key"].removeprefix(prefix + "/") for item in listed.get("Contents", [])}


def published_keys(location: str) -> set[str]:
    """What a dataset on S3 must hold: its manifest's files, the manifests, current.json."""
    manifest = current_manifest(location)
    return {"data/" + f["path"] for f in manifest["dataset_files"] + manifest["superseded_files"]}


def cli(input_dir: Path, output: str, work: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
    environment.update(env, BATCH_PROCESSOR_QUALITY_REPORT="false")
    return subprocess.run(
        [
            CLI,
            "telemetry",
            "run",
            "--input",
            str(input_dir),
            "--output",
            output,
            *("--work-dir", str(work)),
        ],
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_s3_store_conditional_writes(s3_bucket):
    """The protocol rests on the server refusing: a second create of a key, a swap from a
    version that is no longer current, a swap 'from nothing' over an existing object."""
    store = S3Store(f"s3://{s3_bucket}/ds")
    store.create("manifests/a.json", b"1")
    with pytest.raises(CommitConflictError):
        store.create("manifests/a.json", b"2")
    store.swap("manifests/current.json", b"v1", None)
    with pytest.raises(CommitConflictError):
        store.swap("manifests/current.json", b"v1'", None)
    found = store.read("manifests/current.json")
    assert found is not None and found[0] == b"v1"
    store.swap("manifests/current.json", b"v2", found[1])
    with pytest.raises(CommitConflictError):
        store.swap("manifests/current.json", b"v3", found[1])  # v1's etag is stale now
    assert (store.read("manifests/current.json") or (b"",))[0] == b"v2"
    assert store.read("manifests/missing.json") is None


def test_s3_dataset_equals_the_local_run(s3_bucket, generated, tmp_path):
    local = tmp_path / "local"
    remote = f"s3://{s3_bucket}/telemetry/plant-a"
    config = load_telemetry_config(memory_limit_mb=512, quality_report=False)
    local_run = run_telemetry(config, generated.out_dir, local)
    s3_config = config.model_copy(update={"work_dir": tmp_path / "work"})
    s3_run = run_telemetry(s3_config, generated.out_dir, remote)
    assert s3_run.commit is not None and s3_run.exit_code == local_run.exit_code
    assert s3_run.dataset_current == f"{remote}/manifests/current.json"

    expected = rows_of(local)
    assert expected and rows_of(remote) == expected  # DuckDB, every file's sha256 checked
    assert arrow_rows_of(remote) == arrow_rows_of(local)
    manifest = current_manifest(remote)
    assert manifest["statistics"] == current_manifest(local)["statistics"]

    # the prefix holds the manifest's files and nothing else of the data; the run's local
    # state (warehouse, staging, dbt artifacts) is in the work folder, not the bucket
    stored = keys(s3_bucket, "telemetry/plant-a")
    assert {k for k in stored if k.startswith("data/")} == published_keys(remote)
    assert f"manifests/manifest-{s3_run.batch_id}.json" in stored
    assert f"reports/{s3_run.report_path.name}" in stored
    assert not any(k.startswith((".staging", "_dbt")) or k.endswith(".duckdb") for k in stored)
    assert (tmp_path / "work" / "warehouse.duckdb").exists()

    # a second batch with a new day: supersedes files, and the superseded ones of the
    # commit before go one commit later, as in a folder
    later = generate_demo_data(
        tmp_path / "later", sites=1, days=2, seed=11, malformed_files=False
    ).out_dir
    for output, settings in ((local, config), (remote, s3_config)):
        assert run_telemetry(settings, later, output).commit is not None
        assert run_telemetry(settings, later, output).commit is not None  # a rerun: same rows
    assert rows_of(remote) == rows_of(local)
    stored = keys(s3_bucket, "telemetry/plant-a")
    assert {k for k in stored if k.startswith("data/")} == published_keys(remote)

    # the quality report of the S3 dataset: read through its manifest, put next to it
    run = subprocess.run(
        [CLI, "telemetry", "report", "--output", remote, "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    page = (
        boto3.client("s3")
        .get_object(Bucket=s3_bucket, Key="telemetry/plant-a/reports/quality_report.html")["Body"]
        .read()
        .decode()
    )
    assert f"batch {current_manifest(remote)['batch_id']}" in page
    sites = {f["partition"]["site_id"] for f in current_manifest(local)["dataset_files"]}
    assert sites and all(f'data-site="{site}"' in page for site in sites)
    assert page.count("<tr>") > 3  # the ledger tables of the batch reports in the work folder


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_two_committers_on_one_prefix_one_wins(s3_bucket, tmp_path):
    """A and B extend the same committed dataset from two work folders (two machines). A
    stops just before its pointer swap; B commits; A's swap is refused: A fails cleanly (exit
    1, a message that says so), its uploads are removed, and the dataset is B's."""
    remote = f"s3://{s3_bucket}/race"
    base = generate_demo_data(tmp_path / "base", sites=2, days=1, seed=5, malformed_files=False)
    more_a = generate_demo_data(tmp_path / "a", sites=2, days=2, seed=6, malformed_files=False)
    more_b = generate_demo_data(tmp_path / "b", sites=2, days=2, seed=7, malformed_files=False)
    assert cli(base.out_dir, remote, tmp_path / "work-a").returncode == 0
    shutil.copytree(tmp_path / "work-a", tmp_path / "work-b")  # the same history, twice
    before = current_manifest(remote)

    release = tmp_path / "release-a"
    environment = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
    environment.update(
        {PAUSE_ENV: f"before_current:{release}", "BATCH_PROCESSOR_QUALITY_REPORT": "false"}
    )
    a = subprocess.Popen(
        [
            CLI,
            "telemetry",
            "run",
            "--input",
            str(more_a.out_dir),
            "--output",
            remote,
            *("--work-dir", str(tmp_path / "work-a")),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_for(Path(f"{release}.reached"), a)
        assert current_manifest(remote) == before, "A's files are up, its pointer is not"
        b = cli(more_b.out_dir, remote, tmp_path / "work-b")
        assert b.returncode == 0, b.stderr
        won = current_manifest(remote)
        b_rows = rows_of(remote)
        release.touch()
        _, a_err = a.communicate(timeout=300)
    finally:
        if a.poll() is None:
            a.kill()
    assert a.returncode == 1, a_err
    assert "was not committed" in a_err and "another writer" in a_err, a_err
    assert current_manifest(remote) == won and rows_of(remote) == b_rows
    stored = keys(s3_bucket, "race")
    assert {k for k in stored if k.startswith("data/")} == published_keys(remote)
    manifests = {k for k in stored if k.startswith("manifests/manifest-")}
    assert manifests == {
        f"manifests/manifest-{before['batch_id']}.json",
        f"manifests/manifest-{won['batch_id']}.json",
    }, "A's manifest was removed again"
    # A's warehouse does not hold B's batch: its next run refuses instead of dropping B's rows
    again = cli(more_a.out_dir, remote, tmp_path / "work-a")
    assert again.returncode == 1 and "does not hold the history" in again.stderr, again.stderr
    assert current_manifest(remote) == won


@pytest.mark.parametrize("point", ["after_first_move", "before_current"])
def test_a_run_killed_mid_commit_leaves_the_s3_dataset_as_it_was(s3_bucket, tmp_path, point):
    remote = f"s3://{s3_bucket}/killed-{uuid.uuid4().hex[:6]}"
    prefix = remote.split("/", 3)[3]
    work = tmp_path / "work"
    first = generate_demo_data(tmp_path / "one", sites=2, days=1, seed=21, malformed_files=False)
    second = generate_demo_data(tmp_path / "two", sites=2, days=2, seed=21, malformed_files=False)
    assert cli(first.out_dir, remote, work).returncode == 0
    before, old_rows = current_manifest(remote), rows_of(remote)

    killed = cli(second.out_dir, remote, work, **{CRASH_ENV: point})
    assert killed.returncode == -signal.SIGKILL
    assert current_manifest(remote) == before and rows_of(remote) == old_rows
    left = {k for k in keys(s3_bucket, prefix) if k.startswith("data/")}
    assert left > published_keys(remote), "the dead batch's uploads are there"

    assert cli(second.out_dir, remote, work).returncode == 0  # repairs, then commits
    stored = keys(s3_bucket, prefix)
    assert {k for k in stored if k.startswith("data/")} == published_keys(remote)
    assert len({k for k in stored if k.startswith("manifests/manifest-")}) == 2
    assert rows_of(remote) != old_rows
