"""The batch-processor command line."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from batch_processor.config import load_telemetry_config
from batch_processor.errors import BatchProcessorError, ConfigError, RunFailedError
from batch_processor.exit_codes import EXIT_CODES_HELP, ExitCode
from batch_processor.logs import configure_logging
from batch_processor.telemetry.loader import LoadSummary

log = logging.getLogger("batch_processor")


def _telemetry_generate(args: argparse.Namespace) -> int:
    from batch_processor.telemetry.generator import generate_demo_data

    batch = generate_demo_data(
        args.out,
        sites=args.sites,
        days=args.days,
        seed=args.seed,
        interval_minutes=args.interval_minutes,
        files_per_day=args.files_per_day,
        malformed_files=not args.no_malformed,
    )
    print(
        f"generated {batch.files} files ({batch.rows:,} rows, {batch.bytes / 1e6:.1f} MB) "
        f"under {batch.out_dir}; ground truth: {batch.ground_truth}"
    )
    return ExitCode.OK


def _telemetry_run(args: argparse.Namespace) -> int:
    from batch_processor.telemetry.pipeline import run_telemetry

    config = load_telemetry_config(
        args.config, warehouse_path=args.warehouse, log_format=args.log_format
    )
    result = run_telemetry(config, args.input, args.output, only_site=args.site)
    print(f"batch {result.batch_id}")
    _print_load_summary(result.load)
    print("  timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    print(f"  warehouse: {config.warehouse_path}")
    print(f"  dbt artifacts: {result.dbt.target_path}")
    return result.exit_code


def _telemetry_load(args: argparse.Namespace) -> int:
    import uuid

    from batch_processor.telemetry.loader import TelemetryLoader

    config = load_telemetry_config(
        args.config, warehouse_path=args.warehouse, log_format=args.log_format
    )
    summary = TelemetryLoader(config, str(uuid.uuid4())).load(args.input, only_site=args.site)
    _print_load_summary(summary)
    print(f"  warehouse: {config.warehouse_path} (now run: dbt build)")
    return ExitCode.COMPLETED_WITH_REJECTS if summary.has_rejects else ExitCode.OK


def _print_load_summary(load: LoadSummary) -> None:
    statuses = ", ".join(f"{count} {status}" for status, count in sorted(load.by_status.items()))
    print(f"  files: {load.files_total} ({statuses})")
    print(f"  rows read: {load.rows_read:,}; rows rejected: {load.rows_rejected:,}")
    for relative, reason in load.set_aside:
        print(f"  set aside / partial: {relative}: {reason}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batch-processor",
        description="Batch ETL on DuckDB and dbt.",
        epilog=EXIT_CODES_HELP,
    )
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default="text",
        help="text lines for people, one JSON object a line for machines",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    domains = parser.add_subparsers(dest="domain", required=True)

    telemetry = domains.add_parser("telemetry", help="chiller-plant telemetry pipeline")
    commands = telemetry.add_subparsers(dest="command", required=True)

    gen = commands.add_parser(
        "generate",
        help="write demo CSVs with injected faults and a ground-truth file",
        epilog=EXIT_CODES_HELP,
    )
    gen.add_argument("--out", type=Path, required=True, help="folder to write into")
    gen.add_argument("--sites", type=int, default=2, help="number of sites (from the sites seed)")
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
    gen.set_defaults(handler=_telemetry_generate)

    run = commands.add_parser(
        "run",
        help="load a folder of raw CSVs and build the telemetry models",
        epilog=EXIT_CODES_HELP,
    )
    run.add_argument("--input", type=Path, required=True, help="folder of raw CSVs (read only)")
    run.add_argument("--output", type=Path, required=True, help="output folder")
    run.add_argument("--config", type=Path, default=None, help="TOML config file ([telemetry])")
    run.add_argument("--site", default=None, help="load only this site's files")
    run.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file (default: config, then BATCH_PROCESSOR_WAREHOUSE_PATH)",
    )
    run.set_defaults(handler=_telemetry_run)

    load = commands.add_parser(
        "load",
        help="only register a folder of raw CSVs in the warehouse (no dbt)",
        epilog=EXIT_CODES_HELP,
    )
    load.add_argument("--input", type=Path, required=True, help="folder of raw CSVs (read only)")
    load.add_argument("--config", type=Path, default=None, help="TOML config file ([telemetry])")
    load.add_argument("--site", default=None, help="load only this site's files")
    load.add_argument("--warehouse", type=Path, default=None, help="DuckDB file")
    load.set_defaults(handler=_telemetry_load)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_format, logging.DEBUG if args.verbose else logging.INFO)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return ExitCode.USAGE
    except RunFailedError as exc:
        log.error("run failed, nothing committed: %s", exc)
        return ExitCode.FAILED
    except BatchProcessorError as exc:
        log.error("%s", exc)
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
