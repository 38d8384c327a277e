"""What every ``batch-processor`` command shares: the global options (accepted before and
after the subcommand), the config options, and the exit codes in every ``--help``.

An option whose ``dest`` is the name of a field of the command's settings model is that
setting's flag: ``main`` hands every such value (``None`` when not given) to
``config.load_settings``, so flags win over the environment, the config file and the defaults
the same way in every pipeline.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batch_processor.config import CONFIG_ENV, ENV_PREFIX, WAREHOUSE_ENV, PipelineSettings
from batch_processor.exit_codes import EXIT_CODES_HELP, GENERATE_EXIT_CODES_HELP

Handler = Callable[[argparse.Namespace, Any], int]
if TYPE_CHECKING:
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    SubParsers = argparse._SubParsersAction


def add_global_options(parser: argparse.ArgumentParser, *, top_level: bool) -> None:
    """--log-format and --verbose. After the subcommand they are accepted too; there the
    default is "not given", so a value given before the subcommand is not reset."""
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=None if top_level else argparse.SUPPRESS,
        help=f"text lines for people, one JSON object a line for machines "
        f"(setting log_format, {ENV_PREFIX}LOG_FORMAT; default text)",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="debug logging",
    )


def command(
    commands: SubParsers,
    name: str,
    *,
    help: str,
    handler: Handler,
    settings: type[PipelineSettings] = PipelineSettings,
    epilog: str = EXIT_CODES_HELP,
    config: bool = True,
    warehouse: bool = True,
    dbt_nodes: bool = True,
) -> argparse.ArgumentParser:
    """A leaf command: global options, its exit codes in ``--help``, and (``config``) the
    --config and (``warehouse``) --warehouse options of its settings. ``dbt_nodes``: show
    dbt's node-by-node progress while it runs (off for the long-lived worker, whose log is a
    line per task)."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=help, description=help[:1].upper() + help[1:] + ".", epilog=epilog
    )
    add_global_options(parser, top_level=False)
    if config:
        parser.add_argument(
            "--config",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"TOML config file ([{settings.config_table}] table; default ${CONFIG_ENV})",
        )
    if config and warehouse:
        parser.add_argument(
            "--warehouse",
            dest="warehouse_path",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"DuckDB file (default ${WAREHOUSE_ENV}, then the config file, then "
            "<output>/warehouse.duckdb where the command has an --output, else "
            "warehouse/batch_processor.duckdb)",
        )
    parser.set_defaults(handler=handler, settings=settings, dbt_nodes=dbt_nodes)
    return parser


def lock_timeout_option(parser: argparse.ArgumentParser, what: str) -> None:
    """--lock-timeout; its help names the default of the command's own settings."""
    default = parser.get_default("settings").model_fields["lock_timeout_s"].default
    parser.add_argument(
        "--lock-timeout",
        dest="lock_timeout_s",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"wait this long for {what} (setting lock_timeout_s; default {default:g} s"
        + (": fail at once)" if not default else ")"),
    )


def output_location(text: str) -> Path | str:
    """An --output: ``s3://bucket/prefix`` stays a URI (a Path would fold its ``//``)."""
    from batch_processor.dataset_store import is_remote, split_s3_uri
    from batch_processor.errors import DatasetStateError

    if text.lower().startswith("s3:") and not is_remote(text):  # S3://b, s3:/b: not folders
        raise argparse.ArgumentTypeError(f"{text}: an S3 dataset is written s3://BUCKET[/PREFIX]")
    if is_remote(text):
        try:
            split_s3_uri(text)
        except DatasetStateError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc
        return text.rstrip("/")
    return Path(text)


def dataset_output_options(parser: argparse.ArgumentParser, what: str, *, work_dir: bool) -> None:
    """--output (a folder or ``s3://BUCKET/PREFIX``) and, for a command that builds, the
    --work-dir of an S3 output."""
    parser.add_argument(
        "--output",
        type=output_location,
        required=True,
        help=f"{what}: an output folder, or s3://BUCKET/PREFIX (through the standard AWS "
        "settings; the manifest and current.json are committed with S3 conditional writes)",
    )
    if work_dir:
        parser.add_argument(
            "--work-dir",
            dest="work_dir",
            type=Path,
            default=None,
            metavar="DIR",
            help="for an s3:// output: the local folder of staging, dbt artifacts, reports "
            "and the warehouse (setting work_dir; default warehouse/s3/BUCKET/PREFIX)",
        )


def generate_command(
    commands: SubParsers, *, help: str, handler: Handler, output_help: str = "folder to write into"
) -> argparse.ArgumentParser:
    """A pipeline's ``generate``: demo data written to --output, no settings of its own."""
    parser = command(
        commands,
        "generate",
        help=help,
        handler=handler,
        epilog=GENERATE_EXIT_CODES_HELP,
        config=False,
    )
    parser.add_argument("--output", type=Path, required=True, help=output_help)
    return parser


def settings_flags(args: argparse.Namespace, settings: type[PipelineSettings]) -> dict[str, Any]:
    """The options of ``args`` that are fields of ``settings`` (``None``: not given)."""
    return {name: value for name, value in vars(args).items() if name in settings.model_fields}
