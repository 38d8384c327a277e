"""The one configuration model. File values, then BATCH_PROCESSOR_* environment variables, win
over the defaults here; the resulting object is the single source of truth handed to the
loader and, as dbt vars, to the SQL models."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

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
    warehouse_path: Path = Field(
        default=DEFAULT_WAREHOUSE, description="the embedded DuckDB file dbt and the loader share"
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
    log_format: Literal["text", "json"] = "text"

    @property
    def spill_directory(self) -> Path:
        return self.temp_directory or self.warehouse_path.parent / "tmp"


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
