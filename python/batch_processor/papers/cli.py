"""The ``batch-processor papers …`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from batch_processor.errors import ConfigError
from batch_processor.exit_codes import ExitCode
from batch_processor.paths import DEFAULT_WAREHOUSE

EXIT_HELP = (
    "exit codes: 0 completed; 3 completed, but some records, objects or DynamoDB items failed "
    "(see the result's errors; unsent items stay pending for the next run); 1 the batch failed, "
    "nothing published (dbt failed, or a DynamoDB request failed outright, e.g. no such table: "
    "the items stay pending); 2 usage error (e.g. not an S3 event). "
    "The result JSON is printed on stdout; logs go to stderr (--log-format json for JSON logs)."
)


def _finish(result_json: dict[str, object]) -> int:
    print(json.dumps(result_json, indent=2))
    status = result_json["status"]
    if status == "failed":
        return ExitCode.FAILED
    return ExitCode.COMPLETED_WITH_REJECTS if status != "completed" else ExitCode.OK


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    warehouse: Path = args.warehouse or DEFAULT_WAREHOUSE
    return warehouse, args.output or warehouse.parent / "papers"


def _dynamodb_table(args: argparse.Namespace) -> str | None:
    if args.sink == "dynamodb" and not args.table:
        raise ConfigError("--sink dynamodb needs --table NAME")
    if args.table and args.sink != "dynamodb":
        raise ConfigError("--table is for --sink dynamodb")
    return str(args.table) if args.sink == "dynamodb" else None


def _handle_event(args: argparse.Namespace) -> int:
    from batch_processor.papers.events import objects_of_event
    from batch_processor.papers.pipeline import process_objects

    try:
        event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{args.event}: cannot read the event as JSON: {error}") from error
    warehouse, output = _paths(args)
    result = process_objects(
        objects_of_event(event),
        warehouse,
        output,
        dynamodb_table=_dynamodb_table(args),
        lock_timeout_s=args.lock_timeout,
    )
    return _finish(result.result_json())


def _load(args: argparse.Namespace) -> int:
    from batch_processor.papers.objects import ObjectRef
    from batch_processor.papers.pipeline import process_objects

    warehouse, output = _paths(args)
    result = process_objects(
        [ObjectRef(args.source)],
        warehouse,
        output,
        dynamodb_table=_dynamodb_table(args),
        lock_timeout_s=args.lock_timeout,
    )
    return _finish(result.result_json())


def _generate(args: argparse.Namespace) -> int:
    from batch_processor.papers.generator import generate_papers_feed

    feed = generate_papers_feed(args.out, entries=args.entries, seed=args.seed)
    size = feed.path.stat().st_size / 1e6
    print(f"wrote {feed.entries:,} entries ({feed.papers:,} papers) to {feed.path} ({size:.1f} MB)")
    return ExitCode.OK


def add_papers_commands(domains: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    papers = domains.add_parser("papers", help="papers pipeline (S3 events, Atom / JSON lines)")
    commands = papers.add_subparsers(dest="command", required=True)
    for name, handler, help_text in (
        ("handle-event", _handle_event, "load every object an S3 event (JSON file) names"),
        ("load", _load, "load one object: a local path or s3://bucket/key"),
    ):
        command = commands.add_parser(name, help=help_text, epilog=EXIT_HELP)
        if name == "handle-event":
            command.add_argument("event", help="S3 event JSON file (Records[].s3…)")
        else:
            command.add_argument("source", help="PATH or s3://bucket/key (gzip, zstd or plain)")
        command.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
        command.add_argument(
            "--output",
            type=Path,
            default=None,
            help="output folder (default <warehouse dir>/papers)",
        )
        command.add_argument(
            "--sink",
            choices=("warehouse", "dynamodb"),
            default="warehouse",
            help="warehouse: the warehouse + Parquet with a manifest (default); dynamodb: the "
            "warehouse (dedup state and outbox) + the DynamoDB table --table (endpoint from the "
            "AWS settings); an item is pending until DynamoDB acknowledged it, so the next run "
            "retries what this one could not write",
        )
        command.add_argument("--table", default=None, help="the DynamoDB table (--sink dynamodb)")
        command.add_argument(
            "--lock-timeout",
            type=float,
            default=0.0,
            metavar="SECONDS",
            help="wait this long for another run holding the output or warehouse (default 0)",
        )
        command.set_defaults(handler=handler)
    gen = commands.add_parser("generate", help="write a gzipped Atom feed of generated entries")
    gen.add_argument("--out", type=Path, required=True, help="the .xml.gz file to write")
    gen.add_argument("--entries", type=int, default=10_000, help="entries to write")
    gen.add_argument("--seed", type=int, default=1, help="same seed, same file")
    gen.set_defaults(handler=_generate)
