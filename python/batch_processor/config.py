"""The one configuration model. File values, then BATCH_PROCESSOR_* environment variables, win
over the defaults here; the resulting object is the single source of truth handed to the
loader and, as dbt vars, to the SQL models."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from batch_processor.errors import ConfigError
from batch_processor.paths import DEFAULT_WAREHOUSE, TELEMETRY_SITES_SEED

ENV_PREFIX = "BATCH_PROCESSOR_"


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
    compression: Literal["snappy", "zstd", "gzip", "lz4", "uncompressed"] = "snappy"
    stop_on_error: bool = Field(
        default=False, description="fail the batch (commit nothing) at the first bad file"
    )
    lock_timeout_s: float = Field(
        default=0.0, ge=0, description="how long to wait for another run's lock (0: fail at once)"
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
        return self

    def dbt_vars(self, staging_dir: Path | None) -> dict[str, object]:
        """The settings the SQL models read, as dbt --vars (one source of truth)."""
        return {
            "telemetry_resample_minutes": self.resample_minutes,
            "telemetry_max_rows_per_file": self.max_rows_per_file,
            "telemetry_parquet_compression": self.compression,
            "telemetry_staging_dir": str(staging_dir) if staging_dir else "",
        }

    @property
    def warehouse(self) -> Path:
        return self.warehouse_path or DEFAULT_WAREHOUSE

    @property
    def spill_directory(self) -> Path:
        return self.temp_directory or self.warehouse.with_name(self.warehouse.name + ".tmp")


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
        file_values = dict(document.get("telemetry", {}))
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
