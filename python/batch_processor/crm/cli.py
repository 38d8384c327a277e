"""``batch-processor worker``, ``batch-processor enqueue`` and ``batch-processor crm …``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from batch_processor.errors import ConfigError, RunFailedError
from batch_processor.exit_codes import ExitCode
from batch_processor.paths import DEFAULT_WAREHOUSE

DEFAULT_INPUT = Path("crm-in")


def _worker(args: argparse.Namespace) -> int:
    from batch_processor.crm.broker import nats_url
    from batch_processor.crm.worker import run_worker, worker_status

    if args.action == "status":
        print(json.dumps(asyncio.run(worker_status(nats_url(args.nats))), indent=2))
        return ExitCode.OK

    warehouse: Path = args.warehouse or DEFAULT_WAREHOUSE
    work: Path = args.work or warehouse.parent / "crm-work"
    run_worker(nats_url(args.nats), warehouse, args.input, work)
    return ExitCode.OK


async def _enqueue_once(args: argparse.Namespace) -> int:
    from batch_processor.crm.broker import build_broker, enqueue, nats_url
    from batch_processor.crm.events import CompletionEvent
    from batch_processor.crm.tasks import TASKS

    task = TASKS[args.task]
    broker = build_broker(nats_url(args.nats))
    await broker.startup()
    try:
        events: asyncio.Queue[CompletionEvent] = asyncio.Queue()

        async def collect(message: object) -> None:
            events.put_nowait(CompletionEvent.model_validate_json(message.data))  # type: ignore[attr-defined]

        if args.wait:
            await broker.client.subscribe(task.subject, cb=collect)
        kwargs = {"input_dir": str(args.input.resolve())} if args.input else {}
        started = time.monotonic()
        task_id = await enqueue(broker, task.name, **kwargs)
        print(f"enqueued {task.name}: task {task_id}")
        if not args.wait:
            return ExitCode.OK
        deadline = started + args.wait
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = await asyncio.wait_for(events.get(), timeout=left)
            except TimeoutError:
                break
            if event.task_id == task_id:
                seconds = time.monotonic() - started
                print(json.dumps({**event.model_dump(mode="json"), "seconds": round(seconds, 3)}))
                return ExitCode.OK if event.status == "ok" else ExitCode.FAILED
        raise RunFailedError(f"no completion event for task {task_id} within {args.wait:g} s")
    finally:
        await broker.shutdown()


def _enqueue(args: argparse.Namespace) -> int:
    from batch_processor.crm.tasks import TASKS

    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; tasks: {', '.join(TASKS)}")
    while True:
        code = asyncio.run(_enqueue_once(args))
        if not args.every:
            return code
        time.sleep(args.every)


def _generate(args: argparse.Namespace) -> int:
    from batch_processor.crm.generator import generate_crm_exports

    made = generate_crm_exports(
        args.out, customers=args.customers, orders=args.orders, leads=args.leads, seed=args.seed
    )
    print(f"wrote {made.rows} to {made.folder}")
    return ExitCode.OK


def _parity(args: argparse.Namespace) -> int:
    from batch_processor.crm.parity import check_parity

    problems = check_parity(args.warehouse or DEFAULT_WAREHOUSE, args.tables)
    for problem in problems[:50]:
        print(f"  {problem}")
    print("parity: ok" if not problems else f"parity: {len(problems)} difference(s)")
    return ExitCode.OK if not problems else ExitCode.FAILED


def add_crm_commands(domains: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    nats_help = "NATS server (default $BATCH_PROCESSOR_NATS_URL or nats://127.0.0.1:4222)"
    worker = domains.add_parser(
        "worker",
        help="serve the CRM tasks from NATS (long-lived); `worker status` shows the queue "
        "depth and every live worker",
    )
    worker.add_argument(
        "action",
        nargs="?",
        choices=["serve", "status"],
        default="serve",
        help="serve (default): run a worker until SIGTERM, which lets the task in flight "
        "finish; status: print the queue and the workers' status as JSON",
    )
    worker.add_argument("--nats", default=None, help=nats_help)
    worker.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    worker.add_argument(
        "--input", type=Path, default=DEFAULT_INPUT, help="default CRM export folder"
    )
    worker.add_argument("--work", type=Path, default=None, help="dbt target folders")
    worker.set_defaults(handler=_worker)

    enqueue = domains.add_parser("enqueue", help="send a CRM task to the workers")
    enqueue.add_argument("task", help="crm.orders, crm.customers, crm.leads, crm.customer_segments")
    enqueue.add_argument("--input", type=Path, default=None, help="export folder for this run")
    enqueue.add_argument("--nats", default=None, help=nats_help)
    enqueue.add_argument(
        "--wait",
        type=float,
        default=0,
        metavar="SECONDS",
        help="wait this long for the task's completion event and print it",
    )
    enqueue.add_argument(
        "--every",
        type=float,
        default=0,
        metavar="SECONDS",
        help="schedule: enqueue again every SECONDS until interrupted",
    )
    enqueue.set_defaults(handler=_enqueue)

    crm = domains.add_parser("crm", help="CRM data: generate exports, check parity")
    commands = crm.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write CRM exports (CSV) for a seed")
    gen.add_argument("--out", type=Path, required=True, help="folder to write into")
    gen.add_argument("--customers", type=int, default=1000)
    gen.add_argument("--orders", type=int, default=1000)
    gen.add_argument("--leads", type=int, default=1000)
    gen.add_argument("--seed", type=int, default=1)
    gen.set_defaults(handler=_generate)
    parity = commands.add_parser(
        "parity",
        help="recompute the marts' key figures (pyarrow) from every export file the "
        "warehouse has taken in, and compare",
    )
    parity.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    parity.add_argument(
        "--tables", nargs="+", default=["orders", "customers", "leads"], help="what to check"
    )
    parity.set_defaults(handler=_parity)
