"""The manifest of a committed telemetry batch, built from dbt's run artifacts, the published
files and the warehouse. Format (manifest_version 1.0, as in seed 001):

    manifest_version, batch_id (= dbt invocation_id), created_at, versions {dbt, dbt-duckdb,
    duckdb}; seed 001 §3.2's fields with its meaning: site_id (the dataset's one site, null
    when it holds several), input_files_count (this batch), output_files (every file of the
    dataset, as paths relative to data/: the list a reader reads); then ours: site_ids,
    input_files [{path, size_bytes, sha256, rows, rejected_rows, status, reason, ledger}],
    written_files (this batch's) / dataset_files / superseded_files [{path, partition, rows,
    bytes, sha256, min_timestamp, max_timestamp}], ledger {totals}, superseded_cells,
    within_file_conflicts {count}, gaps, statistics {total_rows, time_range,
    quality_flags_distribution, per_site}, dbt {invocation_id, nodes [{unique_id,
    resource_type, status, execution_time_s, rows, failures, message}]}, schema {column:
    parquet type}, schema_hash, checksum (sha256 over the canonical JSON of everything else).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from batch_processor.manifest_common import dbt_nodes, sealed_manifest
from batch_processor.telemetry.dataset import FLAGS

FILES_MART = "telemetry.dim_telemetry_input_files"


def statistics(dataset_files: list[dict[str, Any]]) -> dict[str, Any]:
    """Summed over the dataset's files as measured on each file (rows, time range, flag
    counts), so the manifest states what its files hold, whatever else the warehouse holds."""

    def summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
        flags: dict[str, int] = {}
        for entry in entries:
            for flag, count in entry[FLAGS].items():
                flags[flag] = flags.get(flag, 0) + count
        dated = [e for e in entries if e["rows"]]
        return {
            "rows": sum(e["rows"] for e in entries),
            "time_range": [
                min(e["min_timestamp"] for e in dated),
                max(e["max_timestamp"] for e in dated),
            ]
            if dated
            else None,
            "quality_flags_distribution": dict(sorted(flags.items())),
        }

    sites: dict[str, list[dict[str, Any]]] = {}
    for entry in dataset_files:
        sites.setdefault(entry["partition"]["site_id"], []).append(entry)
    total = summary(dataset_files)
    return {
        "total_rows": total["rows"],
        "time_range": total["time_range"],
        "quality_flags_distribution": total["quality_flags_distribution"],
        "per_site": {site: summary(entries) for site, entries in sorted(sites.items())},
    }


def input_files(
    con: duckdb.DuckDBPyConnection, ledgers: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    return [
        {
            "path": path,
            "size_bytes": size,
            "sha256": sha,
            "rows": rows,
            "rejected_rows": rejected,
            "status": status,
            "reason": reason,
            "ledger": ledgers.get(path),
        }
        for path, size, sha, rows, rejected, status, reason in con.execute(
            f"""
            select source_file, size_bytes, sha256, rows_read, rows_rejected, load_status,
                   load_reason
            from {FILES_MART} order by relative_path
            """
        ).fetchall()
    ]


def build_manifest(
    *,
    batch_id: str,
    con: duckdb.DuckDBPyConnection,
    target_path: Path,
    written_files: list[dict[str, Any]],
    dataset_files: list[dict[str, Any]],
    superseded_files: list[dict[str, Any]],
    schema: dict[str, str],
    accounting: dict[str, Any],
) -> dict[str, Any]:
    return assemble_manifest(
        batch_id=batch_id,
        files=batch_input_files(con, accounting),
        dbt={"invocation_id": batch_id, "nodes": dbt_nodes(target_path, con)},
        written_files=written_files,
        dataset_files=dataset_files,
        superseded_files=superseded_files,
        schema=schema,
        accounting=accounting,
    )


def batch_input_files(
    con: duckdb.DuckDBPyConnection, accounting: dict[str, Any]
) -> list[dict[str, Any]]:
    """The manifest's ``input_files`` of the batch the warehouse holds, with their ledgers."""
    return input_files(
        con,
        {
            entry["path"]: {k: entry[k] for k in ("lines", "rows", "cells", "balanced")}
            for entry in accounting["ledger"]["files"]
        },
    )


def assemble_manifest(
    *,
    batch_id: str,
    files: list[dict[str, Any]],
    dbt: dict[str, Any],
    written_files: list[dict[str, Any]],
    dataset_files: list[dict[str, Any]],
    superseded_files: list[dict[str, Any]],
    schema: dict[str, str],
    accounting: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The sealed manifest from its parts (a sharded batch's parts come from its shards)."""
    site_ids = sorted({f["partition"]["site_id"] for f in dataset_files})
    return sealed_manifest(
        batch_id=batch_id,
        fields={
            "site_id": site_ids[0] if len(site_ids) == 1 else None,
            "input_files_count": len(files),
            "output_files": [f["path"] for f in dataset_files],
            "site_ids": site_ids,
            "input_files": files,
            "written_files": written_files,
            "dataset_files": dataset_files,
            "superseded_files": superseded_files,
            "ledger": accounting["ledger"]["totals"],
            "superseded_cells": accounting["superseded_cells"],
            "within_file_conflicts": {"count": accounting["within_file_conflicts"]["count"]},
            "gaps": accounting["gaps"],
            "statistics": statistics(dataset_files),
            "dbt": dbt,
            **(extra or {}),
        },
        schema=schema,
    )
