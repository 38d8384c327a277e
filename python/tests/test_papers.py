"""Papers pipeline against moto's S3 server on loopback: the real arXiv fixtures gzipped into a
bucket, dedup across overlapping pages, newer versions replace older ones, bad objects and
records isolated with clear errors, counts that add up, Parquet + manifest output."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import duckdb
import pytest
import zstandard

from batch_processor.papers.lambda_handler import handler
from batch_processor.papers.objects import ObjectRef
from batch_processor.papers.pipeline import process_objects
from batch_processor.paths import PROJECT_ROOT
from batch_processor.telemetry.verify import verify_output
from tests.conftest import SHARED_DATA, require_shared

FIXTURES = SHARED_DATA / "arxiv-atom-fixtures"
PAGES = sorted((FIXTURES / "recorded_2026_xml_bodies").glob("q_testing_*.xml"))
CLI = str(Path(sys.executable).parent / "batch-processor")

API_ERROR_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title type="html">ArXiv Query: search_query=&amp;id_list=1234.12345</title>
  <id>http://arxiv.org/api/kvuntZ8c9a4Eq5CF7KY03nMug+Q</id>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <entry>
    <id>http://arxiv.org/api/errors#incorrect_id_format_for_1234.12345</id>
    <title>Error</title>
    <summary>incorrect id format for 1234.12345</summary>
    <updated>2026-11-23T00:00:00-05:00</updated>
    <author><name>arXiv api core</name></author>
  </entry>
</feed>
"""
EMPTY_FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <title>arXiv Query: search_query=ti:nothing_matches_this</title>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:totalResults>
</feed>
"""
ENTITY_BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>&lol3;</id></entry></feed>
"""


def event(bucket: str, *keys: str) -> dict:
    return {
        "Records": [
            {
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": key.replace(" ", "+")}},
            }
            for key in keys
        ]
    }


def put(bucket: str, key: str, body: bytes) -> str:
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
    return key


def stored(warehouse: Path) -> dict[str, tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        rows = con.execute(
            "select paper_id, paper_version, source_updated_at, trace_id, created_at, updated_at, "
            "title from papers.papers"
        ).fetchall()
    finally:
        con.close()
    return {row[0]: row[1:] for row in rows}


def adds_up(result: dict) -> None:
    assert result["processed_count"] == (
        result["duplicate_count"] + result["upsert_count"] + result["failed_count"]
    ), result
    stats = result["batch_statistics"]
    assert stats["total_batches"] == stats["successful_batches"] + stats["failed_batches"]


@pytest.mark.shared_data
def test_overlapping_pages_in_one_event_load_each_paper_once(
    tmp_path: Path, s3_bucket: str
) -> None:
    require_shared(FIXTURES)
    keys = [
        put(s3_bucket, f"raw-data/2026-11-23/{page.stem}.xml.gz", gzip.compress(page.read_bytes()))
        for page in PAGES
    ]
    ids = [
        line.split("<id>")[1].split("</id>")[0]
        for page in PAGES
        for line in page.read_text().splitlines()
        if "<id>http://arxiv.org/abs/" in line
    ]
    warehouse, output = tmp_path / "w.duckdb", tmp_path / "out"

    first = handler(event(s3_bucket, *keys))
    assert first["status"] == "completed", first["errors"]
    assert first["processed_count"] == len(ids) == 30
    assert first["duplicate_count"] == len(ids) - len(set(ids)) == 10
    assert first["upsert_count"] == len(set(ids)) == 20
    assert first["failed_count"] == 0 and first["batch_statistics"]["total_batches"] == 3
    assert first["s3_key"] == ",".join(keys)
    assert first["trace_id"].startswith("batch-2026")
    adds_up(first)
    papers = stored(warehouse)
    assert len(papers) == 20
    assert papers["arxiv:2406.19956"][0] == 3  # versions are kept apart from the id
    assert {row[2] for row in papers.values()} == {first["trace_id"]}

    second = handler(event(s3_bucket, *keys))
    assert second["upsert_count"] == 0 and second["duplicate_count"] == 30
    adds_up(second)
    assert stored(warehouse) == papers  # nothing touched, not even updated_at

    manifest = json.loads((output / "manifests" / "current.json").read_text())
    assert manifest["batch_id"] == first["trace_id"]  # the second batch changed nothing
    assert sum(f["rows"] for f in manifest["dataset_files"]) == 20
    assert verify_output(output).ok


@pytest.fixture(autouse=True)
def _warehouse_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.setenv("BATCH_PROCESSOR_PAPERS_OUTPUT", str(tmp_path / "out"))


def jsonl(*records: dict) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def test_a_newer_version_replaces_the_stored_one_and_an_older_one_does_not(
    tmp_path: Path, s3_bucket: str
) -> None:
    paper = {
        "id": "http://arxiv.org/abs/2401.12345v1",
        "title": "First",
        "published": "2024-01-15T00:00:00Z",
        "updated": "2024-01-15T00:00:00Z",
        "authors": ["A. Author"],
        "categories": ["cs.LG"],
    }
    v1 = put(s3_bucket, "v1.jsonl.zst", zstandard.compress(jsonl(paper)))
    first = handler(event(s3_bucket, v1))
    assert first["upsert_count"] == 1, first
    created = stored(tmp_path / "w.duckdb")["arxiv:2401.12345"][3]

    v2 = {**paper, "id": "http://arxiv.org/abs/2401.12345v2", "title": "Second"}
    v2_late = {**v2, "title": "Second, revised", "updated": "2024-02-01T00:00:00Z"}
    key = put(s3_bucket, "v2.jsonl", jsonl(v2, v2_late, paper))  # plain: no compression
    second = handler(event(s3_bucket, key))
    assert (second["upsert_count"], second["duplicate_count"]) == (1, 2)
    row = stored(tmp_path / "w.duckdb")["arxiv:2401.12345"]
    assert row[0] == 2 and row[5] == "Second, revised"  # highest version, then latest update
    assert row[3] == created and row[4] > created  # created_at kept from the first load

    old = put(s3_bucket, "old.jsonl.gz", gzip.compress(jsonl(paper)))
    third = handler(event(s3_bucket, old))
    assert (third["upsert_count"], third["duplicate_count"]) == (0, 1)
    assert stored(tmp_path / "w.duckdb")["arxiv:2401.12345"][5] == "Second, revised"
    # the manifest measures its files: one paper, last updated by the second batch
    manifest = json.loads((tmp_path / "out" / "manifests" / "current.json").read_text())
    assert manifest["statistics"] == {"total_rows": 1, "partitions": 1}
    assert sum(f["rows"] for f in manifest["dataset_files"]) == 1
    assert manifest["updated_through"] == row[4].isoformat()


@pytest.mark.shared_data
def test_both_atom_formats_parse_into_the_documented_fields(tmp_path: Path) -> None:
    require_shared(FIXTURES)
    sources = [
        FIXTURES / "legacy_2016_xml" / "id_list_1111.2011v2.xml",
        FIXTURES / "recorded_2026_xml_bodies" / "id_astro-ph_0601001_s0_m100_3150dca9dc76.xml",
        FIXTURES / "recorded_2026_xml_bodies" / "id_2104.12255v1_s0_m100_6ae69987ffe1.xml",
    ]
    result = process_objects([ObjectRef(str(p)) for p in sources], tmp_path / "w.duckdb", tmp_path)
    assert result.status == "completed" and result.upserts == 3
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    rows = {
        r[0]: r[1:]
        for r in con.execute(
            "select paper_id, paper_version, title, authors, categories, primary_category, doi, "
            "published_at, raw_xml from papers.papers"
        ).fetchall()
    }
    legacy = rows["arxiv:1111.2011"]
    assert legacy[0] == 2
    assert legacy[1].startswith("Quantum Criticality for Extended Nodes on a Bethe Lattice in")
    assert "  " not in legacy[1] and "\n" not in legacy[1]
    assert legacy[2] == ["James M. Murray", "Adrian Del Maestro", "Zlatko Tesanovic"]
    assert legacy[5] == "10.1103/PhysRevB.85.115117"
    assert legacy[7].startswith("<entry") and "1111.2011v2" in legacy[7]
    assert rows["arxiv:astro-ph/0601001"][0] == 1
    modern = rows["arxiv:2104.12255"]
    assert (modern[0], modern[1], modern[3], modern[4]) == (1, "0", ["cs.CR"], "cs.CR")
    assert str(modern[6]).startswith("2021-04-20 16:07:14")


def test_bad_objects_and_records_are_isolated_with_clear_errors(
    tmp_path: Path, s3_bucket: str
) -> None:
    good = jsonl(
        {"id": "2301.00001v1", "title": "Good", "published": "2023-01-02T00:00:00Z"},
        {"title": "no id here", "published": "2023-01-02T00:00:00Z"},
    )
    truncated = gzip.compress(good * 50)[:-40]
    keys = [
        put(s3_bucket, "good.jsonl.gz", gzip.compress(good)),
        put(s3_bucket, "truncated.xml.gz", truncated),
        put(s3_bucket, "not-xml.gz", gzip.compress(b"%PDF-1.4 not a feed")),
        put(s3_bucket, "bomb.xml", ENTITY_BOMB),
        put(s3_bucket, "error-entry.xml", API_ERROR_FEED),
        put(s3_bucket, "empty.xml.gz", gzip.compress(EMPTY_FEED)),
        put(s3_bucket, "zero-bytes.xml.gz", b""),
        put(s3_bucket, "gzip-of-nothing.gz", gzip.compress(b"")),
        "does/not exist.gz",
    ]
    result = handler(event(s3_bucket, *keys))
    adds_up(result)
    assert result["status"] == "completed_with_errors"
    assert result["upsert_count"] == 1
    # 6 objects that cannot be read (2 of them empty) + the record without an id + the API
    # error entry
    assert result["failed_count"] == 8
    # a batch is an object here: the 6 unreadable ones and the API error feed failed
    assert result["batch_statistics"] == {
        "total_batches": 9,
        "successful_batches": 2,
        "failed_batches": 7,
        "avg_batch_time_ms": result["batch_statistics"]["avg_batch_time_ms"],
    }
    prefix = f"s3://{s3_bucket}/"
    errors = {e["object"].removeprefix(prefix): e["error"] for e in result["errors"]}
    unreadable = ("truncated.xml.gz", "not-xml.gz", "bomb.xml", "does/not exist.gz",
                  "zero-bytes.xml.gz", "gzip-of-nothing.gz")  # fmt: skip
    for name in unreadable:
        assert errors[name].startswith(prefix + name + ": ")  # every object error names it
    assert "truncated" in errors["truncated.xml.gz"]
    assert "unknown format" in errors["not-xml.gz"]
    assert "refused unsafe XML (EntitiesForbidden)" in errors["bomb.xml"]
    assert errors["error-entry.xml"] == "arXiv API error: incorrect id format for 1234.12345"
    assert errors["does/not exist.gz"].endswith("no such key")
    assert errors["zero-bytes.xml.gz"].endswith(": empty object (0 bytes)")
    assert errors["gzip-of-nothing.gz"].endswith(
        ": empty object (0 bytes after gzip decompression)"
    )
    assert errors["good.jsonl.gz"] == "entry has no id"
    assert "empty.xml.gz" not in errors  # an empty feed is not an error
    assert list(stored(tmp_path / "w.duckdb")) == ["arxiv:2301.00001"]


@pytest.mark.slow
def test_the_cli_takes_an_event_file_and_logs_json_with_the_trace_id(
    tmp_path: Path, s3_bucket: str, moto_server: dict[str, str]
) -> None:
    key = put(s3_bucket, "one.jsonl", jsonl({"title": "no id", "published": "2020-01-01"}))
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event(s3_bucket, key)))
    done = subprocess.run(
        [CLI, "--log-format", "json", "papers", "handle-event", "--event", str(event_file),
         "--warehouse", str(tmp_path / "cli.duckdb"), "--output", str(tmp_path / "cli-out")],
        capture_output=True, text=True, check=False, env={**os.environ, **moto_server},
    )  # fmt: skip
    assert done.returncode == 3, done.stderr
    result = json.loads(done.stdout)
    assert result["failed_count"] == 1 and result["errors"][0]["line"] == 1
    lines = [json.loads(line) for line in done.stderr.splitlines()]  # every line is JSON
    traced = [line for line in lines if line.get("trace_id") == result["trace_id"]]
    assert any(line["message"] == "Batch processing completed" for line in traced)
    assert any("record rejected" in line["message"] for line in traced)
    # the shared modules' lines (dbt runner, publisher) carry the trace id too
    assert any(line["message"].startswith("dbt build") for line in traced)
    assert all(line["request_id"].startswith("req-") for line in traced)
    assert all(line["service"] == "batch-processor" for line in traced)

    bad = tmp_path / "bad.json"
    bad.write_text('{"Records": [{"s3": {}}]}')
    refused = subprocess.run(
        [CLI, "papers", "handle-event", "--event", str(bad),
         "--warehouse", str(tmp_path / "cli.duckdb"), "--output", str(tmp_path / "cli-out")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "S3 event record 1: missing s3.bucket.name or s3.object.key" in refused.stderr


class ThrottlingClient:
    """A real DynamoDB client (moto's server) that, like a throttled table, accepts only the
    first `accept` items of each of its first `throttled_calls` requests and hands the rest
    back as UnprocessedItems."""

    def __init__(self, accept: int, throttled_calls: int) -> None:
        self.client = boto3.client("dynamodb")
        self.accept, self.throttled_calls, self.calls = accept, throttled_calls, []

    def batch_write_item(self, RequestItems: dict) -> dict:
        ((table, requests),) = RequestItems.items()
        self.calls.append(len(requests))
        if len(self.calls) > self.throttled_calls:
            return self.client.batch_write_item(RequestItems=RequestItems)
        if self.accept:
            self.client.batch_write_item(RequestItems={table: requests[: self.accept]})
        left = requests[self.accept :]
        return {"UnprocessedItems": {table: left} if left else {}}


def papers_jsonl(count: int) -> bytes:
    return jsonl(
        *(
            {
                "id": f"http://arxiv.org/abs/2402.{n:05d}v1",
                "title": f"Paper {n}",
                "published": "2024-02-01T00:00:00Z",
                "authors": [f"Author {n}"],
                "categories": ["cs.DB", "cs.LG"],
            }
            for n in range(count)
        )
    )


def test_dynamodb_sink_writes_25_items_a_request_and_retries_unprocessed_items(
    tmp_path: Path, s3_bucket: str
) -> None:
    from batch_processor.papers.dynamodb_sink import SinkStats, deliver_pending, write_chunk

    dynamodb = boto3.client("dynamodb")
    table = f"papers-{s3_bucket}"
    key = put(s3_bucket, "sixty.jsonl.gz", gzip.compress(papers_jsonl(60)))
    result = process_objects(
        [ObjectRef(f"s3://{s3_bucket}/{key}")], tmp_path / "w.duckdb", tmp_path / "out",
        dynamodb_table=table,
    ).result_json()  # fmt: skip
    # the table does not exist yet: every item stays pending in the outbox
    assert result["status"] == "failed" and result["sink"]["pending"] == 60
    assert not (tmp_path / "out" / "manifests").exists()  # this sink publishes no Parquet
    dynamodb.create_table(
        TableName=table,
        AttributeDefinitions=[{"AttributeName": "paper_id", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "paper_id", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )

    # throttled: 10 of 25 items accepted by each of the first 3 requests, then all
    throttled = ThrottlingClient(accept=10, throttled_calls=3)
    stats = deliver_pending(tmp_path / "w.duckdb", table, "batch-20240101-retry", client=throttled)
    assert stats.unprocessed == [] and stats.items_written == 60 and stats.error is None
    assert (stats.write_batches, stats.failed_batches) == (3, 0)
    assert max(throttled.calls) <= 25
    assert throttled.calls[:4] == [25, 15, 5, 25]  # a chunk's leftovers are retried first
    assert stats.retried_items == 15 + 5
    items = dynamodb.scan(TableName=table)["Items"]
    assert len(items) == 60
    item = next(i for i in items if i["paper_id"]["S"] == "arxiv:2402.00007")
    assert item["authors"] == {"L": [{"S": "Author 7"}]}
    assert item["trace_id"]["S"] == result["trace_id"]  # the batch that stored it
    # acknowledged: nothing is pending any more
    assert deliver_pending(tmp_path / "w.duckdb", table, "batch-20240101-again").write_batches == 0

    # never accepted: bounded attempts, then the ids are reported as not written
    stubborn = ThrottlingClient(accept=0, throttled_calls=1000)
    chunk_items = [{"paper_id": {"S": f"arxiv:x{n}"}} for n in range(3)]
    stats = SinkStats()
    left = write_chunk(stubborn, table, chunk_items, stats, max_attempts=4, sleep=lambda s: None)
    assert stubborn.calls == [3, 3, 3, 3]
    assert left == stats.unprocessed == ["arxiv:x0", "arxiv:x1", "arxiv:x2"]


def current_paper_ids(output: Path) -> list[str]:
    """The paper_ids of every file the current manifest lists, one per row."""
    manifest = json.loads((output / "manifests" / "current.json").read_text())
    files = [str(output / "data" / f["path"]) for f in manifest["dataset_files"]]
    con = duckdb.connect()
    try:
        rows = con.execute("select paper_id from read_parquet(?)", [files]).fetchall()
    finally:
        con.close()
    return sorted(row[0] for row in rows)


def test_a_paper_that_moves_month_leaves_its_old_partition_in_the_same_commit(
    tmp_path: Path,
) -> None:
    def paper(n: int, published: str, version: int = 1) -> dict:
        return {
            "id": f"http://arxiv.org/abs/2401.{n:05d}v{version}",
            "title": f"Paper {n} v{version}",
            "published": published,
        }

    warehouse, output = tmp_path / "w.duckdb", tmp_path / "out"
    first = tmp_path / "first.jsonl"
    # 1 and 2 share January; 3 is alone in February
    first.write_bytes(
        jsonl(paper(1, "2024-01-15T00:00:00Z"), paper(2, "2024-01-20T00:00:00Z"),
              paper(3, "2024-02-10T00:00:00Z"))
    )  # fmt: skip
    assert process_objects([ObjectRef(str(first))], warehouse, output).upserts == 3
    second = tmp_path / "second.jsonl"
    # newer versions of 1 and 3 with another published month: 1 leaves January (2 stays
    # there), 3 leaves February empty
    second.write_bytes(
        jsonl(paper(1, "2024-03-01T00:00:00Z", 2), paper(3, "2024-04-01T00:00:00Z", 2))
    )
    result = process_objects([ObjectRef(str(second))], warehouse, output)
    assert result.status == "completed" and result.upserts == 2

    # each paper once: no old copy left behind
    assert current_paper_ids(output) == [f"arxiv:2401.{n:05d}" for n in (1, 2, 3)]
    manifest = json.loads((output / "manifests" / "current.json").read_text())
    partitions = {
        (f["partition"]["year"], f["partition"]["month"]) for f in manifest["dataset_files"]
    }
    assert partitions == {("2024", "01"), ("2024", "03"), ("2024", "04")}  # February is gone
    assert manifest["statistics"] == {"total_rows": 3, "partitions": 3}
    assert verify_output(output).ok


@pytest.mark.slow
def test_a_relative_output_and_warehouse_work_from_any_folder(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "feed.jsonl").write_bytes(
        jsonl({"id": "2301.00001v1", "title": "Good", "published": "2023-01-02T00:00:00Z"})
    )
    done = subprocess.run(
        [CLI, "papers", "load", "--input", "feed.jsonl",
         "--warehouse", "w.duckdb", "--output", "out"],
        capture_output=True, text=True, check=False, cwd=elsewhere,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "completed" and result["upsert_count"] == 1
    assert current_paper_ids(elsewhere / "out") == ["arxiv:2301.00001"]
    assert list((elsewhere / "out" / "reports").glob(f"papers_*_{result['trace_id']}.json"))
    assert (elsewhere / "w.duckdb").is_file()
    assert not (Path(PROJECT_ROOT) / "out").exists()  # nothing resolved against the project
