"""The DynamoDB sink's outbox against moto's DynamoDB and S3 servers on loopback: an item is
pending until DynamoDB acknowledged it, so a table that refuses the writes (it does not exist
yet) fails the batch and the replayed or the next event delivers the pending items; the Lambda
handler takes the table from DYNAMODB_TABLE_NAME; items carry the seed's attribute names;
batch_statistics counts 25-item write batches (the seed's 856 read, 23 duplicates, 833
upserts in 34 batches)."""

from __future__ import annotations

import gzip
import json
import math
import uuid
from pathlib import Path

import boto3
import duckdb
import pytest

from batch_processor.cli import main
from batch_processor.papers.lambda_handler import handler
from tests.conftest import require_shared
from tests.test_papers import FIXTURES, PAGES, adds_up, event, jsonl, papers_jsonl, put

# the attributes of the seed's Papers table (seeds/002, "DynamoDB 資料格式")
SEED_ATTRIBUTES = {
    "paper_id", "source", "title", "abstract", "authors", "published_date", "categories",
    "raw_xml", "trace_id", "batch_timestamp", "processing_status", "created_at", "updated_at",
}  # fmt: skip


@pytest.fixture(autouse=True)
def _warehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("BATCH_PROCESSOR_PAPERS_OUTPUT", str(tmp_path / "out"))


@pytest.fixture
def table_name(s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A DynamoDB table name the Lambda handler is configured with; the table does not exist
    until the test creates it."""
    name = f"papers-table-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DYNAMODB_TABLE_NAME", name)
    return name


def create_table(name: str) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "paper_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "paper_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )


def scan(name: str) -> dict[str, dict]:
    pages = boto3.client("dynamodb").get_paginator("scan").paginate(TableName=name)
    return {item["paper_id"]["S"]: item for page in pages for item in page["Items"]}


def pending(warehouse: Path, table: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        found = con.execute(
            "select count(*) from papers.dynamodb_outbox "
            "where dynamodb_table = ? and acknowledged_at is null",
            [table],
        ).fetchone()
    finally:
        con.close()
    return int(found[0]) if found else -1


def numbered_papers(first: int, count: int) -> bytes:
    return jsonl(
        *(
            {"id": f"2403.{n:05d}v1", "title": f"Paper {n}", "published": "2024-03-01T00:00:00Z"}
            for n in range(first, first + count)
        )
    )


@pytest.mark.shared_data
def test_a_missing_table_fails_the_batch_and_the_replayed_event_delivers_every_item(
    tmp_path: Path, s3_bucket: str, table_name: str
) -> None:
    require_shared(FIXTURES)
    keys = [
        put(s3_bucket, f"raw-data/{page.stem}.xml.gz", gzip.compress(page.read_bytes()))
        for page in PAGES
    ]
    first = handler(event(s3_bucket, *keys))  # the table does not exist: a real refusal
    assert first["status"] == "failed"
    adds_up(first)
    assert (first["duplicate_count"], first["upsert_count"], first["failed_count"]) == (10, 0, 20)
    assert first["batch_statistics"]["total_batches"] == 1  # 20 items: one write batch
    assert first["batch_statistics"]["failed_batches"] == 1
    sink_errors = [e for e in first["errors"] if e["object"] == f"dynamodb:{table_name}"]
    assert len(sink_errors) == 20
    assert "ResourceNotFoundException" in sink_errors[0]["error"]
    assert first["sink"] == {
        "dynamodb_table": table_name, "written": 0, "from_earlier_batches": 0, "pending": 20,
    }  # fmt: skip
    assert pending(tmp_path / "w.duckdb", table_name) == 20
    assert not (tmp_path / "out" / "manifests").exists()  # this sink publishes no Parquet

    create_table(table_name)
    second = handler(event(s3_bucket, *keys))  # the same event again
    assert second["status"] == "completed", second["errors"]
    adds_up(second)
    # the 20 papers are stored, but DynamoDB never had them: upserts, not duplicates
    assert (second["duplicate_count"], second["upsert_count"], second["failed_count"]) == (
        10, 20, 0,
    )  # fmt: skip
    assert second["batch_statistics"]["total_batches"] == 1
    assert second["batch_statistics"]["successful_batches"] == 1
    assert second["sink"]["pending"] == 0 and second["sink"]["written"] == 20
    items = scan(table_name)
    assert len(items) == 20
    item = items["arxiv:2406.19956"]
    assert set(item) >= SEED_ATTRIBUTES, SEED_ATTRIBUTES - set(item)
    assert "published_at" not in item
    assert item["published_date"]["S"].endswith("Z") and "T" in item["published_date"]["S"]
    assert item["trace_id"]["S"] == first["trace_id"]  # the batch that stored the paper
    assert item["paper_version"] == {"N": "3"}
    assert pending(tmp_path / "w.duckdb", table_name) == 0

    third = handler(event(s3_bucket, *keys))  # delivered: now they are duplicates
    assert third["status"] == "completed"
    assert (third["duplicate_count"], third["upsert_count"]) == (30, 0)
    assert third["batch_statistics"]["total_batches"] == 0  # nothing to write
    assert third["sink"]["written"] == 0


def test_the_next_event_delivers_the_items_an_earlier_batch_could_not_write(
    tmp_path: Path, s3_bucket: str, table_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    early = put(s3_bucket, "early.jsonl", numbered_papers(0, 30))
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event(s3_bucket, early)))
    paths = ["--warehouse", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "out")]
    args = ["papers", "handle-event", "--event", str(event_file), *paths,
            "--sink", "dynamodb", "--table", table_name]  # fmt: skip
    assert main(args) == 1  # the CLI: a missing table is a failed batch, exit 1
    refused = json.loads(capsys.readouterr().out)
    assert refused["status"] == "failed" and refused["failed_count"] == 30
    assert "ResourceNotFoundException" in refused["errors"][0]["error"]

    create_table(table_name)
    late = put(s3_bucket, "late.jsonl", numbered_papers(30, 5))
    result = handler(event(s3_bucket, late))  # another event, through the Lambda handler
    assert result["status"] == "completed", result["errors"]
    adds_up(result)
    assert (result["processed_count"], result["upsert_count"]) == (5, 5)
    assert result["sink"] == {
        "dynamodb_table": table_name, "written": 35, "from_earlier_batches": 30, "pending": 0,
    }  # fmt: skip
    assert result["batch_statistics"]["total_batches"] == math.ceil(35 / 25)
    assert len(scan(table_name)) == 35


def test_the_seeds_example_833_upserts_are_34_write_batches_of_at_most_25(
    s3_bucket: str, table_name: str
) -> None:
    create_table(table_name)
    body = papers_jsonl(833) + papers_jsonl(23)  # 856 records, 23 of them duplicates
    key = put(s3_bucket, "raw-data/2024-01-01/papers-20240101120000.gz", gzip.compress(body))
    result = handler(event(s3_bucket, key))
    assert result["status"] == "completed", result["errors"]
    assert (result["processed_count"], result["duplicate_count"], result["upsert_count"]) == (
        856, 23, 833,
    )  # fmt: skip
    stats = result["batch_statistics"]
    assert (stats["total_batches"], stats["successful_batches"], stats["failed_batches"]) == (
        34, 34, 0,
    )  # fmt: skip
    assert len(scan(table_name)) == 833


def test_an_item_dynamodb_refuses_stays_pending_alone_and_the_others_are_delivered(
    tmp_path: Path, s3_bucket: str, table_name: str
) -> None:
    create_table(table_name)
    records = [
        {"id": f"2403.{n:05d}v1", "title": f"Paper {n}", "published": "2024-03-01T00:00:00Z"}
        for n in range(60)
    ]
    records[3]["abstract"] = "x" * 500_000  # over DynamoDB's 400 KB item limit
    first = handler(event(s3_bucket, put(s3_bucket, "a.jsonl", jsonl(*records))))
    adds_up(first)
    assert first["status"] == "completed_with_errors", first["errors"]
    assert first["sink"]["written"] == 59 and first["sink"]["pending"] == 1
    (refusal,) = [e["error"] for e in first["errors"]]
    assert refusal.startswith("arxiv:2403.00003: DynamoDB table") and "Item size" in refusal
    assert len(scan(table_name)) == 59

    # the refused item does not block the next event: its papers are delivered
    second = handler(event(s3_bucket, put(s3_bucket, "b.jsonl", numbered_papers(100, 3))))
    assert second["sink"]["written"] == 3 and second["sink"]["pending"] == 1
    assert len(scan(table_name)) == 62
    assert pending(tmp_path / "w.duckdb", table_name) == 1
