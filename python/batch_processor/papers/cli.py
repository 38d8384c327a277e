"""The ``batch-processor papers …`` commands."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from batch_processor.cli_common import (
    SubParsers,
    command,
    dataset_output_options,
    generate_command,
    lock_timeout_option,
)
from batch_processor.config import PapersSettings, PipelineSettings
from batch_processor.errors import ConfigError
from batch_processor.exit_codes import GROUP_EXIT_CODES_HELP, ExitCode

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


def _handle_event(args: argparse.Namespace, settings: PapersSettings) -> int:
    from batch_processor.papers.events import objects_of_event
    from batch_processor.papers.pipeline import process_objects

    try:
        event = json.loads(Path(args.event).read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise ConfigError(f"{args.event}: cannot read the event as JSON: {error}") from error
    paths = settings.output_paths(args.output)
    result = process_objects(
        objects_of_event(event),
        settings.warehouse_for_dataset(paths),
        paths,
        dynamodb_table=settings.table_of_sink,
        lock_timeout_s=settings.lock_timeout_s,
    )
    return _finish(result.result_json())


def _load(args: argparse.Namespace, settings: PapersSettings) -> int:
    from batch_processor.papers.objects import ObjectRef
    from batch_processor.papers.pipeline import process_objects

    paths = settings.output_paths(args.output)
    result = process_objects(
        [ObjectRef(args.input)],
        settings.warehouse_for_dataset(paths),
        paths,
        dynamodb_table=settings.table_of_sink,
        lock_timeout_s=settings.lock_timeout_s,
    )
    return _finish(result.result_json())


def _generate(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from batch_processor.papers.generator import generate_papers_feed

    if args.event and not args.upload:
        raise ConfigError("--event names the S3 event of an --upload; give --upload s3://…")

    feed = generate_papers_feed(args.output, entries=args.entries, seed=args.seed)
    size = feed.path.stat().st_size / 1e6
    print(f"wrote {feed.entries:,} entries ({feed.papers:,} papers) to {feed.path} ({size:.1f} MB)")
    if args.upload:
        _upload(feed.path, args.upload, args.event)
    return ExitCode.OK


def _upload(path: Path, target: str, event_file: Path | None) -> None:
    """Put ``path`` at ``target`` (s3://bucket/key; the bucket is made if missing) and write
    the S3 event that upload sends to ``event_file``: a way to try ``handle-event`` against
    an S3-compatible server (``scripts/s3.sh``) or a real bucket."""
    from batch_processor.papers.events import s3_event
    from batch_processor.papers.objects import ObjectRef, s3_client

    ref = ObjectRef(target)
    if not ref.is_s3:
        raise ConfigError(f"--upload {target!r}: give s3://bucket/key")
    bucket, key = ref.bucket_and_key
    client = s3_client()
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError as error:
        if error.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
            raise  # e.g. 403: the bucket exists and is not ours to write
        region = client.meta.region_name
        client.create_bucket(
            Bucket=bucket,
            **(
                {"CreateBucketConfiguration": {"LocationConstraint": region}}
                if region and region != "us-east-1"
                else {}
            ),
        )
    client.upload_file(str(path), bucket, key)
    print(f"uploaded it to {target}")
    if event_file is not None:
        event_file.write_text(json.dumps(s3_event(bucket, key), indent=2) + "\n", encoding="utf-8")
        print(f"wrote the S3 event of that upload to {event_file}")


def add_papers_commands(domains: SubParsers) -> None:
    papers = domains.add_parser(
        "papers",
        help="papers pipeline (S3 events, Atom / JSON lines)",
        epilog=GROUP_EXIT_CODES_HELP,
    )
    commands = papers.add_subparsers(dest="command", required=True)
    for name, handler, help_text in (
        ("handle-event", _handle_event, "load every object an S3 event (JSON file) names"),
        ("load", _load, "load one object: a local path or s3://bucket/key"),
    ):
        parser = command(
            commands,
            name,
            help=help_text,
            handler=handler,
            settings=PapersSettings,
            epilog=EXIT_HELP,
        )
        if name == "handle-event":
            parser.add_argument(
                "--event", type=Path, required=True, help="S3 event JSON file (Records[].s3…)"
            )
        else:
            parser.add_argument(
                "--input", required=True, help="PATH or s3://bucket/key (gzip, zstd or plain)"
            )
        dataset_output_options(
            parser, "the Parquet dataset with its manifest (and the results)", work_dir=True
        )
        parser.add_argument(
            "--sink",
            choices=("warehouse", "dynamodb"),
            default=None,
            help="warehouse: the warehouse + Parquet with a manifest (default); dynamodb: the "
            "warehouse (dedup state and outbox) + the DynamoDB table --table (endpoint from the "
            "AWS settings); an item is pending until DynamoDB acknowledged it, so the next run "
            "retries what this one could not write (setting sink)",
        )
        parser.add_argument(
            "--table",
            dest="dynamodb_table",
            default=None,
            help="the DynamoDB table of --sink dynamodb (setting dynamodb_table)",
        )
        lock_timeout_option(parser, "another run holding the output or warehouse")
    gen = generate_command(
        commands,
        help="write a gzipped Atom feed of generated entries",
        handler=_generate,
        output_help="the .xml.gz file to write",
    )
    gen.add_argument("--entries", type=int, default=10_000, help="entries to write")
    gen.add_argument("--seed", type=int, default=1, help="same seed, same file")
    gen.add_argument(
        "--upload",
        metavar="s3://BUCKET/KEY",
        default=None,
        help="also put the file there (the bucket is made if missing; endpoint and "
        "credentials from the AWS settings, e.g. AWS_ENDPOINT_URL)",
    )
    gen.add_argument(
        "--event",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the S3 event of that upload here (for papers handle-event)",
    )
