"""Each pipeline's cost against the floor: what DuckDB itself needs for the same files.

Every measurement is one fresh process (a cold ``batch-processor`` CLI, or a Python process
running the floor's DuckDB queries); it prints the CPU seconds of that process (user + sys:
robust on a shared machine), its wall time and peak RSS, and the job's ratio to the floor
measured in the same run, A/B alternating.

- telemetry at ~10 k, ~100 k and ~1 M raw rows (4 sites, 1-minute data, one file per site
  and day). Floor: ``read_csv`` of the same files with explicit columns and
  ``auto_detect=false``, 5-minute ``time_bucket`` means per site, one partitioned COPY.
- telemetry +1 file: one new day of one site on the largest size's history, against the same
  file on a one-day history (dbt equally warm; the target is <= 2x) and on a new warehouse
  (the first batch there parses the whole project).
- The per-size telemetry runs are first batches on a new warehouse. The project is parsed
  once per checkout and project state (shared by all warehouses): one unmeasured batch runs
  first, so that no measured case pays that parse.
- products: a sync that changes nothing (100 k and 1 M rows): its fixed cost, against DuckDB
  reading the export.
- papers: a 1-record object and a 100 k-record object (``papers load`` of a local file, the
  S3 read is not timed), on a new warehouse and again on the same one: fixed cost and records
  per CPU-second.

    .venv/bin/python benchmarks/floor_ratio.py [--sizes 10k,100k,1M] [--repeats 2]
        [--skip products,papers] [--data-dir /tmp/bp-bench-floor]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from batch_processor.telemetry.generator import DEFAULT_START, generate_demo_data

CLI = str(Path(sys.executable).with_name("batch-processor"))
DAYS = {"10k": 2, "100k": 18, "1M": 180}  # x 4 sites x 1,440 one-minute rows
SITES = 4
FLOOR_SQL = """
import json, sys, duckdb
spec = json.loads(sys.argv[1])
con = duckdb.connect()
con.execute("set memory_limit = '2GB'")

def name(text):
    return '"' + text.replace('"', '""') + '"'

parts, params = [], {}
for number, (site, (time_column, columns, files)) in enumerate(spec["sites"].items()):
    values = [c for c in columns if c != time_column]
    means = ", ".join(f"avg(try_cast({name(c)} as double)) as {name(c)}" for c in values)
    params.update({f"site{number}": site, f"files{number}": files,
                   # all text: real exports hold text in numeric columns
                   f"columns{number}": dict.fromkeys(columns, "varchar")})
    parts.append(
        f"select $site{number} as site_id, time_bucket(interval 5 minute, "
        f"{name(time_column)}::timestamptz) as bucket, {means} "
        f"from read_csv($files{number}, columns = $columns{number}, auto_detect = false, "
        "header = true, delim = ',', quote = '\\"', escape = '\\"') group by all"
    )
query = " union all by name ".join(parts)
out = spec["out"].replace("'", "''")
con.execute(
    f"copy (select *, year(bucket) as year, month(bucket) as month from ({query})) "
    f"to '{out}' (format parquet, partition_by (site_id, year, month), overwrite)",
    params,
)
"""


@dataclass
class Cost:
    cpu_s: float
    wall_s: float
    rss_mb: float


def measure(argv: list[str]) -> Cost:
    """CPU (user + sys), wall and peak RSS of one child process, from the kernel's rusage."""
    started = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    errors = child.stderr.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if child.returncode not in (0, 3):  # a failed run's cost is no measurement of the job
        tail = errors.decode(errors="replace").strip().splitlines()[-3:]
        raise RuntimeError(f"{' '.join(argv[:3])} exited {child.returncode}: {' | '.join(tail)}")
    return Cost(usage.ru_utime + usage.ru_stime, wall, usage.ru_maxrss / 1024)


def alternate(attempt: int, runs: list[tuple[list[Cost], list[str]]]) -> None:
    """Measure each (results, argv) once, in turn; every other attempt in reverse order, so
    that a slower second half of the run (a busier machine) does not favour one side."""
    for costs, argv in runs if attempt % 2 == 0 else reversed(runs):
        costs.append(measure(argv))


def telemetry_data(root: Path, size: str) -> tuple[Path, int]:
    folder = root / f"telemetry-{size}"
    marker = folder / "_done"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        batch = generate_demo_data(
            folder / "input",
            sites=SITES,
            days=DAYS[size],
            seed=7,
            interval_minutes=1,
            files_per_day=1,
            malformed_files=False,
        )
        marker.write_text(str(batch.rows))
    return folder / "input", int(marker.read_text())


def one_day_file(root: Path, days_after: int) -> Path:
    """One file: the first site's day ``days_after`` days after the data's start."""
    folder = root / f"one-file-day{days_after}"
    if not folder.exists():
        generate_demo_data(
            folder,
            sites=1,
            days=1,
            seed=100 + days_after,
            interval_minutes=1,
            files_per_day=1,
            malformed_files=False,
            start=DEFAULT_START + timedelta(days=days_after),
        )
    return folder


def floor_spec(input_dir: Path, out: Path) -> str:
    sites: dict[str, tuple[str, list[str], list[str]]] = {}
    for site_dir in sorted(p for p in input_dir.iterdir() if p.is_dir()):
        files = sorted(str(p) for p in site_dir.glob("*.csv"))
        if not files:
            continue
        header = _csv_header(files[0])
        sites[site_dir.name] = (header[0], header, files)
    return json.dumps({"sites": sites, "out": str(out)})


def telemetry_job(input_dir: Path, output: Path) -> list[str]:
    return [CLI, "telemetry", "run", "--input", str(input_dir), "--output", str(output)]


def floor_job(input_dir: Path, out: Path) -> list[str]:
    return [sys.executable, "-c", FLOOR_SQL, floor_spec(input_dir, out)]


def report(label: str, job: list[Cost], floor: list[Cost] | None, unit: str = "") -> None:
    def med(costs: list[Cost], field: str) -> float:
        return statistics.median(getattr(c, field) for c in costs)

    line = (
        f"{label:<34} job {med(job, 'cpu_s'):7.2f} CPU-s {med(job, 'wall_s'):7.2f} s wall "
        f"{med(job, 'rss_mb'):6.0f} MB"
    )
    if floor:
        ratio = med(job, "cpu_s") / med(floor, "cpu_s")
        line += (
            f" | floor {med(floor, 'cpu_s'):6.2f} CPU-s {med(floor, 'wall_s'):6.2f} s "
            f"{med(floor, 'rss_mb'):5.0f} MB | ratio {ratio:5.1f}x CPU, "
            f"{med(job, 'wall_s') / med(floor, 'wall_s'):5.1f}x wall"
        )
    print(line + unit, flush=True)


def run_telemetry(root: Path, sizes: list[str], repeats: int, work: Path) -> None:
    history: Path | None = None
    for size in sizes:
        input_dir, rows = telemetry_data(root, size)
        files = len(list(input_dir.glob("*/*.csv")))
        print(f"telemetry {size}: {rows:,} raw rows in {files} files", flush=True)
        job: list[Cost] = []
        floor: list[Cost] = []
        for attempt in range(repeats):
            output = work / f"telemetry-{size}-{attempt}"
            shutil.rmtree(output, ignore_errors=True)
            alternate(
                attempt,
                [
                    (job, telemetry_job(input_dir, output)),
                    (floor, floor_job(input_dir, work / "f")),
                ],
            )
            if attempt < repeats - 1:
                shutil.rmtree(output, ignore_errors=True)
            else:
                history = output
        report(f"telemetry {size} ({rows:,} rows)", job, floor)
    if history is None:
        return
    largest = sizes[-1]
    on_history: list[Cost] = []
    on_small: list[Cost] = []
    on_empty: list[Cost] = []
    floor: list[Cost] = []
    for attempt in range(repeats):
        new_file = one_day_file(root, DAYS[largest] + attempt)
        empty, small = work / f"empty-{attempt}", work / f"small-{attempt}"
        for folder in (empty, small):
            shutil.rmtree(folder, ignore_errors=True)
        # a one-day history two months before, so that dbt is as warm as on the large one
        measure(telemetry_job(one_day_file(root, -60), small))
        alternate(
            attempt,
            [
                (on_history, telemetry_job(new_file, history)),
                (on_small, telemetry_job(new_file, small)),
                (on_empty, telemetry_job(new_file, empty)),
                (floor, floor_job(new_file, work / "f")),
            ],
        )
        for folder in (empty, small):
            shutil.rmtree(folder, ignore_errors=True)
    report("telemetry 1 file, new warehouse", on_empty, floor)
    report("telemetry 1 file, 1-day history", on_small, floor)
    report(f"telemetry 1 file, {largest} history", on_history, floor)

    def cpu(costs: list[Cost]) -> float:
        return statistics.median(c.cpu_s for c in costs)

    print(
        f"  1 file on the {largest} history / on a 1-day history: "
        f"{cpu(on_history) / cpu(on_small):.2f}x CPU (target <= 2x); / on a new warehouse: "
        f"{cpu(on_history) / cpu(on_empty):.2f}x"
    )


def run_products(root: Path, rows_list: list[int], repeats: int, work: Path) -> None:
    for rows in rows_list:
        export = root / f"products-{rows}"
        if not (export / "_done").exists():
            shutil.rmtree(export, ignore_errors=True)
            subprocess.run(
                [CLI, "products", "generate", "--output", str(export / "in"), "--rows", str(rows)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (export / "_done").write_text("")
        warehouse = work / f"products-{rows}.duckdb"
        output = work / f"products-{rows}-out"
        sync = [CLI, "products", "sync", "--input", str(export / "in"), "--warehouse"]
        first = measure([*sync, str(warehouse), "--output", str(output)])
        files = sorted(str(p) for p in (export / "in").glob("*.csv"))
        read = (
            "import duckdb, sys; duckdb.connect().execute("
            "'select count(*) from read_csv($f, auto_detect = false, header = true, "
            "all_varchar = true, columns = $c)', {'f': sys.argv[1:], 'c': "
            f"{json.dumps(dict.fromkeys(_csv_header(files[0]), 'varchar'))}"
            "}).fetchall()"
        )
        job: list[Cost] = []
        floor: list[Cost] = []
        for attempt in range(repeats):
            alternate(
                attempt,
                [
                    (job, [*sync, str(warehouse), "--output", str(output)]),
                    (floor, [sys.executable, "-c", read, *files]),
                ],
            )
        print(f"products {rows:,} rows: first sync {first.cpu_s:.1f} CPU-s")
        report(f"products no-change sync {rows:,}", job, floor)


def _csv_header(path: str) -> list[str]:
    with Path(path).open(newline="", encoding="utf-8") as handle:
        return next(csv.reader(handle))


def run_papers(root: Path, entries_list: list[int], repeats: int, work: Path) -> None:
    for entries in entries_list:
        feed = root / f"papers-{entries}.xml.gz"
        if not feed.exists():
            subprocess.run(
                [CLI, "papers", "generate", "--output", str(feed), "--entries", str(entries)],
                check=True,
                stdout=subprocess.DEVNULL,
            )
        warehouse, output = work / f"papers-{entries}.duckdb", work / f"papers-{entries}"
        load = [CLI, "papers", "load", "--input", str(feed), "--warehouse", str(warehouse)]
        first = [measure([*load, "--output", str(output)])]
        again = [measure([*load, "--output", str(output)]) for _ in range(repeats)]
        for label, costs in (("new warehouse", first), ("again, same warehouse", again)):
            cpu = statistics.median(c.cpu_s for c in costs)
            report(
                f"papers {entries:,} record(s), {label}",
                costs,
                None,
                f" | {entries / cpu:,.0f} records/CPU-s",
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10k,100k,1M", help="telemetry sizes: 10k,100k,1M")
    parser.add_argument("--repeats", type=int, default=2, help="A/B pairs per case (median)")
    parser.add_argument("--skip", default="", help="comma list of telemetry,products,papers")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bp-bench-floor"))
    args = parser.parse_args()
    sizes = [s for s in args.sizes.split(",") if s]
    skip = set(args.skip.split(","))
    args.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bp-floor-") as folder:
        work = Path(folder)
        # the project's parse (once per checkout and project state) is not any case's cost
        measure(telemetry_job(one_day_file(args.data_dir, -90), work / "warm-up"))
        if "telemetry" not in skip:
            run_telemetry(args.data_dir, sizes, args.repeats, work)
        if "products" not in skip:
            run_products(args.data_dir, [100_000, 1_000_000], args.repeats, work)
        if "papers" not in skip:
            run_papers(args.data_dir, [1, 100_000], args.repeats, work)


if __name__ == "__main__":
    main()
