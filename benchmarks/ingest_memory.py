"""Memory of the telemetry loader on a large batch: peak RSS, RSS along the batch, throughput.

Generates (once, cached under --data-dir) a demo batch of at least 2,000 files and 1 GB, loads
it into a fresh warehouse with ``TelemetryLoader`` and prints peak RSS, RSS after file 100,
1,000 and 2,000, and rows/s. The targets: peak under 1.5 GB, and RSS flat within 15 % from
file 100 on. This is a measurement, not a test: it always exits 0 and prints PASS/FAIL next
to the two targets.

The data is generated in a child process so that its memory does not count here. The package
is not changed: a subclass of the loader samples RSS after each file, and a background thread
samples it every 50 ms for the peak. Sizes are decimal (1 MB = 10**6 bytes, 1 GB = 10**9).

    .venv/bin/python benchmarks/ingest_memory.py [--data-dir DIR] [--memory-limit-mb 512]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
import psutil

from batch_processor.config import TelemetryConfig, load_telemetry_config
from batch_processor.telemetry import loader as loader_module
from batch_processor.telemetry.loader import LoadSummary, TelemetryLoader

MB = 10**6
GB = 10**9
MIN_FILES = 2000
MIN_BYTES = 1 * GB
CHECKPOINTS = (100, 1000, 2000)
PEAK_TARGET_BYTES = int(1.5 * GB)
FLAT_TARGET = 0.15
CURVE_EVERY = 250  # also sample RSS after every N-th file, for the curve
MARKER = "_bench_dataset.json"  # leading "_": the loader does not pick it up as input

# 4 sites x 1 file a day of 1-minute readings: ~0.9 MB a day over the 4 sites, so 1,150 days
# make 4,600 files and 1.02 GB (2,000 of these files alone are only ~0.45 GB).
DEFAULT_SITES = 4
DEFAULT_DAYS = 1150
DEFAULT_SEED = 42


# -- data -----------------------------------------------------------------------------------


def _dataset_params(args: argparse.Namespace) -> dict[str, int]:
    return {
        "sites": args.sites,
        "days": args.days,
        "seed": args.seed,
        "interval_minutes": 1,
        "files_per_day": 1,
    }


def _generate(out_dir: str, params: dict[str, int]) -> None:
    """Child process: write the batch and, once complete, the marker with its totals."""
    from batch_processor.telemetry.generator import generate_demo_data

    # DuckDB draws a progress bar on stdout for long statements; errors still reach stderr
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    started = time.monotonic()
    batch = generate_demo_data(
        Path(out_dir),
        sites=params["sites"],
        days=params["days"],
        seed=params["seed"],
        interval_minutes=params["interval_minutes"],
        files_per_day=params["files_per_day"],
        malformed_files=False,
    )
    files, size = _csv_totals(Path(out_dir))  # input files only (no _ground_truth.csv)
    info = {
        "params": params,
        "complete": True,
        "files": files,
        "rows": batch.rows,
        "bytes": size,
        "seconds": round(time.monotonic() - started, 1),
    }
    (Path(out_dir) / MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")


def _csv_totals(data_dir: Path) -> tuple[int, int]:
    paths = [p for p in data_dir.rglob("*.csv") if not p.name.startswith(("_", "."))]
    return len(paths), sum(p.stat().st_size for p in paths)


def ensure_dataset(data_dir: Path, params: dict[str, int]) -> dict[str, object]:
    """Reuse the cached batch if it was made with ``params``; otherwise generate it."""
    marker = data_dir / MARKER
    if marker.exists():
        info = json.loads(marker.read_text(encoding="utf-8"))
        if info.get("complete") and info.get("params") == params:
            files, size = _csv_totals(data_dir)
            if files == info["files"] and size == info["bytes"]:
                print(f"reusing the batch in {data_dir} (made in {info['seconds']} s)", flush=True)
                return dict(info)
        print(f"{data_dir} holds another or an incomplete batch: regenerating", flush=True)
        shutil.rmtree(data_dir)
    elif data_dir.exists() and any(data_dir.iterdir()):
        sys.exit(
            f"{data_dir} exists, is not empty and was not made by this benchmark: "
            "pass another --data-dir or remove it"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"params": params, "complete": False}), encoding="utf-8")
    print(f"generating {params} into {data_dir} (a few minutes) ...", flush=True)
    child = multiprocessing.get_context("spawn").Process(
        target=_generate, args=(str(data_dir), params)
    )
    child.start()
    child.join()
    info = json.loads(marker.read_text(encoding="utf-8"))
    if child.exitcode != 0 or not info.get("complete"):
        sys.exit(f"generating the batch failed (exit code {child.exitcode})")
    print(f"generated in {info['seconds']} s", flush=True)
    return dict(info)


# -- measuring ------------------------------------------------------------------------------


class RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval`` seconds; keeps the peak of each phase."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.process = psutil.Process()
        self.phase = "setup"
        self.peaks: dict[str, int] = {}
        self._stop_event = threading.Event()

    def sample(self) -> int:
        rss = self.process.memory_info().rss
        phase = self.phase
        if rss > self.peaks.get(phase, 0):
            self.peaks[phase] = rss
        return rss

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.sample()
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        self.sample()

    @property
    def peak(self) -> int:
        return max(self.peaks.values(), default=0)


@dataclass
class Point:
    files: int
    seconds: float
    rss: int
    duckdb_memory: int | None  # DuckDB's own account of its memory (buffer manager)
    warehouse_bytes: int  # database file + WAL on disk


@dataclass
class Timings:
    sha256: float = 0.0
    probe: float = 0.0
    finish_batch: float = 0.0
    # seconds and calls by (phase, kind of SQL statement)
    sql: dict[tuple[str, str], float] = field(default_factory=dict)
    calls: dict[tuple[str, str], int] = field(default_factory=dict)


_STATEMENT_KINDS = (
    ("insert into telemetry_raw.readings", "read_csv + unnest into readings"),
    ("insert into telemetry_raw.rejected_rows", "copy rejects"),
    ("insert into telemetry_raw.files", "insert files row"),
    ("update telemetry_raw.readings", "update readings.source_line"),
    ("update telemetry_raw.files as f", "update files counts"),
    ("update telemetry_raw.files", "update files status"),
    ("delete from telemetry_raw.readings where", "delete rejected files' readings"),
    ("drop table", "drop temp rejects tables"),
    ("begin", "begin"),
    ("commit", "commit"),
    ("rollback", "rollback"),
)


def _kind(sql: str) -> str:
    lines = [ln for ln in sql.strip().lower().splitlines() if not ln.lstrip().startswith("--")]
    text = " ".join(" ".join(lines).split())
    return next((kind for prefix, kind in _STATEMENT_KINDS if text.startswith(prefix)), text[:38])


class TimedConnection:
    """Stands in for the loader's DuckDB connection and adds up the time of each statement."""

    def __init__(self, con: duckdb.DuckDBPyConnection, timings: Timings, sampler: RssSampler):
        self.raw = con
        self.timings = timings
        self.sampler = sampler

    def execute(self, sql: str, *args, **kwargs):
        key = (self.sampler.phase, _kind(sql))
        started = time.perf_counter()
        try:
            return self.raw.execute(sql, *args, **kwargs)
        finally:
            elapsed = time.perf_counter() - started
            self.timings.sql[key] = self.timings.sql.get(key, 0.0) + elapsed
            self.timings.calls[key] = self.timings.calls.get(key, 0) + 1

    def __getattr__(self, name: str):
        return getattr(self.raw, name)


class MeasuredLoader(TelemetryLoader):
    """The real loader, with RSS recorded after chosen files and the time of each step."""

    def __init__(self, config: TelemetryConfig, batch_id: str, sampler: RssSampler) -> None:
        super().__init__(config, batch_id)
        self.sampler = sampler
        self.files_done = 0
        self.points: list[Point] = []
        self.timings = Timings()
        self.started = time.monotonic()
        self.loop_seconds = 0.0
        self.total_files = 0

    def load(self, input_dir: Path, *, only_site: str | None = None) -> LoadSummary:
        self.started = time.monotonic()
        self.sampler.phase = "setup"
        return super().load(input_dir, only_site=only_site)

    def _load_one(
        self,
        con: duckdb.DuckDBPyConnection,
        file_id: int,
        path: Path,
        relative: PurePosixPath,
        only_site: str | None,
    ) -> None:
        self.sampler.phase = "per-file loading"
        super()._load_one(con, file_id, path, relative, only_site)
        self.files_done += 1
        n = self.files_done
        if n in CHECKPOINTS or n % CURVE_EVERY == 0 or n == 1 or n == self.total_files:
            self.points.append(self._point(con, n))
            if n % 1000 == 0 or n in CHECKPOINTS:
                p = self.points[-1]
                print(
                    f"  file {n:>5}: RSS {p.rss / MB:7.1f} MB, "
                    f"{n / max(p.seconds, 1e-9):5.1f} files/s",
                    file=sys.stderr,
                    flush=True,
                )

    def _point(self, con, files: int) -> Point:
        raw = con.raw if isinstance(con, TimedConnection) else con
        rss = self.sampler.sample()
        try:
            found = raw.execute("select sum(memory_usage_bytes) from duckdb_memory()").fetchone()
            duck = int(found[0]) if found and found[0] is not None else None
        except duckdb.Error:
            duck = None
        wh = self.config.warehouse_path
        on_disk = sum(p.stat().st_size for p in (wh, wh.with_name(wh.name + ".wal")) if p.exists())
        return Point(files, time.monotonic() - self.started, rss, duck, on_disk)

    def _finish_batch(self, con: duckdb.DuckDBPyConnection) -> None:
        self.loop_seconds = time.monotonic() - self.started
        if not self.points or self.points[-1].files != self.files_done:
            self.points.append(self._point(con, self.files_done))
        self.sampler.phase = "final batch SQL"
        print("final batch SQL ...", file=sys.stderr, flush=True)
        started = time.perf_counter()
        super()._finish_batch(con)
        self.timings.finish_batch = time.perf_counter() - started
        self.sampler.sample()
        self.sampler.phase = "summary + close"


def _timed(function, timings: Timings, attribute: str):
    """Wrap a module-level function of the loader so that its time adds up in ``timings``."""

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            setattr(timings, attribute, getattr(timings, attribute) + time.perf_counter() - started)

    return wrapper


def _timed_connect(connect, timings: Timings, sampler: RssSampler):
    def wrapper(*args, **kwargs):
        return TimedConnection(connect(*args, **kwargs), timings, sampler)

    return wrapper


# -- report ---------------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def _step(label: str, seconds: float, note: str = "") -> None:
    print(f"  {label:<44}{seconds:>8.1f}{'   ' + note if note else ''}")


def _rss_at(points: list[Point], files: int) -> int | None:
    return next((p.rss for p in points if p.files == files), None)


def report(
    summary: LoadSummary,
    loader: MeasuredLoader,
    sampler: RssSampler,
    baseline_rss: int,
    total_bytes: int,
    warehouse_bytes: int,
) -> None:
    points = loader.points
    seconds = summary.seconds
    ru_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    t = loader.timings
    rows_per_s = summary.rows_read / seconds if seconds else 0.0

    print()
    print("== telemetry loader: memory on a large batch ==")
    print(f"files loaded           {summary.files_total:>12,}   by status {summary.by_status}")
    print(f"total bytes            {total_bytes / GB:>12.3f} GB ({total_bytes:,} bytes)")
    print(f"rows read              {summary.rows_read:>12,}   rejected {summary.rows_rejected:,}")
    print(f"seconds                {seconds:>12.1f}")
    print(f"rows/s                 {rows_per_s:>12,.0f}")
    print(f"MB/s                   {total_bytes / MB / seconds if seconds else 0.0:>12.1f}")
    print(f"files/s                {summary.files_total / seconds if seconds else 0.0:>12.1f}")
    print(f"warehouse on disk      {warehouse_bytes / GB:>12.3f} GB (database file + WAL)")
    print()
    print("time by step (s)")
    _step("setup + per-file loop", loader.loop_seconds)
    _step("  sha256 of each file", t.sha256)
    _step("  probe of each file", t.probe)
    sql_in_loop = 0.0
    for phase in ("setup", "per-file loading"):
        for (p_, kind), spent in sorted(t.sql.items(), key=lambda kv: -kv[1]):
            if p_ == phase:
                sql_in_loop += spent
                _step(f"  SQL {kind}", spent, f"{t.calls[(p_, kind)]:>6} call(s), {phase}")
    _step(
        "  rest (Python: stat, site, RSS samples)",
        loader.loop_seconds - t.sha256 - t.probe - sql_in_loop,
    )
    _step("final batch SQL", t.finish_batch)
    for (phase, kind), spent in sorted(t.sql.items(), key=lambda kv: -kv[1]):
        if phase == "final batch SQL":
            _step(f"  SQL {kind}", spent)
    _step("summary + close", seconds - loader.loop_seconds - t.finish_batch)
    print()
    print(f"RSS before the load    {baseline_rss / MB:>10.1f} MB")
    print("RSS along the batch    (after file N; DuckDB = its own memory accounting)")
    for p in points:
        duck = f"{p.duckdb_memory / MB:8.1f} MB" if p.duckdb_memory is not None else "       ?"
        print(
            f"  file {p.files:>5}  {p.seconds:7.1f} s  RSS {p.rss / MB:8.1f} MB  "
            f"DuckDB {duck}  warehouse {p.warehouse_bytes / GB:6.3f} GB"
        )
    print()
    for n in CHECKPOINTS:
        rss = _rss_at(points, n)
        shown = f"{rss / MB:10.1f} MB" if rss is not None else "    (not reached)"
        print(f"RSS after file {n:<5}   {shown}")
    for phase, peak in sampler.peaks.items():
        print(f"peak RSS, {phase:<17}{peak / MB:8.1f} MB")
    peak = max(sampler.peak, ru_maxrss)
    print(f"peak RSS (50 ms sampler) {sampler.peak / MB:8.1f} MB")
    print(f"peak RSS (ru_maxrss)     {ru_maxrss / MB:8.1f} MB")
    print()
    print(f"peak < 1.5 GB: peak {peak / MB:.1f} MB  [{_verdict(peak < PEAK_TARGET_BYTES)}]")
    at_100, at_2000 = _rss_at(points, 100), _rss_at(points, 2000)
    if at_100 and at_2000:
        growth = (at_2000 - at_100) / at_100
        print(
            f"flat within 15 %, file 100 -> 2000: {growth:+.1%}  "
            f"[{_verdict(abs(growth) <= FLAT_TARGET)}]"
        )
        later = [p for p in points if p.files >= 100]
        worst = max(later, key=lambda p: abs(p.rss - at_100))
        drift = (worst.rss - at_100) / at_100
        print(
            f"flat within 15 %, file 100 -> last ({later[-1].files}), largest drift at file "
            f"{worst.files}: {drift:+.1%}  [{_verdict(abs(drift) <= FLAT_TARGET)}]"
        )
    else:
        print("flat within 15 %: fewer than 2,000 files loaded, not measured  [FAIL]")


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("/tmp/bp-bench-ingest"),
        help="where the generated batch is cached (default: %(default)s)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        default=512,
        help="DuckDB memory_limit for the load (default: %(default)s)",
    )
    parser.add_argument("--sites", type=int, default=DEFAULT_SITES, help="%(default)s")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="%(default)s")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="%(default)s")
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the throw-away warehouse goes (default: a temp folder)",
    )
    args = parser.parse_args()

    info = ensure_dataset(args.data_dir, _dataset_params(args))
    files, total_bytes = _csv_totals(args.data_dir)
    print(
        f"batch: {files:,} files, {total_bytes / GB:.3f} GB ({total_bytes:,} bytes), "
        f"{info['rows']:,} rows, in {args.data_dir}",
        flush=True,
    )
    if files < MIN_FILES or total_bytes < MIN_BYTES:
        print(
            f"WARNING: the batch is below the target of {MIN_FILES:,} files and 1 GB; raise --days",
            flush=True,
        )

    with tempfile.TemporaryDirectory(prefix="bp-bench-wh-", dir=args.work_dir) as work:
        warehouse = Path(work) / "warehouse.duckdb"
        warehouse.unlink(missing_ok=True)
        config = load_telemetry_config(
            warehouse_path=warehouse, memory_limit_mb=args.memory_limit_mb
        )
        sampler = RssSampler()
        loader = MeasuredLoader(config, "bench-ingest", sampler)
        loader.total_files = files
        # time the loader's helpers and SQL statements in place (the package is not changed)
        saved = (loader_module.sha256_file, loader_module.probe_file, loader_module.connect)
        loader_module.sha256_file = _timed(saved[0], loader.timings, "sha256")
        loader_module.probe_file = _timed(saved[1], loader.timings, "probe")
        loader_module.connect = _timed_connect(saved[2], loader.timings, sampler)
        baseline_rss = sampler.sample()
        sampler.start()
        print(
            f"loading into {warehouse} with memory_limit {args.memory_limit_mb} MB ...",
            file=sys.stderr,
            flush=True,
        )
        try:
            summary = loader.load(args.data_dir)
        finally:
            sampler.stop()
            loader_module.sha256_file, loader_module.probe_file, loader_module.connect = saved
        warehouse_bytes = sum(p.stat().st_size for p in Path(work).rglob("*") if p.is_file())
        report(summary, loader, sampler, baseline_rss, total_bytes, warehouse_bytes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
