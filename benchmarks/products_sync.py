"""Products sync throughput: 1,000,000 staging rows, then a second export with 10 % of the
products changed; prints rows/s of both syncs and the peak RSS of this process (dbt and
DuckDB run in it).

    .venv/bin/python benchmarks/products_sync.py [--rows 1000000] [--limit 100000] [--postgres]

With --postgres the exports are copied into a PostgreSQL table on a throw-away loopback server
(scripts/postgres.sh) and synced from there through the server-side keyset cursor; the copy
is not timed.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

from telemetry_throughput import PeakRss  # one RSS sampler for every benchmark

from batch_processor.devservers import postgres_server
from batch_processor.products.generator import generate_products_export
from batch_processor.products.postgres_source import copy_export_into_postgres
from batch_processor.products.sync import sync_products


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limit", type=int, default=100_000)
    parser.add_argument("--changed-fraction", type=float, default=0.1)
    parser.add_argument("--postgres", action="store_true", help="sync from a PostgreSQL table")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    server = postgres_server() if args.postgres else nullcontext(None)
    with tempfile.TemporaryDirectory(prefix="products-bench-") as folder, server as url:
        work = Path(folder)
        export = generate_products_export(work / "in", rows=args.rows, seed=1, products=args.rows)
        print(f"export: {export.rows:,} rows, {export.path.stat().st_size / 1e6:.1f} MB")
        source: Path | str = work / "in"
        if url:
            copy_export_into_postgres(url, export.path)
            source = url
        with PeakRss() as rss:
            for run, (revision, label) in enumerate([(0, "first"), (1, "second")]):
                if revision:
                    changed = generate_products_export(
                        work / "in", rows=args.rows, seed=1, products=args.rows,
                        revision=1, changed_fraction=args.changed_fraction,
                    )  # fmt: skip
                    print(f"revision: {changed.rows:,} changed rows appended")
                    if url:
                        copy_export_into_postgres(url, changed.path)
                started = time.monotonic()
                result = sync_products(source, work / "w.duckdb", work / "out", limit=args.limit)
                seconds = time.monotonic() - started
                rows = result.total("rows")
                print(
                    f"{label} sync: {rows:,} rows in {len(result.batches)} batch(es), "
                    f"{seconds:.1f} s, {rows / seconds:,.0f} rows/s; inserted "
                    f"{result.total('inserted'):,}, updated {result.total('updated'):,}, "
                    f"unchanged {result.total('unchanged'):,}, rejected "
                    f"{result.total('rejected'):,}"
                    + (f"; ERROR {result.error}" if result.error else "")
                )
                assert run == 0 or result.total("inserted") == 0
        print(f"source: {'PostgreSQL table' if url else 'export folder'}")
        print(f"peak RSS: {rss.peak / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
