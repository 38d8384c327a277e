"""The batch-processor command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from batch_processor import __version__
from batch_processor.cli_common import (
    add_global_options,
    command,
    dataset_output_options,
    generate_command,
    lock_timeout_option,
    settings_flags,
)
from batch_processor.config import (
    CONFIG_ENV,
    ENV_PREFIX,
    DatasetSettings,
    PipelineSettings,
    TelemetryConfig,
    load_settings,
)
from batch_processor.crm.cli import add_crm_commands
from batch_processor.errors import (
    BatchProcessorError,
    ConfigError,
    RunFailedError,
)
from batch_processor.exit_codes import (
    EXIT_CODES_HELP,
    GROUP_EXIT_CODES_HELP,
    ExitCode,
)
from batch_processor.logs import configure_logging
from batch_processor.papers.cli import add_papers_commands
from batch_processor.products.cli import add_products_commands
from batch_processor.progress import show_dbt_nodes
from batch_processor.telemetry.generator import DEFAULT_START
from batch_processor.telemetry.loader import LoadSummary

log = logging.getLogger("batch_processor")


def _telemetry_generate(args: argparse.Namespace, settings: PipelineSettings) -> int:
    from batch_processor.telemetry.generator import generate_demo_data

    batch = generate_demo_data(
        args.output,
        sites=args.sites,
        days=args.days,
        seed=args.seed,
        interval_minutes=args.interval_minutes,
        files_per_day=args.files_per_day,
        malformed_files=not args.no_malformed,
        start=datetime.combine(args.start, datetime.min.time(), tzinfo=UTC),
        site_ids=args.site_id,
    )
    print(
        f"generated {batch.files} files ({batch.rows:,} rows, {batch.bytes / 1e6:.1f} MB) "
        f"under {batch.out_dir}; ground truth: {batch.ground_truth}"
    )
    return ExitCode.OK


def _telemetry_run(args: argparse.Namespace, config: TelemetryConfig) -> int:
    from batch_processor.telemetry.pipeline import run_telemetry

    if args.workers:
        from batch_processor.telemetry.sharded import run_sharded

        if args.site or args.dry_run or args.rebuild_all:
            raise ConfigError("--workers does not combine with --site, --dry-run or --rebuild-all")
        result = run_sharded(config, args.input, args.output, nats_url=args.workers)
    else:
        result = run_telemetry(
            config,
            args.input,
            args.output,
            only_site=args.site,
            dry_run=args.dry_run,
            rebuild_all=args.rebuild_all,
        )
    print(f"batch {result.batch_id}" + (" (dry run: nothing committed)" if result.dry_run else ""))
    if result.load is not None:
        _print_load_summary(result.load)
    if result.accounting is not None:
        _print_accounting(result.accounting)
    if result.commit is not None:
        manifest = result.commit.manifest
        flags = manifest["statistics"]["quality_flags_distribution"]
        written = sum(f["rows"] for f in manifest["written_files"])
        print(
            f"  written: {len(manifest['written_files'])} file(s), {written:,} rows; "
            f"superseded: {len(manifest['superseded_files'])} file(s)"
        )
        print(
            f"  dataset: {manifest['statistics']['total_rows']:,} rows in "
            f"{len(manifest['dataset_files'])} file(s); flags: "
            + (", ".join(f"{k} {v:,}" for k, v in flags.items()) or "none")
        )
        print(f"  manifest: {result.dataset_current}")
    print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"  report: {result.report_path}")
    if result.quality_report_path is not None:
        print(f"  quality report: {result.quality_report_path}")
    return result.exit_code


def _telemetry_report(args: argparse.Namespace, settings: DatasetSettings) -> int:
    from batch_processor.telemetry.quality_report import write_quality_report

    path = write_quality_report(settings.output_paths(args.output), args.to)
    print(f"quality report: {path}")
    return ExitCode.OK


def _repair(args: argparse.Namespace, settings: DatasetSettings) -> int:
    from batch_processor.dataset_commit import repair_current

    manifest = repair_current(settings.output_paths(args.output), args.batch)
    print(
        f"current.json now points at batch {manifest.get('batch_id')} "
        f"({len(manifest.get('dataset_files', []))} file(s), created {manifest.get('created_at')})"
    )
    return ExitCode.OK


def _verify(args: argparse.Namespace, settings: DatasetSettings) -> int:
    from batch_processor.telemetry.verify import verify_output

    report = verify_output(settings.output_paths(args.output))
    print(f"batch {report.batch_id}: {report.files_checked} file(s) checked")
    for problem in report.problems:
        print(f"  problem: {problem}")
    for orphan in report.orphans:
        print(f"  orphan (not in the current manifest): {orphan}")
    print("  ok" if report.ok else "  NOT OK")
    return ExitCode.OK if report.ok else ExitCode.FAILED


def _telemetry_load(args: argparse.Namespace, config: TelemetryConfig) -> int:
    import uuid

    from batch_processor.telemetry.loader import TelemetryLoader

    summary = TelemetryLoader(config, str(uuid.uuid4())).load(args.input, only_site=args.site)
    _print_load_summary(summary)
    print(f"  warehouse: {config.warehouse} (now run: dbt build)")
    return ExitCode.COMPLETED_WITH_REJECTS if summary.has_rejects else ExitCode.OK


def _print_load_summary(load: LoadSummary) -> None:
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(load.by_status.items()))
    print(f"  files: {load.files_total} ({statuses})")
    print(
        f"  rows read: {load.rows_read:,}; rows rejected: {load.rows_rejected:,}; "
        f"lines swallowed by quoting errors: {load.lines_swallowed:,}"
    )
    for relative, reason in load.set_aside:
        print(f"  set aside / partial: {relative}: {reason}")


_LISTED = 5  # lines of detail the summary prints per kind; the report has all


def _print_accounting(accounting: dict[str, Any]) -> None:
    totals = accounting["ledger"]["totals"]
    cells = totals["cells"]
    nulled = sum(v for k, v in cells.items() if k.startswith("nulled_"))
    print(
        f"  cells: {cells.get('total', 0):,} = kept {cells.get('kept', 0):,} + nulled {nulled:,}"
        f" + superseded {cells.get('superseded', 0):,}"
        f" + repeated in file {cells.get('duplicate_in_file', 0):,}"
        f" + conflict lost {cells.get('conflict_lost', 0):,} + blank {cells.get('blank', 0):,}"
        f" + unmapped {cells.get('unmapped', 0):,} + in untimed rows"
        f" {cells.get('in_untimed_rows', 0):,}"
        + ("" if totals["balanced"] else "  NOT BALANCED: " + ", ".join(totals["unbalanced_files"]))
    )
    for entry in accounting["ledger"]["files"]:
        if entry["rows"]["bad_timestamp_rows"]:
            print(
                f"  unparseable timestamps: {entry['rows']['bad_timestamp_rows']:,} row(s) of "
                f"{entry['relative_path']}; their cells are not used"
            )
    superseded = accounting["superseded_cells"]
    if superseded:
        replaced = sum(e["cells"] for e in superseded)
        changed = sum(e["changed_cells"] for e in superseded)
        print(
            f"  superseded: {replaced:,} cell(s) in {len(superseded)} file pair(s), "
            f"{changed:,} with another value (the report lists every pair)"
        )
        for entry in sorted(superseded, key=lambda e: -e["changed_cells"])[:_LISTED]:
            if entry["changed_cells"]:
                print(
                    f"    {entry['changed_cells']:,} changed cell(s) of {entry['losing_file']} "
                    f"replaced by {entry['winning_file']}"
                )
    conflicts = accounting["within_file_conflicts"]
    if conflicts["count"]:
        first = conflicts["first"][0]
        print(
            f"  conflicting duplicates inside files: {conflicts['count']:,} cell(s), the last "
            f"line won (first: {first['file']} lines {first['lines']} "
            f"{first['device_id']}.{first['point_id']} "
            f"values {first['values']})"
        )
    gaps = accounting["gaps"]
    absent = [g for g in gaps if not g["published_as_empty_rows"]]
    if gaps:
        print(
            f"  gaps: {len(gaps)} ({len(gaps) - len(absent)} published as empty rows, "
            f"{len(absent)} too long and absent from the dataset)"
        )
    for gap in absent[:_LISTED]:
        print(
            f"    absent: {gap['site_id']} {gap['start']} -> {gap['end']} "
            f"({gap['duration_hours']:g} h)"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-processor",
        description="Batch ETL on DuckDB and dbt: telemetry, products, papers and CRM "
        f"pipelines. Settings, lowest first: defaults, the config file (--config FILE or "
        f"${CONFIG_ENV}), {ENV_PREFIX}<SETTING> environment variables, flags.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(parser, top_level=True)
    domains = parser.add_subparsers(dest="domain", required=True, metavar="COMMAND")

    telemetry = domains.add_parser(
        "telemetry", help="chiller-plant telemetry pipeline", epilog=GROUP_EXIT_CODES_HELP
    )
    commands = telemetry.add_subparsers(dest="command", required=True)

    gen = generate_command(
        commands,
        help="write demo CSVs with injected faults and a ground-truth file",
        handler=_telemetry_generate,
    )
    gen.add_argument("--sites", type=int, default=2, help="number of sites (from the sites seed)")
    gen.add_argument(
        "--site-id",
        action="append",
        metavar="SITE",
        help="generate this site of the sites seed (repeatable; overrides --sites)",
    )
    gen.add_argument("--days", type=int, default=2, help="days of data per site")
    gen.add_argument("--seed", type=int, default=42, help="random seed; same seed, same files")
    gen.add_argument(
        "--interval-minutes",
        type=int,
        choices=[1, 5],
        default=None,
        help="raw logging interval (default: each site's raw_interval_s)",
    )
    gen.add_argument("--files-per-day", type=int, default=4, help="files per site and day")
    gen.add_argument("--no-malformed", action="store_true", help="do not add malformed files")
    gen.add_argument(
        "--start",
        type=date.fromisoformat,
        default=DEFAULT_START.date(),
        help=f"first day (UTC), YYYY-MM-DD (default {DEFAULT_START.date()})",
    )

    run = command(
        commands,
        "run",
        help="load a folder of raw CSVs, build the telemetry models, publish the dataset",
        handler=_telemetry_run,
        settings=TelemetryConfig,
    )
    run.add_argument("--input", type=Path, required=True, help="folder of raw CSVs (read only)")
    dataset_output_options(run, "the dataset", work_dir=True)
    run.add_argument(
        "--workers",
        default=None,
        metavar="NATS_URL",
        help="shard the batch by site over the workers on this NATS server (`batch-processor "
        "worker --nats URL`; each site is built in its own shard warehouse) and commit one "
        "manifest once every shard succeeded",
    )
    run.add_argument(
        "--shard-dir",
        dest="shard_dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --workers: the folder of the site shards (their warehouses), on a volume "
        "every worker sees (setting shard_dir; default <output or work folder>/_shards)",
    )
    run.add_argument("--site", default=None, help="load only this site's files")
    run.add_argument(
        "--stop-on-error",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fail the batch (commit nothing) at the first bad file (setting stop_on_error; "
        "--no-stop-on-error overrides a config file's true)",
    )
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="load, build and test, but commit nothing and forget the batch",
    )
    run.add_argument(
        "--rebuild-all",
        action="store_true",
        help="rebuild and republish every partition from the warehouse's history (once after "
        "an upgrade that changes the published schema); the input folder may be empty",
    )
    lock_timeout_option(run, "another run writing the same output")

    report = command(
        commands,
        "report",
        help="write the HTML quality report of a published dataset (also written after each "
        "committed batch): per site every channel with its flags, gaps, a daily flag heat map, "
        "and the batch ledger; self-contained, it opens offline",
        handler=_telemetry_report,
        epilog="exit codes: 0 written; 1 failed (e.g. no dataset is published there, or its "
        "current.json cannot be read); 2 usage error",
        settings=DatasetSettings,
        config=False,
    )
    dataset_output_options(report, "the published telemetry dataset", work_dir=True)
    report.add_argument(
        "--to",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the page here (default <output or work folder>/reports/quality_report.html; "
        "an s3:// dataset also gets it as <prefix>/reports/quality_report.html)",
    )

    load = command(
        commands,
        "load",
        help="only register a folder of raw CSVs in the warehouse (no dbt; then: dbt build)",
        handler=_telemetry_load,
        settings=TelemetryConfig,
    )
    load.add_argument("--input", type=Path, required=True, help="folder of raw CSVs (read only)")
    load.add_argument("--site", default=None, help="load only this site's files")
    add_products_commands(domains)
    add_papers_commands(domains)
    add_crm_commands(domains)

    verify = command(
        domains,
        "verify",
        help="re-check every file of the current manifest; list orphans",
        handler=_verify,
        epilog="exit codes: 0 everything matches; 1 a problem or an orphan was found; "
        "2 usage error",
        settings=DatasetSettings,
        config=False,
    )
    dataset_output_options(
        verify, "a published dataset (telemetry, products or papers)", work_dir=True
    )

    repair = command(
        domains,
        "repair",
        help="rebuild a lost, unreadable or edited manifests/current.json from the manifests",
        handler=_repair,
        epilog=(
            "exit codes: 0 current.json points at the newest manifest whose checksum verifies "
            "and whose files are all present; 1 no such manifest (nothing was changed); "
            "2 usage error"
        ),
        settings=DatasetSettings,
        config=False,
    )
    dataset_output_options(
        repair, "a published dataset (telemetry, products or papers)", work_dir=True
    )
    repair.add_argument(
        "--batch",
        default=None,
        metavar="BATCH_ID",
        help="the batch whose manifest was current (default: the newest valid one; needed on "
        "S3 when there are several, since another machine's batch may have died before its "
        "commit)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    configure_logging(args.log_format or "text", level)
    show_dbt_nodes(args.dbt_nodes)
    try:
        settings = load_settings(
            args.settings, getattr(args, "config", None), **settings_flags(args, args.settings)
        )
        if settings.log_format != (args.log_format or "text"):  # from the environment or file
            configure_logging(settings.log_format, level)
        return int(args.handler(args, settings))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return ExitCode.USAGE
    except RunFailedError as exc:
        log.error("run failed, nothing committed: %s", exc)
        return ExitCode.FAILED
    except BatchProcessorError as exc:
        log.error("%s", exc)
        return ExitCode.FAILED
    except OSError as exc:  # a full disk, a folder that may not be written: say which file
        where = f"{exc.filename}: " if exc.filename else ""
        log.error("%s%s", where, exc.strerror or exc)
        return ExitCode.FAILED
    except KeyboardInterrupt:
        log.error("interrupted")
        return 130
    except Exception as exc:  # an unexpected error: one clear line, the traceback at debug level
        log.error(
            "unexpected error: %s: %s (run with -v for the traceback)", type(exc).__name__, exc
        )
        log.debug("traceback", exc_info=True)
        return ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
