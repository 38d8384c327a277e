"""Throughput of the whole telemetry job against a bare DuckDB CSV -> Parquet copy.

Generates >= 1M raw rows (cached in --data-dir), runs `telemetry run` once into a fresh output
(load, one dbt build with every test, the Parquet post-hook, the commit), and prints rows/s,
MB/s, peak RSS, the step timings and the slowest dbt nodes; then runs the floor of
`benchmarks/floor_ratio.py` on the same files (`read_csv` with explicit columns and
`auto_detect=false`, 5-minute means per site, one partitioned COPY; a `union_by_name` read
would sniff every file and hide most of the job's cost) and prints the wall-time ratio. For
CPU-second ratios at several sizes use `benchmarks/floor_ratio.py`.

    .venv/bin/python benchmarks/telemetry_throughput.py [--days 180]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil
from floor_ratio import floor_job, measure  # the one floor of every benchmark

from batch_processor.config import load_telemetry_config
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import run_telemetry


class PeakRss:
    """Sample this process's RSS every 50 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, process.memory_info().rss)
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def ensure_data(data_dir: Path, days: int) -> tuple[Path, int, int]:
    marker = data_dir / "_done"
    if not marker.exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        batch = generate_demo_data(
            data_dir,
            sites=4,
            days=days,
            seed=7,
            interval_minutes=1,
            files_per_day=1,
            malformed_files=False,
        )
        marker.write_text(f"{batch.rows} {batch.bytes}")
    rows, size = (int(x) for x in marker.read_text().split())
    return data_dir, rows, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=180, help="days x 4 sites at 1-minute data")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bp-bench-throughput"))
    parser.add_argument("--memory-limit-mb", type=int, default=2048)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    data_dir, rows, size = ensure_data(args.data_dir, args.days)
    files = sorted(str(p) for p in data_dir.rglob("*.csv"))
    print(f"input: {len(files)} files, {rows:,} rows, {size / 1e6:.1f} MB")

    work = Path(tempfile.mkdtemp(prefix="bp-throughput-"))
    try:
        config = load_telemetry_config(memory_limit_mb=args.memory_limit_mb)
        started = time.monotonic()
        with PeakRss() as rss:
            result = run_telemetry(config, data_dir, work / "out")
        pipeline_s = time.monotonic() - started
        manifest = result.commit.manifest if result.commit else {}
        print(
            f"telemetry run: {pipeline_s:.1f} s, {rows / pipeline_s:,.0f} rows/s, "
            f"{size / 1e6 / pipeline_s:.1f} MB/s, peak RSS {rss.peak / 1e6:.0f} MB"
        )
        print("  steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
        if result.dbt is not None:
            slowest = sorted(result.dbt.nodes, key=lambda n: -n.execution_time)[:8]
            print(
                "  slowest dbt nodes: "
                + ", ".join(
                    f"{n.unique_id.split('.')[-1][:40]} {n.execution_time:.1f}s" for n in slowest
                )
            )
        print(
            f"  output: {manifest['statistics']['total_rows']:,} rows (5-minute buckets) in "
            f"{len(manifest['output_files'])} files"
        )

        floor = measure(floor_job(data_dir, work / "floor"))
        print(
            f"DuckDB floor (explicit columns, 5-minute means, partitioned COPY): "
            f"{floor.wall_s:.1f} s, {floor.cpu_s:.1f} CPU-s, {rows / floor.wall_s:,.0f} rows/s, "
            f"peak RSS {floor.rss_mb:.0f} MB"
        )
        print(f"ratio telemetry run / floor: {pipeline_s / floor.wall_s:.2f}x wall (aim: <= 3x)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
