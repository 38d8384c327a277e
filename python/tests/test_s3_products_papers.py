"""Products and papers datasets on S3 (moto's server on loopback, a real HTTP endpoint): the
same rows as the local run, read through the manifest with DuckDB and with pyarrow, over a
first publish and an update that supersedes files; ``verify`` and ``repair`` on the S3
prefix; a run without the dataset's warehouse refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3
import duckdb
import pyarrow.dataset as pads
import pytest

from batch_processor.config import DatasetSettings
from batch_processor.dataset_commit import CRASH_ENV
from batch_processor.dataset_store import S3_SCHEME, is_remote, split_s3_uri
from batch_processor.papers.generator import generate_papers_feed
from batch_processor.papers.objects import ObjectRef
from batch_processor.papers.pipeline import process_objects
from batch_processor.products.generator import generate_products_export
from batch_processor.products.sync import sync_products
from batch_processor.reader import current_manifest, dataset_files, readable_files, s3_filesystem

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "batch-processor")
PRODUCT_COLUMNS = (
    "brand_code, sku, name, price, currency, attributes, data_version, source_id, src_updated_at"
)
PAPER_COLUMNS = "paper_id, paper_version, title, abstract, authors, published_at, categories"


def duckdb_rows(location: Path | str, columns: str) -> list[tuple]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    files = readable_files(con, location, dataset_files(location, verify=True))
    query = f"select {columns} from read_parquet($files)"
    return sorted(con.sql(query, params={"files": files}).fetchall(), key=str)


def arrow_rows(location: Path | str, columns: str) -> list[tuple]:
    files = dataset_files(location)
    filesystem = None
    if is_remote(location):
        filesystem = s3_filesystem()
        files = [f.removeprefix(S3_SCHEME) for f in files]
    names = [c.strip() for c in columns.split(",")]
    table = pads.dataset(files, format="parquet", filesystem=filesystem).to_table(columns=names)
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.register("arrow_table", table)  # the same Python values as the DuckDB read
    return sorted(con.sql(f"select {columns} from arrow_table").fetchall(), key=str)


def bucket_data_keys(location: str) -> set[str]:
    bucket, prefix = split_s3_uri(location)
    pages = (
        boto3.client("s3")
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{prefix}/data/")
    )
    return {
        item["Key"].removeprefix(f"{prefix}/")
        for page in pages
        for item in page.get("Contents", [])
    }


def one_paper(path: Path, arxiv_id: str, published: str) -> Path:
    """A JSON lines object holding one paper no earlier batch stored."""
    record = {"id": f"http://arxiv.org/abs/{arxiv_id}v1", "title": arxiv_id, "published": published}
    path.write_text(json.dumps(record) + "\n")
    return path


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    return subprocess.run(
        [CLI, *args], env={**environment, **(env or {})}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip


def test_products_on_s3_equal_the_local_snapshot_and_verify_and_repair(
    s3_bucket: str, tmp_path: Path
) -> None:
    location, work = f"s3://{s3_bucket}/shop/products", tmp_path / "work"
    local_warehouse, local = tmp_path / "local.duckdb", tmp_path / "local"
    export = generate_products_export(tmp_path / "in", rows=900, seed=4)
    for revision in (0, 1):
        if revision:
            generate_products_export(
                tmp_path / "in", rows=900, seed=4, revision=1, changed_fraction=0.25
            )
        expected = sync_products(export.path.parent, local_warehouse, local, limit=400)
        run = cli(
            "products", "sync", "--input", str(export.path.parent), "--output", location,
            "--work-dir", str(work), "--limit", "400",
        )  # fmt: skip
        # 3: completed, with the generator's rejected rows counted in the report
        assert run.returncode == (3 if expected.has_rejects else 0), run.stdout + run.stderr
        assert f"published: {location}/manifests/manifest-" in run.stdout
        rows = duckdb_rows(location, PRODUCT_COLUMNS)
        assert len(rows) > 800 and rows == duckdb_rows(local, PRODUCT_COLUMNS)
        assert arrow_rows(location, PRODUCT_COLUMNS) == rows
        manifest = current_manifest(location)
        live = manifest["dataset_files"] + manifest["superseded_files"]
        # the bucket holds exactly what the manifest keeps alive, nothing of a dead batch
        assert bucket_data_keys(location) == {"data/" + f["path"] for f in live}
        assert bool(manifest["superseded_files"]) == bool(revision)
    # the sync's state is in the work folder: the warehouse and the report
    assert (work / "warehouse.duckdb").is_file()
    reports = sorted((work / "reports").glob("products_sync_*.json"))
    assert len(reports) == 2
    assert json.loads(reports[-1].read_text())["manifest"].startswith(location)

    verify = cli("verify", "--output", location, "--work-dir", str(work))
    assert verify.returncode == 0 and "ok" in verify.stdout, verify.stdout + verify.stderr
    bucket, prefix = split_s3_uri(location)
    s3 = boto3.client("s3")
    s3.put_object(Bucket=bucket, Key=f"{prefix}/data/brand_code=ZZ/stray.parquet", Body=b"x")
    verify = cli("verify", "--output", location, "--work-dir", str(work))
    assert verify.returncode == 1 and "orphan" in verify.stdout and "stray.parquet" in verify.stdout
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/data/brand_code=ZZ/stray.parquet")

    committed = current_manifest(location)["batch_id"]
    s3.delete_object(Bucket=bucket, Key=f"{prefix}/manifests/current.json")
    # two manifests: on a shared store the newest may be a dead batch of another machine
    repair = cli("repair", "--output", location, "--work-dir", str(work))
    assert repair.returncode == 1 and "--batch" in repair.stderr, repair.stdout + repair.stderr
    assert "current.json" not in "".join(bucket_data_keys(location))
    repair = cli("repair", "--output", location, "--work-dir", str(work), "--batch", committed)
    assert repair.returncode == 0 and committed in repair.stdout, repair.stdout + repair.stderr
    assert current_manifest(location)["batch_id"] == committed
    assert cli("verify", "--output", location, "--work-dir", str(work)).returncode == 0

    # a work folder without the dataset's warehouse would republish it from nothing
    elsewhere = cli(
        "products", "sync", "--input", str(export.path.parent), "--output", location,
        "--work-dir", str(tmp_path / "empty-work"),
    )  # fmt: skip
    assert elsewhere.returncode == 2 and "holds a published dataset" in elsewhere.stderr
    assert current_manifest(location)["batch_id"] == committed


def test_papers_on_s3_equal_the_local_dataset(s3_bucket: str, tmp_path: Path) -> None:
    location, work = f"s3://{s3_bucket}/papers", tmp_path / "work"
    paths = DatasetSettings(work_dir=work).output_paths(location)
    feed = generate_papers_feed(tmp_path / "feed.xml.gz", entries=400, seed=2).path
    first = process_objects([ObjectRef(str(feed))], work / "warehouse.duckdb", paths)
    assert first.status == "completed" and first.manifest_path, first.errors
    assert first.manifest_path.startswith(f"{location}/manifests/")
    local = process_objects([ObjectRef(str(feed))], tmp_path / "local.duckdb", tmp_path / "local")
    assert local.upserts == first.upserts > 0

    # newer versions of two stored papers, one of them in another month: the next batch reads
    # the published files on S3 to find the partitions that hold them
    stored = duckdb_rows(location, "paper_id, paper_version, published_at")[:2]
    updates = tmp_path / "updates.jsonl"
    updates.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"http://arxiv.org/abs/{paper_id.removeprefix('arxiv:')}v{version + 5}",
                    "title": f"revised {paper_id}",
                    "published": "2030-06-01T00:00:00Z" if n else published.isoformat(),
                }
            )
            + "\n"
            for n, (paper_id, version, published) in enumerate(stored)
        )
    )
    run = cli("papers", "load", "--input", str(updates), "--output", location,
              "--work-dir", str(work))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert json.loads(run.stdout)["upsert_count"] == 2
    process_objects([ObjectRef(str(updates))], tmp_path / "local.duckdb", tmp_path / "local")

    rows = duckdb_rows(location, PAPER_COLUMNS)
    assert rows == duckdb_rows(tmp_path / "local", PAPER_COLUMNS)
    assert arrow_rows(location, PAPER_COLUMNS) == rows
    ids = [row[0] for row in rows]
    assert len(ids) == len(set(ids)) == first.upserts  # no paper listed twice after its move
    manifest = current_manifest(location)
    assert manifest["statistics"] == current_manifest(tmp_path / "local")["statistics"]
    live = manifest["dataset_files"] + manifest["superseded_files"]
    assert bucket_data_keys(location) == {"data/" + f["path"] for f in live}
    verify = cli("verify", "--output", location, "--work-dir", str(work))
    assert verify.returncode == 0, verify.stdout + verify.stderr

    # a warehouse that did not build the dataset is refused, and the dataset stays as it was
    before = current_manifest(location)
    other = DatasetSettings(work_dir=tmp_path / "other").output_paths(location)
    refused = process_objects([ObjectRef(str(updates))], tmp_path / "other.duckdb", other)
    assert refused.status == "failed" and "did not commit" in str(refused.error), refused.error
    assert current_manifest(location) == before

    # killed after its uploads, before the commit: the dataset is as it was; the next run
    # removes what the dead batch uploaded (its staging folder proves it ours)
    dead = one_paper(tmp_path / "dead.jsonl", "2999.00002", "2031-02-01T00:00:00Z")
    killed = cli("papers", "load", "--input", str(dead), "--output", location,
                 "--work-dir", str(work), env={CRASH_ENV: "before_current"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    assert current_manifest(location) == before
    assert bucket_data_keys(location) > {"data/" + f["path"] for f in live}  # its uploads
    # killed just after its commit point, before the warehouse recorded it: adopted
    later = one_paper(tmp_path / "later.jsonl", "2999.00001", "2031-01-01T00:00:00Z")
    killed = cli("papers", "load", "--input", str(later), "--output", location,
                 "--work-dir", str(work), env={CRASH_ENV: "after_current"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    after = current_manifest(location)
    assert after["batch_id"] != before["batch_id"]
    run = cli("papers", "load", "--input", str(later), "--output", location,
              "--work-dir", str(work))  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    manifest = current_manifest(location)
    live = manifest["dataset_files"] + manifest["superseded_files"]
    assert bucket_data_keys(location) == {"data/" + f["path"] for f in live}
    assert "arxiv:2999.00001" in {row[0] for row in duckdb_rows(location, "paper_id")}
