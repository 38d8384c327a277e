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
from batch_processor.db import literal_path

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
    """Top-level column -> Parquet type of one file, e.g. ``INT64 TIMESTAMP(MICROS, UTC)``,
    ``DOUBLE``, ``LIST<STRING>``; a nested column in full, e.g.
    ``LIST<STRUCT<device_id STRING, value DOUBLE, quality_flags LIST<STRING>>>``, so that a
    change inside a struct changes the schema (and its hash) too."""
    con = duckdb.connect()
    try:
        rows = con.execute(
            "select name, type, converted_type, logical_type, num_children from parquet_schema($p)",
            {"p": str(path)},
        ).fetchall()
    finally:
        con.close()

    def leaf(physical: object, converted: object, logical: object, nested: bool) -> str:
        if logical and "Timestamp" in str(logical):
            unit = "MICROS" if "MICROS=MicroSeconds" in str(logical) else "NANOS"
            utc = "UTC" if "isAdjustedToUTC=1" in str(logical) else "local"
            return f"{physical} TIMESTAMP({unit}, {utc})"
        if nested and converted == "UTF8":
            return "STRING"
        return str(physical)

    def node(index: int, nested: bool) -> tuple[str, int]:
        """(type of the node at ``index``, index of the node after its subtree)."""
        _, physical, converted, logical, children = rows[index]
        if not children:
            return leaf(physical, converted, logical, nested), index + 1
        parts: list[tuple[str, str]] = []
        following = index + 1
        for _ in range(int(children)):
            name = str(rows[following][0])
            kind, following = node(following, True)
            parts.append((name, kind))
        if converted == "LIST":  # LIST -> repeated group "list" -> "element"
            inner = parts[0][1]
            return f"LIST<{inner}>", following
        if len(parts) == 1 and index > 0 and rows[index][0] == "list":
            return parts[0][1], following
        return "STRUCT<" + ", ".join(f"{n} {k}" for n, k in parts) + ">", following

    schema: dict[str, str] = {}
    following = 1  # row 0 is the schema root
    while following < len(rows):
        name = str(rows[following][0])
        schema[name], following = node(following, False)
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
                {"files": [literal_path(f) for f in files]},
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


def column_counts(base: Path, entries: list[dict[str, Any]], column: str) -> dict[str, int]:
    """How many rows of the files ``entries`` list (paths relative to ``base``) hold each value
    of ``column`` ('none' for NULL), counted on the files."""
    if not entries:
        return {}
    con = duckdb.connect()
    try:
        counted = con.execute(
            f"select coalesce(cast({column} as varchar), 'none'), count(*) "
            "from read_parquet($files, hive_partitioning = false) group by all order by 1",
            {"files": [literal_path(base / e["path"]) for e in entries]},
        ).fetchall()
    finally:
        con.close()
    return {str(value): int(count) for value, count in counted}


def range_over(entries: list[dict[str, Any]], column: str) -> list[str] | None:
    """[earliest, latest] of ``column`` over file entries described with that range column."""
    if not entries:
        return None
    first = min(entries, key=lambda e: datetime.fromisoformat(e[f"min_{column}"]))
    last = max(entries, key=lambda e: datetime.fromisoformat(e[f"max_{column}"]))
    return [first[f"min_{column}"], last[f"max_{column}"]]


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
