"""``batch-processor worker``, ``batch-processor enqueue`` and ``batch-processor crm …``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from batch_processor.cli_common import SubParsers, command, generate_command, lock_timeout_option
from batch_processor.config import CrmSettings, PipelineSettings
from batch_processor.errors import ConfigError, RunFailedError
from batch_processor.exit_codes import GROUP_EXIT_CODES_HELP, ExitCode

WORKER_EXIT_HELP = (
    "exit codes: 0 the worker drained and stopped (SIGTERM), or status printed; "
    "1 failed (e.g. NATS unreachable); 2 usage or configuration error"
)
ENQUEUE_EXIT_HELP = (
    "exit codes: 0 enqueued (with --wait: the task's completion event says ok); 1 the task "
    "failed, or no completion event came within --wait, or NATS is unreachable; "
    "2 usage or configuration error (e.g. an unknown task)"
)
RUN_EXIT_HELP = (
    "exit codes: 0 the task succeeded (its completion event says ok); 1 it failed (the event "
    "says why; nothing of it was merged); 2 usage or configuration error"
)
PARITY_EXIT_HELP = (
    "exit codes: 0 the marts match the independent computation; 1 differences (listed) or "
    "failed; 2 usage or configuration error"
)


def _worker(args: argparse.Namespace, settings: CrmSettings) -> int:
    from batch_processor.crm.worker import run_worker, worker_status

    if args.action == "status":
        print(json.dumps(asyncio.run(worker_status(settings.nats_url)), indent=2))
        return ExitCode.OK

    warehouse = settings.warehouse_for()
    work: Path = settings.work_dir or warehouse.parent / "crm-work"
    run_worker(settings.nats_url, warehouse, settings.input_dir, work, settings.lock_timeout_s)
    return ExitCode.OK


async def _enqueue_once(args: argparse.Namespace, settings: CrmSettings) -> int:
    from batch_processor.crm.broker import build_broker, enqueue
    from batch_processor.crm.events import CompletionEvent
    from batch_processor.crm.tasks import TASKS

    task = TASKS[args.task]
    broker = build_broker(settings.nats_url)
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
                line = json.dumps({**event.model_dump(mode="json"), "seconds": round(seconds, 3)})
                # one write: print() writes the text and its newline apart, and unbuffered (as
                # under PYTHONUNBUFFERED) another process sharing the terminal can land between
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
                return ExitCode.OK if event.status == "ok" else ExitCode.FAILED
        raise RunFailedError(f"no completion event for task {task_id} within {args.wait:g} s")
    finally:
        await broker.shutdown()


def _enqueue(args: argparse.Namespace, settings: CrmSettings) -> int:
    from batch_processor.crm.tasks import TASKS

    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; tasks: {', '.join(TASKS)}")
    while True:
        code = asyncio.run(_enqueue_once(args, settings))
        if not args.every:
            return code
        time.sleep(args.every)


def _generate(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from batch_processor.crm.generator import generate_crm_exports

    made = generate_crm_exports(
        args.output, customers=args.customers, orders=args.orders, leads=args.leads, seed=args.seed
    )
    print(f"wrote {made.rows} to {made.folder}")
    return ExitCode.OK


def _run(args: argparse.Namespace, settings: CrmSettings) -> int:
    from batch_processor.crm.etl import run_crm_task
    from batch_processor.crm.tasks import TASKS

    if args.task not in TASKS:
        raise ConfigError(f"unknown task {args.task!r}; tasks: {', '.join(TASKS)}")
    warehouse = settings.warehouse_for()
    work: Path = settings.work_dir or warehouse.parent / "crm-work"
    folder: Path = args.input or settings.input_dir
    event = run_crm_task(
        TASKS[args.task],
        folder.absolute(),
        warehouse.absolute(),
        work.absolute(),
        lock_timeout_s=settings.lock_timeout_s,
    )
    print(event.model_dump_json())
    return ExitCode.OK if event.status == "ok" else ExitCode.FAILED


def _parity(args: argparse.Namespace, settings: CrmSettings) -> int:
    from batch_processor.crm.parity import check_parity

    problems = check_parity(settings.warehouse_for(), args.tables)
    for problem in problems[:50]:
        print(f"  {problem}")
    print("parity: ok" if not problems else f"parity: {len(problems)} difference(s)")
    return ExitCode.OK if not problems else ExitCode.FAILED


def _nats_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--nats",
        dest="nats_url",
        default=None,
        metavar="URL",
        help="NATS server (setting nats_url, $BATCH_PROCESSOR_NATS_URL; default "
        f"{CrmSettings.model_fields['nats_url'].default})",
    )


def add_crm_commands(domains: SubParsers) -> None:
    worker = command(
        domains,
        "worker",
        help="serve the CRM tasks from NATS (long-lived); `worker status` shows the queue "
        "depth and every live worker",
        handler=_worker,
        settings=CrmSettings,
        epilog=WORKER_EXIT_HELP,
        dbt_nodes=False,
    )
    worker.add_argument(
        "action",
        nargs="?",
        choices=["serve", "status"],
        default="serve",
        help="serve (default): run a worker until SIGTERM, which lets the task in flight "
        "finish; status: print the queue and the workers' status as JSON",
    )
    _nats_option(worker)
    lock_timeout_option(worker, "the warehouse another task or command holds")
    worker.add_argument(
        "--input",
        dest="input_dir",
        type=Path,
        default=None,
        help="default CRM export folder (setting input_dir; default crm-in)",
    )
    worker.add_argument(
        "--work",
        dest="work_dir",
        type=Path,
        default=None,
        help="dbt target folders (setting work_dir; default <warehouse dir>/crm-work)",
    )

    enqueue = command(
        domains,
        "enqueue",
        help="send a CRM task to the workers",
        handler=_enqueue,
        settings=CrmSettings,
        epilog=ENQUEUE_EXIT_HELP,
        warehouse=False,
    )
    enqueue.add_argument("task", help="crm.orders, crm.customers, crm.leads, crm.customer_segments")
    enqueue.add_argument("--input", type=Path, default=None, help="export folder for this run")
    _nats_option(enqueue)
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

    crm = domains.add_parser(
        "crm", help="CRM data: generate exports, check parity", epilog=GROUP_EXIT_CODES_HELP
    )
    commands = crm.add_subparsers(dest="command", required=True)
    gen = generate_command(commands, help="write CRM exports (CSV) for a seed", handler=_generate)
    gen.add_argument("--customers", type=int, default=1000)
    gen.add_argument("--orders", type=int, default=1000)
    gen.add_argument("--leads", type=int, default=1000)
    gen.add_argument("--seed", type=int, default=1)
    run = command(
        commands,
        "run",
        help="run one CRM task in this process, without NATS (what a worker does with it), "
        "and print its completion event",
        handler=_run,
        settings=CrmSettings,
        epilog=RUN_EXIT_HELP,
    )
    run.add_argument("task", help="crm.orders, crm.customers, crm.leads, crm.customer_segments")
    run.add_argument(
        "--input", type=Path, default=None, help="export folder (default: setting input_dir)"
    )
    lock_timeout_option(run, "the warehouse another task or command holds")
    parity = command(
        commands,
        "parity",
        help="recompute the marts' key figures (pyarrow) from every export file the "
        "warehouse has taken in, and compare",
        handler=_parity,
        settings=CrmSettings,
        epilog=PARITY_EXIT_HELP,
    )
    parity.add_argument(
        "--tables", nargs="+", default=["orders", "customers", "leads"], help="what to check"
    )
