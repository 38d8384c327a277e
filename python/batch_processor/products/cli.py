"""The ``batch-processor products …`` commands."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

from batch_processor.cli_common import (
    SubParsers,
    command,
    dataset_output_options,
    generate_command,
    lock_timeout_option,
)
from batch_processor.config import PipelineSettings, ProductsSettings
from batch_processor.exit_codes import GROUP_EXIT_CODES_HELP, ExitCode
from batch_processor.products.postgres_source import is_postgres_url

_DEFAULTS = ProductsSettings.model_fields


def _generate(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from batch_processor.products.generator import generate_products_export

    export = generate_products_export(
        args.output,
        rows=args.rows,
        seed=args.seed,
        tie_group=args.tie_group,
        revision=args.revision,
        changed_fraction=args.changed_fraction,
    )
    print(f"wrote {export.rows:,} rows to {export.path}")
    if args.postgres:
        from batch_processor.products.postgres_source import copy_export_into_postgres, redact

        copy_export_into_postgres(args.postgres, export.path, args.postgres_table)
        print(f"copied them into {redact(args.postgres)} table {args.postgres_table}")
    return ExitCode.OK


def _sync(args: argparse.Namespace, settings: ProductsSettings) -> int:
    from batch_processor.products.sync import sync_products

    paths = settings.output_paths(args.output)
    source: str = args.input
    result = sync_products(
        source if is_postgres_url(source) else Path(source),
        settings.warehouse_for_dataset(paths),
        paths,
        limit=settings.limit,
        resume=args.resume,
        since=args.since,
        dry_run=args.dry_run,
        source_name=settings.source_name,
        source_table=settings.source_table,
        lock_timeout_s=settings.lock_timeout_s,
    )
    totals = result.totals()
    head = "dry run (nothing changed): would have " if result.dry_run else ""
    if result.export_unchanged:
        head = "the export is the one the last sync took in, unchanged: "
    print(
        f"products sync {result.sync_id}: {head}{len(result.batches)} batch(es), "
        f"{totals['rows']:,} rows: {totals['inserted']:,} inserted, {totals['updated']:,} updated, "
        f"{totals['unchanged'] + totals['stale']:,} skipped ({totals['unchanged']:,} unchanged, "
        f"{totals['stale']:,} stale), {totals['rejected']:,} rejected, "
        f"{totals['duplicates']:,} duplicate key(s) in a batch, "
        f"{totals['redelivered']:,} redelivered copies"
    )
    for file in result.files:
        if file.status != "loaded":
            print(f"  {file.status}: {file.path}: {file.reason}")
    for batch in result.batches:
        for row in batch.rejected_rows[:5]:
            print(f"  rejected: {row['file']}:{row['line']} (id {row['id']}): {row['reason']}")
    if result.rows_without_cursor:
        print(
            f"  {result.rows_without_cursor:,} row(s) without a usable (id, src_updated_at) "
            f"are never synced; first: {result.first_without_cursor}"
        )
    if result.unsynced_rows:
        first = result.unsynced_detail[0]
        print(
            f"  {result.unsynced_rows:,} row(s) behind the watermark not taken in (first: id "
            f"{first['id']} at {first['src_updated_at']} in {first['file']}:{first['line']}: "
            f"{first['reason']}); take them in with --since {first['src_updated_at']}"
        )
    if result.error:
        print(f"  FAILED: {result.error}")
    if result.manifest_path:
        print(f"  published: {result.manifest_path}")
    print(f"  report: {result.report_path}")
    if result.error:
        return ExitCode.FAILED
    return ExitCode.COMPLETED_WITH_REJECTS if result.has_rejects else ExitCode.OK


def _timestamp(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from error
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def add_products_commands(domains: SubParsers) -> None:
    products = domains.add_parser(
        "products", help="products sync pipeline", epilog=GROUP_EXIT_CODES_HELP
    )
    commands = products.add_subparsers(dest="command", required=True)

    sync = command(
        commands,
        "sync",
        help="upsert the products source into the warehouse, batch by batch",
        handler=_sync,
        settings=ProductsSettings,
    )
    sync.add_argument(
        "--input",
        required=True,
        metavar="DIR|postgresql://…",
        help="a folder of CSV / JSON lines exports, or a PostgreSQL URL (both read only)",
    )
    dataset_output_options(
        sync, "the Parquet snapshot with its manifest (and the sync reports)", work_dir=True
    )
    sync.add_argument(
        "--source-table",
        default=None,
        metavar="[SCHEMA.]TABLE",
        help="the table to read from a PostgreSQL source (setting source_table; default "
        f"{_DEFAULTS['source_table'].default})",
    )
    sync.add_argument(
        "--limit",
        type=int,
        default=None,
        help=f"rows per batch (setting limit; default {_DEFAULTS['limit'].default:,})",
    )
    sync.add_argument(
        "--resume",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="continue after the stored watermark (default); --no-resume starts from the start",
    )
    sync.add_argument(
        "--since",
        type=_timestamp,
        default=None,
        metavar="TIMESTAMP",
        help="take in every row with src_updated_at at or after this ISO 8601 time again "
        "(no offset means UTC), whatever the watermark; the watermark never moves back",
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would be inserted/updated/skipped; change nothing",
    )
    sync.add_argument(
        "--source-name",
        default=None,
        help="the watermark's key, one cursor per source (setting source_name; default "
        f"{_DEFAULTS['source_name'].default})",
    )
    lock_timeout_option(sync, "another sync of the same warehouse")

    gen = generate_command(
        commands, help="write a deterministic products export (CSV)", handler=_generate
    )
    gen.add_argument("--rows", type=int, default=10_000, help="rows to write")
    gen.add_argument("--seed", type=int, default=1, help="same seed, same file")
    gen.add_argument("--tie-group", type=int, default=1, help="rows that share one src_updated_at")
    gen.add_argument(
        "--revision", type=int, default=0, help="0: the catalogue; N > 0: its N-th change export"
    )
    gen.add_argument(
        "--changed-fraction", type=float, default=0.1, help="share of products a revision changes"
    )
    gen.add_argument(
        "--postgres",
        metavar="postgresql://…",
        default=None,
        help="also append the rows to a PostgreSQL table (created if missing)",
    )
    gen.add_argument(
        "--postgres-table",
        default=_DEFAULTS["source_table"].default,
        help=f"that table (default {_DEFAULTS['source_table'].default})",
    )
