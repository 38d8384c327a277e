"""Sharded telemetry batches: `telemetry run --workers` over a real nats-server, the shards
built by real `batch-processor worker` processes, the dataset in a folder or on moto's S3
server. The dataset must equal the single-process run of the same files, row for row."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from batch_processor import devservers
from batch_processor.config import load_telemetry_config
from batch_processor.dataset_commit import CRASH_ENV, PAUSE_ENV
from batch_processor.dataset_store import CommitConflictError, S3Store
from batch_processor.reader import current_manifest, read_dataset
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import run_telemetry
from batch_processor.telemetry.sharded import LEASE, coordinator_lease

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "batch-processor")
ACK_WAIT_S = "5"  # a killed worker's shard comes back from JetStream after this


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    with devservers.nats_server() as url:
        yield url


def row_hash(location: Path | str) -> tuple[int, str]:
    """Row count and a hash of the sorted rows, read through the manifest."""
    rows = sorted(map(repr, read_dataset(location, verify=True).fetchall()))
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


class Worker:
    def __init__(self, url: str, folder: Path, name: str, **env: str) -> None:
        self.log = folder / f"{name}.log"
        environment = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
        self.process = subprocess.Popen(
            [CLI, "worker", "--nats", url, "--warehouse", str(folder / f"{name}-crm.duckdb")],
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            env={**environment, "BATCH_PROCESSOR_NATS_ACK_WAIT_S": ACK_WAIT_S, **env},
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while "worker ready" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=120)


def coordinator(
    input_dir: Path, output: str, url: str, work: Path, **env: str
) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if k not in (CRASH_ENV, PAUSE_ENV)}
    return subprocess.Popen(
        [
            *(CLI, "telemetry", "run", "--input", str(input_dir), "--output", output),
            *("--workers", url, "--work-dir", str(work), "--shard-dir", str(work / "shards")),
        ],
        env={**environment, "BATCH_PROCESSOR_QUALITY_REPORT": "false", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=600)
    assert process.returncode in (0, 3), output  # 3: the generated batch's malformed files
    return output


def batches(tmp_path: Path) -> tuple[Path, Path]:
    """Two batches of 4 sites: the first with malformed files, the second overlapping it."""
    first = generate_demo_data(tmp_path / "in1", sites=4, days=2, seed=3).out_dir
    second = generate_demo_data(
        tmp_path / "in2", sites=4, days=3, seed=4, malformed_files=False
    ).out_dir
    return first, second


def single_process(tmp_path: Path, inputs: list[Path]) -> Path:
    config = load_telemetry_config(None, quality_report=False)
    output = tmp_path / "single"
    for folder in inputs:
        run_telemetry(config, folder, output)
    return output


def test_a_4_site_batch_by_2_workers_equals_the_single_process_run(tmp_path, nats_url):
    first, second = batches(tmp_path)
    expected = single_process(tmp_path, [first])
    output = tmp_path / "sharded"
    workers = [Worker(nats_url, tmp_path, f"w{i}") for i in (1, 2)]
    try:
        log = finished(coordinator(first, str(output), nats_url, tmp_path / "work"))
    finally:
        for worker in workers:
            worker.stop()
    assert row_hash(output) == row_hash(expected), log
    manifest, single = current_manifest(output), current_manifest(expected)
    assert sorted(manifest["shards"]) == sorted(single["site_ids"])
    assert manifest["ledger"] == single["ledger"]  # every line and cell, across the shards
    assert [f["path"] for f in manifest["input_files"]] == [
        f["path"] for f in single["input_files"]
    ]
    assert manifest["statistics"] == single["statistics"]
    assert {i["site_id"] for i in manifest["dbt"]["invocations"]} == set(manifest["shards"])
    report = json.loads(
        next((output / "reports").glob(f"batch_report_*_{manifest['batch_id']}.json")).read_text()
    )
    assert sorted(s["site_id"] for s in report["shards"]) == sorted(manifest["shards"])
    assert all(s["status"] == "ok" for s in report["shards"])
    assert report["ledger"]["totals"] == single["ledger"]
    assert "Traceback" not in "".join(w.log.read_text() for w in workers)

    # the next batch builds on each shard's history: late and re-delivered rows as one process
    run_telemetry(load_telemetry_config(None, quality_report=False), second, expected)
    workers = [Worker(nats_url, tmp_path, f"v{i}") for i in (1, 2)]
    try:
        finished(coordinator(second, str(output), nats_url, tmp_path / "work"))
    finally:
        for worker in workers:
            worker.stop()
    assert row_hash(output) == row_hash(expected)
    assert current_manifest(output)["ledger"] == current_manifest(expected)["ledger"]


def test_a_worker_killed_mid_shard_is_redone_elsewhere_and_committed_once(
    tmp_path, nats_url, s3_bucket
):
    first, second = batches(tmp_path)
    output = f"s3://{s3_bucket}/plants"
    work = tmp_path / "work"
    helper = Worker(nats_url, tmp_path, "b1")
    try:
        finished(coordinator(first, output, nats_url, work))
    finally:
        helper.stop()
    before = boto3.client("s3").get_object(Bucket=s3_bucket, Key="plants/manifests/current.json")
    before_body = before["Body"].read()

    doomed = Worker(nats_url, tmp_path, "a", **{CRASH_ENV: "shard_after_first_upload"})
    run = coordinator(second, output, nats_url, work)
    doomed.process.wait(timeout=300)  # SIGKILLed after its first shard's first upload
    assert doomed.process.returncode == -signal.SIGKILL
    now = boto3.client("s3").get_object(Bucket=s3_bucket, Key="plants/manifests/current.json")
    assert now["Body"].read() == before_body  # the dataset is as it was until the commit
    rescuer = Worker(nats_url, tmp_path, "b2")
    try:
        log = finished(run)
    finally:
        rescuer.stop()
    redone = [line for line in rescuer.log.read_text().splitlines() if "telemetry.shard" in line]
    assert len([line for line in redone if "started" in line]) == 4, redone

    listed = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="plants/manifests/")
    manifests = [o["Key"] for o in listed["Contents"] if "/manifest-" in o["Key"]]
    assert len(manifests) == 2, manifests  # exactly one commit per batch
    expected = single_process(tmp_path, [first, second])
    assert row_hash(output) == row_hash(expected), log
    manifest = current_manifest(output)
    data = boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="plants/data/")
    present = {o["Key"].removeprefix("plants/") for o in data["Contents"]}
    listed_files = manifest["dataset_files"] + manifest["superseded_files"]
    assert present == {"data/" + f["path"] for f in listed_files}  # the dead upload is gone
    assert (
        boto3.client("s3").list_objects_v2(Bucket=s3_bucket, Prefix="plants/" + LEASE)["KeyCount"]
        == 0
    )


def test_two_coordinators_on_one_prefix_one_holds_the_lease(s3_bucket):
    store = S3Store(f"s3://{s3_bucket}/plants")
    with coordinator_lease(store, "batch-a", ttl_s=600):
        with (
            pytest.raises(CommitConflictError, match="another coordinator"),
            coordinator_lease(store, "batch-b", ttl_s=600),
        ):
            pass
        assert store.read(LEASE) is not None  # the loser did not remove the winner's lease
    assert store.read(LEASE) is None
    # a lease that has expired (its coordinator was killed) is taken over
    with coordinator_lease(store, "killed", ttl_s=-1), coordinator_lease(store, "c", ttl_s=600):
        assert json.loads(store.read(LEASE)[0])["batch_id"] == "c"


def test_two_sharded_coordinators_racing_on_one_prefix_one_commits(tmp_path, nats_url, s3_bucket):
    """Two machines (two work folders) start the same batch on one S3 prefix: the one that
    holds the lease commits; the other fails at once, changing nothing, and says why."""
    first, _ = batches(tmp_path)
    output, release = f"s3://{s3_bucket}/plants", tmp_path / "release"
    worker = Worker(nats_url, tmp_path, "w")
    try:
        # A holds the lease and waits just before its commit point
        a = coordinator(
            first, output, nats_url, tmp_path / "a", **{PAUSE_ENV: f"before_current:{release}"}
        )
        deadline = time.monotonic() + 300
        while not Path(f"{release}.reached").exists():
            assert a.poll() is None, a.communicate()
            assert time.monotonic() < deadline, "coordinator A did not reach its commit"
            time.sleep(0.1)
        b = coordinator(first, output, nats_url, tmp_path / "b")
        b_log, _ = b.communicate(timeout=300)
        assert b.returncode == 1 and "another coordinator" in b_log, b_log
        release.touch()
        a_log = finished(a)
    finally:
        worker.stop()
    s3 = boto3.client("s3")
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="plants/manifests/")
    manifests = [o["Key"] for o in listed["Contents"] if "/manifest-" in o["Key"]]
    assert len(manifests) == 1, manifests  # one commit
    manifest = current_manifest(output)
    assert manifest["batch_id"] in a_log and manifest["batch_id"] in manifests[0]
    data = s3.list_objects_v2(Bucket=s3_bucket, Prefix="plants/data/")
    present = {o["Key"].removeprefix("plants/") for o in data["Contents"]}
    assert present == {"data/" + f["path"] for f in manifest["dataset_files"]}
    assert s3.list_objects_v2(Bucket=s3_bucket, Prefix="plants/" + LEASE)["KeyCount"] == 0
    # the loser's failure is reported next to the dataset too
    reports = s3.list_objects_v2(Bucket=s3_bucket, Prefix="plants/reports/")["Contents"]
    failed = [json.loads(s3.get_object(Bucket=s3_bucket, Key=r["Key"])["Body"].read())
              for r in reports if r["Key"].endswith(".json")]  # fmt: skip
    assert [r["status"] for r in failed].count("failed") == 1
