"""What every pipeline's manifest has in common: a checksum over its canonical JSON, the tool
versions, the nodes of the dbt runs that built it, the Parquet schema of its files."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote

import duckdb

from batch_processor.checksums import sha256_file

MANIFEST_VERSION = "1.0"


def tool_versions() -> dict[str, str]:
    return {
        "dbt": version("dbt-core"),
        "dbt-duckdb": version("dbt-duckdb"),
        "duckdb": duckdb.__version__,
    }


def schema_hash(schema: dict[str, str]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(schema)).hexdigest()


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), default=str).encode()


def with_checksum(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "checksum": "sha256:" + hashlib.sha256(canonical_json(body)).hexdigest()}


def checksum_ok(manifest: dict[str, Any]) -> bool:
    body = {k: v for k, v in manifest.items() if k != "checksum"}
    return bool(with_checksum(body)["checksum"] == manifest.get("checksum"))


def dbt_nodes(target_path: Path, con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every node of the run: status, timing, failures; rows for models stored as tables."""
    results = json.loads((target_path / "run_results.json").read_text())
    manifest = json.loads((target_path / "manifest.json").read_text())
    nodes = []
    for result in results["results"]:
        unique_id = result["unique_id"]
        node = manifest["nodes"].get(unique_id, {})
        rows = None
        materialized = node.get("config", {}).get("materialized")
        if node.get("resource_type") in {"model", "seed"} and materialized != "view":
            relation = f'"{node["schema"]}"."{node.get("alias") or node["name"]}"'
            try:
                found = con.execute(f"select count(*) from {relation}").fetchone()
                rows = int(found[0]) if found else None
            except duckdb.Error:
                rows = None
        nodes.append(
            {
                "unique_id": unique_id,
                "resource_type": node.get("resource_type", unique_id.split(".", 1)[0]),
                "status": result["status"],
                "execution_time_s": round(result.get("execution_time") or 0.0, 3),
                "rows": rows,
                "failures": result.get("failures"),
                "message": result.get("message"),
            }
        )
    return nodes


def parquet_schema(path: Path) -> dict[str, str]:
    """Column -> Parquet type of one file, e.g. ``INT64 TIMESTAMP(MICROS, UTC)``."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select name, type, converted_type, logical_type from parquet_schema($p)",
            {"p": str(path)},
        ).fetchall()
    finally:
        con.close()
    schema: dict[str, str] = {}
    for name, physical, converted, logical in rows[1:]:  # row 0 is the schema root
        if name in ("list", "element"):
            continue
        if converted == "LIST":
            schema[name] = "LIST<STRING>"
        elif logical and "Timestamp" in logical:
            unit = "MICROS" if "MICROS=MicroSeconds" in logical else "NANOS"
            utc = "UTC" if "isAdjustedToUTC=1" in logical else "local"
            schema[name] = f"{physical} TIMESTAMP({unit}, {utc})"
        else:
            schema[name] = str(physical)
    return schema


def partition_values(relative: PurePosixPath, keys: tuple[str, ...]) -> dict[str, str]:
    """``site_id=X/year=2026/f.parquet`` -> {site_id: X, year: 2026} for ``keys``.

    DuckDB percent-encodes partition values in folder names (``ESB CH1`` -> ``ESB%20CH1``),
    as Hive readers expect; the manifest holds the decoded values."""
    values = {
        key: unquote(value)
        for key, value in (part.split("=", 1) for part in relative.parts[:-1] if "=" in part)
    }
    return {key: values[key] for key in keys}


def describe_partitioned_files(
    base: Path,
    files: list[Path],
    partition_keys: tuple[str, ...],
    *,
    range_column: str | None = None,
) -> list[dict[str, Any]]:
    """Per Parquet file under ``base`` (Hive folders ``key=value/…``): its path relative to
    ``base``, partition values, rows, bytes and sha256 — the manifest's file entries — and,
    with ``range_column``, that column's ``min_<column>`` / ``max_<column>`` (ISO 8601)."""
    if not files:
        return []
    extra = f", min({range_column}), max({range_column})" if range_column else ""
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        facts = {
            Path(name): rest
            for name, *rest in con.execute(
                f"select filename, count(*){extra} from read_parquet($files, filename = true, "
                "hive_partitioning = false) group by filename",
                {"files": [str(f) for f in files]},
            ).fetchall()
        }
    finally:
        con.close()
    described = []
    for path in sorted(files):
        relative = PurePosixPath(path.relative_to(base).as_posix())
        rows, *bounds = facts[path]
        entry: dict[str, Any] = {
            "path": str(relative),
            "partition": partition_values(relative, partition_keys),
            "rows": int(rows),
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        if range_column:
            entry[f"min_{range_column}"] = bounds[0].isoformat()
            entry[f"max_{range_column}"] = bounds[1].isoformat()
        described.append(entry)
    return described


def sealed_manifest(
    *,
    batch_id: str,
    fields: dict[str, Any],
    schema: dict[str, str],
    dataset: str | None = None,
) -> dict[str, Any]:
    """A manifest: the envelope every pipeline's manifest has (version, dataset, batch id,
    time, tool versions), its own ``fields``, the Parquet schema and its hash, and the
    checksum over all of it."""
    body: dict[str, Any] = {"manifest_version": MANIFEST_VERSION}
    if dataset is not None:
        body["dataset"] = dataset
    body |= {
        "batch_id": batch_id,
        "created_at": datetime.now(UTC).isoformat(),
        "versions": tool_versions(),
        **fields,
        "schema": schema,
        "schema_hash": schema_hash(schema),
    }
    return with_checksum(body)
