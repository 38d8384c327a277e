"""A sharded telemetry batch with 1, 2 and 4 workers, against the single-process run.

One multi-site batch (default 4 sites x 30 days of 1-minute data, one file per site and day)
is published five ways, each a first batch on new warehouses: by one cold
``batch-processor telemetry run`` process, then by ``telemetry run --workers`` with 1, 2 and 4
long-lived ``batch-processor worker`` processes on a loopback nats-server (started by the
project's scripts). Printed per run: wall seconds of the batch, CPU seconds (user + sys) of
the coordinator and of the workers while the batch ran (read from /proc: the workers are
warm, started and ready before the batch), peak RSS, and per shard its worker, seconds and
the shard's own timings (load, dbt build, upload) from the batch report. Every sharded
dataset is checked to hold the same rows as the single-process one.

    .venv/bin/python benchmarks/scale_out.py [--sites 4] [--days 30] [--workers 1,2,4]
        [--data-dir /tmp/bp-bench-scale-out]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from batch_processor import devservers
from batch_processor.reader import read_dataset
from batch_processor.telemetry.generator import generate_demo_data

CLI = str(Path(sys.executable).with_name("batch-processor"))
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_of(pid: int) -> float:
    """User + system CPU seconds of a live process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_of(pid: int) -> float:
    """Peak RSS (MB) of a live process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def row_hash(location: Path) -> tuple[int, str]:
    rows = sorted(map(repr, read_dataset(location).fetchall()))
    return len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest()


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float, float, int]:
    """Wall, CPU (user + sys) and peak RSS (MB) of this one process; its exit code."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)  # this child's own usage, not the maximum
    process.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if process.returncode not in (0, 3):
        sys.exit(f"{' '.join(command)} failed ({process.returncode}):\n{output[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode


def sharded(
    data: Path, batch: Path, url: str, workers: int, env: dict[str, str]
) -> dict[str, object]:
    run_dir = data / f"workers-{workers}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    processes = []
    for number in range(workers):
        log = (run_dir / f"worker-{number}.log").open("w")
        processes.append(
            subprocess.Popen(
                [
                    CLI,
                    "worker",
                    "--nats",
                    url,
                    "--warehouse",
                    str(run_dir / f"crm-{number}.duckdb"),
                ],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
    for number, process in enumerate(processes):
        deadline = time.monotonic() + 120
        while "worker ready" not in (run_dir / f"worker-{number}.log").read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                sys.exit((run_dir / f"worker-{number}.log").read_text())
            time.sleep(0.2)
    workers_before = [cpu_of(p.pid) for p in processes]
    output = run_dir / "output"
    wall, cpu, rss, _ = timed(
        [CLI, "telemetry", "run", "--input", str(batch), "--output", str(output), "--workers", url],
        env,
    )
    workers_cpu = [cpu_of(p.pid) - b for p, b in zip(processes, workers_before, strict=True)]
    workers_rss = max(rss_of(p.pid) for p in processes)
    for process in processes:
        process.send_signal(signal.SIGTERM)
    for process in processes:
        process.wait(timeout=120)
    manifest = json.loads((output / "manifests" / "current.json").read_text())
    report = json.loads(
        next((output / "reports").glob(f"batch_report_*_{manifest['batch_id']}.json")).read_text()
    )
    return {
        "workers": workers,
        "wall_s": wall,
        "coordinator_cpu_s": cpu,
        "coordinator_rss_mb": rss,
        "workers_cpu_s": sum(workers_cpu),
        "workers_rss_mb": workers_rss,
        "shards": report["shards"],
        "output": output,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/bp-bench-scale-out"))
    args = parser.parse_args()
    data: Path = args.data_dir
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    made = generate_demo_data(
        data / "in",
        sites=args.sites,
        days=args.days,
        interval_minutes=1,
        files_per_day=1,
        malformed_files=False,
        seed=42,
    )
    print(
        f"batch: {made.files} files, {made.rows:,} rows, {made.bytes / 1e6:.1f} MB, "
        f"{args.sites} sites"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_PROCESSOR_")}
    env["BATCH_PROCESSOR_QUALITY_REPORT"] = "false"

    single = data / "single"
    wall, cpu, rss, _ = timed(
        [CLI, "telemetry", "run", "--input", str(made.out_dir), "--output", str(single)], env
    )
    expected = row_hash(single)
    print(f"single process (cold CLI): wall {wall:.1f} s, CPU {cpu:.1f} s, peak RSS {rss:.0f} MB")
    print(f"  rows {expected[0]:,}")

    with devservers.nats_server() as url:
        for workers in [int(w) for w in args.workers.split(",")]:
            found = sharded(data, made.out_dir, url, workers, env)
            same = row_hash(found["output"]) == expected  # type: ignore[arg-type]
            total = found["coordinator_cpu_s"] + found["workers_cpu_s"]  # type: ignore[operator]
            print(
                f"{workers} worker(s): wall {found['wall_s']:.1f} s "
                f"({wall / found['wall_s']:.2f}x the single process), CPU {total:.1f} s "  # type: ignore[operator]
                f"(coordinator {found['coordinator_cpu_s']:.1f}, workers "
                f"{found['workers_cpu_s']:.1f}; {total / cpu:.2f}x the single process), peak "
                f"RSS coordinator {found['coordinator_rss_mb']:.0f} MB, worker "
                f"{found['workers_rss_mb']:.0f} MB; same rows: {same}"
            )
            for shard in found["shards"]:  # type: ignore[attr-defined]
                timings = ", ".join(f"{k} {v:.1f}" for k, v in (shard["timings_s"] or {}).items())
                print(
                    f"  shard {shard['site_id']}: {shard['seconds']:.1f} s on {shard['worker']} "
                    f"(attempt {shard['attempt']}; {timings})"
                )
            if not same:
                sys.exit("the sharded dataset differs from the single-process one")


if __name__ == "__main__":
    main()
