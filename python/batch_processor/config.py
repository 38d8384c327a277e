"""The configuration of every pipeline: one mechanism, one model per pipeline.

Precedence, lowest first: the defaults here, the config file (TOML: ``--config FILE`` or
``BATCH_PROCESSOR_CONFIG``; one table per pipeline: ``[telemetry]``, ``[products]``,
``[papers]``, ``[crm]``), ``BATCH_PROCESSOR_<FIELD>`` environment variables (the warehouse:
``BATCH_PROCESSOR_DUCKDB_PATH``, the variable dbt's profile reads too), then CLI flags. The
resulting object is the single source of truth handed to the pipeline and, as dbt vars, to the
SQL models. Built on pydantic-settings.
"""

from __future__ import annotations

import os
import re
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

from pydantic import Field, ValidationError, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from batch_processor.errors import ConfigError
from batch_processor.paths import DEFAULT_WAREHOUSE, TELEMETRY_SITES_SEED

if TYPE_CHECKING:
    from batch_processor.dataset_commit import DatasetPaths

ENV_PREFIX = "BATCH_PROCESSOR_"
WAREHOUSE_ENV = ENV_PREFIX + "DUCKDB_PATH"  # dbt's profile reads the same variable
CONFIG_ENV = ENV_PREFIX + "CONFIG"  # the config file, when --config is not given
CONFIG_TABLES = ("telemetry", "products", "papers", "crm")  # the tables a config file holds
_DURATION = re.compile(r"(\d+)\s*(s|m|min|h|d|w)")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_FILE_VALUES: ContextVar[dict[str, Any] | None] = ContextVar("config_file_values", default=None)


class _ConfigFileSource(PydanticBaseSettingsSource):
    """The values of the config file's table for this pipeline (read by ``load_settings``)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return (_FILE_VALUES.get() or {}).get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_FILE_VALUES.get() or {})


class _ByFieldName(PydanticBaseSettingsSource):
    """A source whose values are keyed by field name: the environment gives the warehouse
    under its variable's name (the alias), and the sources are merged key by key, so a flag
    or a file's ``warehouse_path`` must meet it under the same key to override or yield."""

    def __init__(
        self, settings_cls: type[BaseSettings], source: PydanticBaseSettingsSource
    ) -> None:
        super().__init__(settings_cls)
        self._source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        values = dict(self._source())
        if WAREHOUSE_ENV in values:
            values["warehouse_path"] = values.pop(WAREHOUSE_ENV)
        return values


class PipelineSettings(BaseSettings):
    """What every pipeline's settings have: where the warehouse is, how to log, how long to
    wait for another run's lock."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_by_name=True,
        validate_by_alias=True,
        env_ignore_empty=True,  # BATCH_PROCESSOR_X= (empty) means not set
    )
    config_table: ClassVar[str] = ""

    warehouse_path: Path | None = Field(
        default=None,
        validation_alias=WAREHOUSE_ENV,
        description="the embedded DuckDB file dbt and the pipeline share (environment: "
        f"{WAREHOUSE_ENV}; default: <output>/warehouse.duckdb for a command with an --output, "
        "warehouse/batch_processor.duckdb otherwise, the file a bare `dbt build` uses)",
    )
    log_format: Literal["text", "json"] = Field(
        default="text", description="text lines for people, one JSON object a line for machines"
    )
    lock_timeout_s: float = Field(
        default=0.0, ge=0, description="how long to wait for another run's lock (0: fail at once)"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # first wins: flags (init), then the environment, then the config file
        return (
            init_settings,
            _ByFieldName(settings_cls, env_settings),
            _ConfigFileSource(settings_cls),
        )

    def warehouse_for(self, output: Path | None = None) -> Path:
        """The warehouse: the setting, else ``<output>/warehouse.duckdb`` (a dataset's history
        lives with it), else the project's default one."""
        if self.warehouse_path is not None:
            return self.warehouse_path
        return output / "warehouse.duckdb" if output is not None else DEFAULT_WAREHOUSE


class DatasetSettings(PipelineSettings):
    """The settings of a pipeline that publishes a dataset (telemetry, products, papers): an
    ``--output`` folder, or an ``s3://bucket/prefix`` with a local work folder."""

    work_dir: Path | None = Field(
        default=None,
        description="for an s3:// --output: the local folder of the run's staging, dbt "
        "artifacts, reports and (unless --warehouse) warehouse; default "
        "warehouse/s3/<bucket>/<prefix>. It moves with the dataset: its warehouse holds the "
        "state the next run builds on",
    )

    def work_dir_for(self, output: str) -> Path:
        """The local folder of an ``s3://`` output: the setting, else
        ``warehouse/s3/<bucket>/<prefix>`` next to the default warehouse."""
        from batch_processor.dataset_store import default_work_dir

        return self.work_dir or default_work_dir(output, DEFAULT_WAREHOUSE.parent)

    def output_paths(self, output: Path | str) -> DatasetPaths:
        """An output folder, or an ``s3://bucket/prefix`` with its local work folder."""
        from batch_processor.dataset_commit import DatasetPaths
        from batch_processor.dataset_store import is_remote, open_store

        if is_remote(output):
            return DatasetPaths(self.work_dir_for(str(output)).absolute(), open_store(output))
        return DatasetPaths(Path(output).absolute())

    def warehouse_for_dataset(self, paths: DatasetPaths) -> Path:
        """``warehouse_for`` the output's local folder, for a command that publishes into
        ``paths``, refusing the default ``<folder>/warehouse.duckdb`` when it does not exist
        but a dataset is already published there: that dataset's state (what it holds, the
        watermark, the dedup history) is in another warehouse, and a new empty one would
        republish it without what it already holds. Before this version the default warehouse
        of the products and papers commands was warehouse/batch_processor.duckdb."""
        from batch_processor.dataset_commit import CURRENT

        warehouse = self.warehouse_for(paths.root)
        if (
            self.warehouse_path is None
            and not warehouse.exists()
            and paths.store.read(CURRENT) is not None
        ):
            if paths.shared:
                raise ConfigError(
                    f"{paths.location} holds a published dataset but this work folder has no "
                    f"warehouse ({warehouse}): run from the --work-dir that built it (or give "
                    f"its warehouse with --warehouse or {WAREHOUSE_ENV})"
                )
            raise ConfigError(
                f"{paths.location} holds a published dataset but not its warehouse "
                f"{warehouse}: give the warehouse that built it with --warehouse (or "
                f"{WAREHOUSE_ENV}); before this version the default was {DEFAULT_WAREHOUSE}, "
                f"now it is <output>/warehouse.duckdb (move the file there to adopt it)"
            )
        return warehouse


class TelemetryConfig(DatasetSettings):
    """Settings of the telemetry pipeline."""

    config_table: ClassVar[str] = "telemetry"

    input_pattern: str = Field(
        default="*.csv",
        description="fnmatch pattern over each file's path relative to --input ('*' spans folders)",
    )
    sites_seed: Path = Field(
        default=TELEMETRY_SITES_SEED, description="the sites seed the loader resolves sites from"
    )
    memory_limit_mb: int = Field(default=1024, ge=64, description="DuckDB memory_limit")
    link_roots: list[Path] = Field(
        default_factory=list,
        description="folders outside the input folder that a file link in it may point into "
        "(e.g. a read-only landing zone or a shared corpus); a link to anywhere else is "
        "rejected unread. Default: none, only links inside the input folder are read",
    )
    temp_directory: Path | None = Field(
        default=None, description="DuckDB spill folder (default: next to the warehouse)"
    )
    shard_dir: Path | None = Field(
        default=None,
        description="for `telemetry run --workers`: the folder of the site shards' folders "
        "(each site's warehouse, the history its next batch builds on). Every worker must see "
        "it (a shared volume); default <output or work folder>/_shards",
    )
    shard_attempts: int = Field(
        default=2, ge=1, description="a failed shard is run again until it has run this often"
    )
    shard_timeout_s: float = Field(
        default=3600.0,
        gt=0,
        description="a sharded batch fails (commits nothing) when its shards have not all "
        "answered within this",
    )
    max_reject_ratio: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="a file whose share of rejected rows exceeds this is set aside as a whole",
    )
    # output
    resample_minutes: int = Field(
        default=5, ge=1, le=60, description="the output grid; passed to dbt"
    )
    time_resolution_minutes: int | None = Field(
        default=None,
        description="what the consumers expect the dataset's time step to be; when given it "
        "must equal resample_minutes",
    )
    max_rows_per_file: int = Field(default=100_000, ge=1, description="rows per Parquet file")
    max_time_span_per_file: str | None = Field(
        default=None,
        description="the most time one Parquet file spans, e.g. '1d', '12h', '30m', '1w' "
        "(seed 001's setting; slots aligned on the month's start). Unset: files are cut by "
        "max_rows_per_file only (the seed's '1d' would write a file a day: ~30 per month)",
    )
    compression: Literal["snappy", "zstd", "gzip", "lz4", "uncompressed"] = "snappy"
    stop_on_error: bool = Field(
        default=False, description="fail the batch (commit nothing) at the first bad file"
    )
    quality_report: bool = Field(
        default=True,
        description="write <output>/reports/quality_report.html (the HTML quality report) "
        "after each committed batch",
    )
    dbt_artifacts_kept: int = Field(
        default=5,
        ge=1,
        description="dbt artifact folders (<output>/_dbt/<batch>) kept, newest first; older "
        "ones are deleted after each run, except those of failed runs younger than "
        "failed_artifacts_kept_days",
    )
    failed_artifacts_kept_days: float = Field(
        default=7.0, ge=0, description="how long the dbt artifacts of a failed run are kept"
    )

    @model_validator(mode="after")
    def _compatible(self) -> TelemetryConfig:
        if 60 % self.resample_minutes:
            raise ValueError(
                f"resample_minutes ({self.resample_minutes}) must divide an hour "
                "(1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)"
            )
        if (
            self.time_resolution_minutes is not None
            and self.time_resolution_minutes != self.resample_minutes
        ):
            raise ValueError(
                f"time_resolution_minutes ({self.time_resolution_minutes}) must match "
                f"resample_minutes ({self.resample_minutes}): the dataset is written on the "
                "resample grid, so consumers would read a different time step than they expect"
            )
        if self.max_time_span_per_file is not None:
            span = self.max_time_span_s
            if span < self.resample_minutes * 60:
                raise ValueError(
                    f"max_time_span_per_file ({self.max_time_span_per_file}) is shorter than "
                    f"the resample interval ({self.resample_minutes} min)"
                )
        return self

    @property
    def max_time_span_s(self) -> int:
        """max_time_span_per_file in seconds; 0 when unset."""
        if self.max_time_span_per_file is None:
            return 0
        match = _DURATION.fullmatch(self.max_time_span_per_file.strip().lower())
        if match is None:
            raise ValueError(
                f"max_time_span_per_file {self.max_time_span_per_file!r} is not a duration: "
                "a whole number and a unit, s, m, h, d or w (e.g. '1d', '12h')"
            )
        count, unit = int(match.group(1)), match.group(2)
        if count <= 0:
            raise ValueError("max_time_span_per_file must be positive")
        return count * _UNIT_SECONDS[unit]

    def dbt_vars(self) -> dict[str, object]:
        """The settings the SQL models read, as dbt --vars (one source of truth). Paths are
        not vars: dbt parses --vars as YAML and renders Jinja in them (see dbt_env)."""
        return {
            "telemetry_resample_minutes": self.resample_minutes,
            "telemetry_max_rows_per_file": self.max_rows_per_file,
            "telemetry_max_time_span_per_file_s": self.max_time_span_s,
            "telemetry_parquet_compression": self.compression,
        }

    @staticmethod
    def dbt_env(staging_dir: Path) -> dict[str, str]:
        """The paths the macros read, as environment variables: a value there is never parsed
        as YAML or rendered as Jinja, so quotes, braces or an emoji in a path stay data."""
        return {STAGING_DIR_ENV: str(staging_dir.absolute())}

    @property
    def warehouse(self) -> Path:
        return self.warehouse_for()

    @property
    def spill_directory(self) -> Path:
        return self.temp_directory or self.warehouse.with_name(self.warehouse.name + ".tmp")


STAGING_DIR_ENV = "BATCH_PROCESSOR_TELEMETRY_STAGING_DIR"


Settings = TypeVar("Settings", bound=PipelineSettings)


def config_file_table(path: Path | None, table: str) -> dict[str, Any]:
    """The ``[table]`` of the TOML config file at ``path`` (else ``$BATCH_PROCESSOR_CONFIG``);
    empty when there is no file. A top-level key that is not a pipeline's table (a misspelled
    ``[telemtry]``) is an error, not ignored."""
    if path is None and os.environ.get(CONFIG_ENV):
        path = Path(os.environ[CONFIG_ENV])
    if path is None:
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"config file not found: {path}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    unknown = sorted(set(document) - set(CONFIG_TABLES))
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
            f"the settings go in a table per pipeline: "
            + ", ".join(f"[{name}]" for name in CONFIG_TABLES)
        )
    values = document.get(table, {})
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path}: {table!r} must be a table")
    return dict(values)


def load_settings(cls: type[Settings], path: Path | None = None, **flags: Any) -> Settings:
    """``cls`` from its sources, lowest first: defaults, the config file's ``[cls.config_table]``,
    ``BATCH_PROCESSOR_<FIELD>`` environment variables, ``flags`` (CLI options; ``None`` means
    not given). Any invalid value is a ConfigError naming the setting and what is wrong."""
    file_values = config_file_table(path, cls.config_table)
    given = {name: value for name, value in flags.items() if value is not None}
    token = _FILE_VALUES.set(file_values)
    try:
        return cls(**given)
    except ValidationError as exc:
        problems = "; ".join(f"{_setting_name(err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ConfigError(f"invalid {cls.config_table} configuration: {problems}") from exc
    finally:
        _FILE_VALUES.reset(token)


def _setting_name(location: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in location) or "settings"


def load_telemetry_config(path: Path | None = None, **flags: Any) -> TelemetryConfig:
    """The telemetry settings (see ``load_settings``)."""
    return load_settings(TelemetryConfig, path, **flags)


class ProductsSettings(DatasetSettings):
    """Settings of the products sync."""

    config_table: ClassVar[str] = "products"

    limit: int = Field(default=100_000, ge=1, description="rows per batch")
    source_name: str = Field(
        default="products_staging", min_length=1, description="the watermark's key"
    )
    source_table: str = Field(
        default="products_staging",
        min_length=1,
        description="the table read from a PostgreSQL source ([schema.]table)",
    )


class PapersSettings(DatasetSettings):
    """Settings of the papers pipeline."""

    config_table: ClassVar[str] = "papers"

    sink: Literal["warehouse", "dynamodb"] = Field(
        default="warehouse",
        description="warehouse: the warehouse + Parquet with a manifest; dynamodb: the "
        "warehouse (dedup state and outbox) + the DynamoDB table dynamodb_table",
    )
    dynamodb_table: str | None = Field(default=None, description="the DynamoDB table")

    @model_validator(mode="after")
    def _sink_has_table(self) -> PapersSettings:
        if self.sink == "dynamodb" and not self.dynamodb_table:
            raise ValueError("sink dynamodb needs a table (--table NAME)")
        return self

    @property
    def table_of_sink(self) -> str | None:
        """The DynamoDB table the batch writes to: none with the warehouse sink (a table a
        config file names is then unused, so --sink warehouse works for one run)."""
        return self.dynamodb_table if self.sink == "dynamodb" else None


class CrmSettings(PipelineSettings):
    """Settings of the CRM workers and the commands that talk to them."""

    config_table: ClassVar[str] = "crm"

    nats_url: str = Field(
        default="nats://127.0.0.1:4222", min_length=1, description="the NATS server"
    )
    input_dir: Path = Field(
        default=Path("crm-in"), description="the worker's default CRM export folder"
    )
    work_dir: Path | None = Field(
        default=None, description="dbt target folders (default: <warehouse dir>/crm-work)"
    )
    lock_timeout_s: float = Field(
        default=600.0,
        ge=0,
        description="how long a task waits for the warehouse another task or command holds "
        "(tasks queue up behind each other: default 600 s)",
    )
