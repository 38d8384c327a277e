"""CRM tasks: enqueue -> completion-event time with a warm worker (dbt parsed once), on a real
nats-server with JetStream (scripts/nats.sh). 1,000 orders / customers / leads (the
requirement: < 5 s, < 3 s, < 10 s; the aim: < 1 s each), then 1,000,000 orders.

    .venv/bin/python benchmarks/crm_tasks.py [--repeat 5] [--big-orders 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats

from batch_processor.crm.broker import build_broker, enqueue
from batch_processor.crm.events import CompletionEvent
from batch_processor.crm.generator import generate_crm_exports
from batch_processor.devservers import nats_server

CLI = str(Path(sys.executable).parent / "batch-processor")


async def timed_runs(
    url: str, plan: list[tuple[str, Path]]
) -> list[tuple[str, float, CompletionEvent]]:
    client = await nats.connect(url)
    events: asyncio.Queue[CompletionEvent] = asyncio.Queue()

    async def on_event(message: nats.aio.msg.Msg) -> None:
        events.put_nowait(CompletionEvent.model_validate_json(message.data))

    await client.subscribe("etl.crm.>", cb=on_event)
    broker = build_broker(url)
    await broker.startup()
    results = []
    try:
        for name, folder in plan:
            started = time.monotonic()
            task_id = await enqueue(broker, name, input_dir=str(folder))
            while True:
                event = await asyncio.wait_for(events.get(), timeout=3600)
                if event.task_id == task_id:
                    break
            results.append((name, time.monotonic() - started, event))
            if name == "crm.customers":  # let the listener's follow-up task finish first
                while (await asyncio.wait_for(events.get(), 60)).task != "crm.customer_segments":
                    pass
    finally:
        await broker.shutdown()
        await client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--big-orders", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="crm-bench-") as folder, nats_server() as url:
        work = Path(folder)
        small = generate_crm_exports(work / "small", customers=1000, orders=1000, leads=1000)
        big = generate_crm_exports(
            work / "big", customers=args.big_orders // 10, orders=args.big_orders, leads=1000
        )
        print(f"small: {small.rows}; big: {big.rows}")
        log = (work / "worker.log").open("w")
        worker = subprocess.Popen(
            [CLI, "worker", "--nats", url, "--warehouse", str(work / "w.duckdb"),
             "--input", str(small.folder)],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            started = time.monotonic()
            while "worker ready" not in (work / "worker.log").read_text():
                if worker.poll() is not None:
                    raise SystemExit((work / "worker.log").read_text())
                time.sleep(0.1)
            print(
                f"worker start-up (import dbt, parse the project once): "
                f"{time.monotonic() - started:.1f} s"
            )
            names = ["crm.orders", "crm.customers", "crm.leads"]
            warm = asyncio.run(timed_runs(url, [(n, small.folder) for n in names]))
            print("warm-up: " + ", ".join(f"{n} {s:.2f} s" for n, s, _ in warm))
            plan = [(n, small.folder) for _ in range(args.repeat) for n in names]
            runs = asyncio.run(timed_runs(url, plan))
            for name in names:
                times = [s for n, s, e in runs if n == name]
                statuses = {e.status for n, s, e in runs if n == name}
                rows = next(e.rows for n, s, e in runs if n == name)
                median = statistics.median(times)
                print(
                    f"{name} ({rows:,} rows): enqueue -> event median {median:.2f} s, "
                    f"max {max(times):.2f} s over {len(times)} runs; status {statuses}"
                )
            ((name, seconds, event),) = asyncio.run(timed_runs(url, [("crm.orders", big.folder)]))
            print(f"crm.orders ({event.rows:,} rows, first load): {seconds:.2f} s, {event.status}")
            ((name, seconds, event),) = asyncio.run(timed_runs(url, [("crm.orders", big.folder)]))
            print(f"crm.orders ({event.rows:,} rows, nothing changed): {seconds:.2f} s")
        finally:
            worker.terminate()
            worker.wait(timeout=30)


if __name__ == "__main__":
    main()
