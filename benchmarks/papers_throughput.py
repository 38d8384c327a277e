"""Papers throughput: 100,000 generated Atom entries in one ~50 MB gzip object, put into a
bucket on moto's S3 server (loopback, real HTTP) and loaded through an S3 event; prints
records/s and the peak RSS of this process (the pipeline and dbt run in it).

    .venv/bin/python benchmarks/papers_throughput.py [--entries 100000]
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

import boto3
from telemetry_throughput import PeakRss  # one RSS sampler for every benchmark

from batch_processor.devservers import moto_server
from batch_processor.papers.events import objects_of_event
from batch_processor.papers.generator import generate_papers_feed
from batch_processor.papers.pipeline import process_objects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entries", type=int, default=100_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="papers-bench-") as folder, moto_server() as aws:
        os.environ.update(aws)
        work = Path(folder)
        feed = generate_papers_feed(work / "feed.xml.gz", entries=args.entries, seed=1)
        size = feed.path.stat().st_size
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bench")
        s3.upload_file(str(feed.path), "bench", "raw-data/feed.xml.gz")
        feed.path.unlink()
        print(
            f"object: {feed.entries:,} entries ({feed.papers:,} papers), {size / 1e6:.1f} MB gzip"
        )
        event = {
            "Records": [
                {"s3": {"bucket": {"name": "bench"}, "object": {"key": "raw-data/feed.xml.gz"}}}
            ]
        }
        for label in ("first", "second (same event)"):
            with PeakRss() as rss:
                started = time.monotonic()
                result = process_objects(
                    objects_of_event(event), work / "w.duckdb", work / "out"
                ).result_json()
                seconds = time.monotonic() - started
            print(
                f"{label}: {result['processed_count']:,} records in {seconds:.1f} s = "
                f"{result['processed_count'] / seconds:,.0f} records/s; upserted "
                f"{result['upsert_count']:,}, duplicates {result['duplicate_count']:,}, failed "
                f"{result['failed_count']:,}; status {result['status']}; "
                f"peak RSS {rss.peak / 1e6:.0f} MB"
            )


if __name__ == "__main__":
    main()
