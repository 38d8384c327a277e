"""The one configuration model. File values, then BATCH_PROCESSOR_* environment variables, win
over the defaults here; the resulting object is the single source of truth handed to the
loader and, as dbt vars, to the SQL models."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from batch_processor.errors import ConfigError
from batch_processor.paths import DEFAULT_WAREHOUSE, TELEMETRY_SITES_SEED

ENV_PREFIX = "BATCH_PROCESSOR_"
CONFIG_TABLE = "telemetry"  # the one table a telemetry config file holds
_DURATION = re.compile(r"(\d+)\s*(s|m|min|h|d|w)")
_UNIT_SECONDS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}


class TelemetryConfig(BaseModel):
    """Settings of the telemetry pipeline."""

    model_config = ConfigDict(extra="forbid")

    input_pattern: str = Field(
        default="*.csv",
        description="fnmatch pattern over each file's path relative to --input ('*' spans folders)",
    )
    warehouse_path: Path | None = Field(
        default=None,
        description="the embedded DuckDB file dbt and the loader share (default: "
        "<output>/warehouse.duckdb for a run, warehouse/batch_processor.duckdb otherwise)",
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
    max_reject_ratio: float = Field(
        default=0.5,
        ge=0.0,
        le=1.0,
        description="a file whose share of rejected rows exceeds this is set aside as a whole",
    )
    recycle_connection_every: int = Field(
        default=100,
        ge=1,
        description="the loader reopens DuckDB every N files: the pages it wrote stay cached "
        "otherwise, and memory would grow with the batch up to memory_limit",
    )
    log_format: Literal["text", "json"] = "text"
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
    lock_timeout_s: float = Field(
        default=0.0, ge=0, description="how long to wait for another run's lock (0: fail at once)"
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
        return self.warehouse_path or DEFAULT_WAREHOUSE

    @property
    def spill_directory(self) -> Path:
        return self.temp_directory or self.warehouse.with_name(self.warehouse.name + ".tmp")


STAGING_DIR_ENV = "BATCH_PROCESSOR_TELEMETRY_STAGING_DIR"


def load_telemetry_config(path: Path | None = None, **overrides: Any) -> TelemetryConfig:
    """Build the config from an optional TOML file ([telemetry] table) and explicit overrides.

    Precedence, lowest first: defaults, the file, ``BATCH_PROCESSOR_<FIELD>`` environment
    variables, explicit overrides (CLI flags; ``None`` means not given).
    """
    file_values: dict[str, Any] = {}
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"config file not found: {path}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc
        unknown = sorted(set(document) - {CONFIG_TABLE})
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                f"the settings go in a [{CONFIG_TABLE}] table"
            )
        table = document.get(CONFIG_TABLE, {})
        if not isinstance(table, dict):
            raise ConfigError(f"config file {path}: {CONFIG_TABLE!r} must be a table")
        file_values = dict(table)
    env_values = {
        name: os.environ[ENV_PREFIX + name.upper()]
        for name in TelemetryConfig.model_fields
        if ENV_PREFIX + name.upper() in os.environ
    }
    explicit = {name: value for name, value in overrides.items() if value is not None}
    try:
        return TelemetryConfig.model_validate({**file_values, **env_values, **explicit})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid telemetry configuration: {problems}") from exc
