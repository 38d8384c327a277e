"""The one configuration model. File values, then BATCH_PROCESSOR_* environment variables, win
over the defaults here; the resulting object is the single source of truth handed to the
loader and, as dbt vars, to the SQL models."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from batch_processor.errors import ConfigError
from batch_processor.paths import DEFAULT_WAREHOUSE, TELEMETRY_SITES_SEED


class TelemetryConfig(BaseSettings):
    """Settings of the telemetry pipeline."""

    model_config = SettingsConfigDict(env_prefix="BATCH_PROCESSOR_", extra="forbid")

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the config file, whose values arrive as init arguments.
        return (env_settings, init_settings)

    @property
    def spill_directory(self) -> Path:
        return self.temp_directory or self.warehouse_path.parent / "tmp"


def load_telemetry_config(path: Path | None = None, **overrides: Any) -> TelemetryConfig:
    """Build the config from an optional TOML file ([telemetry] table) and explicit overrides.

    Environment variables override the file; explicit overrides (from CLI flags) override both.
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
    try:
        config = TelemetryConfig(**file_values)
        explicit = {k: v for k, v in overrides.items() if v is not None}
        if explicit:
            config = TelemetryConfig.model_validate({**config.model_dump(), **explicit})
        return config
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid telemetry configuration: {problems}") from exc
