"""Re-check a published dataset (an output folder or an ``s3://`` prefix) against its current
manifest: every file present, with its sha256, row count and schema; list what is there but
not in the manifest."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from batch_processor.checksums import sha256_file
from batch_processor.dataset_commit import (
    CURRENT,
    DATA,
    DatasetPaths,
    as_dataset_paths,
    data_keys,
    read_current,
)
from batch_processor.dataset_store import LocalStore
from batch_processor.db import literal_path
from batch_processor.errors import DatasetStateError
from batch_processor.manifest_common import checksum_ok, parquet_schema


@dataclass
class VerifyReport:
    batch_id: str | None = None
    files_checked: int = 0
    problems: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.orphans


@contextmanager
def _local_file(paths: DatasetPaths, relative: str) -> Iterator[Path]:
    """The published file ``data/<relative>`` as a local path: itself in a folder, a
    temporary download from an object store, streamed to disk."""
    store = paths.store
    if isinstance(store, LocalStore):
        yield store.root / DATA / relative
        return
    with tempfile.TemporaryDirectory(prefix="verify-") as folder:
        copy = Path(folder) / "file.parquet"
        if not store.download(DATA + relative, copy):
            raise FileNotFoundError(store.uri(DATA + relative))
        yield copy


def verify_output(output: DatasetPaths | Path) -> VerifyReport:
    """``output``: the dataset's paths (``DatasetSettings.output_paths``), or a folder."""
    paths = as_dataset_paths(output)
    report = VerifyReport()
    where = paths.store.uri(CURRENT)
    try:
        manifest = read_current(paths)
    except DatasetStateError as exc:
        report.problems.append(str(exc))
        return report
    if manifest is None:
        report.problems.append(f"no current manifest at {where}")
        return report
    report.batch_id = manifest["batch_id"]
    if not checksum_ok(manifest):  # read_current verified it; kept as the check of record
        report.problems.append(f"{where}: the checksum does not match the manifest body")
    present = data_keys(paths)
    con = duckdb.connect()
    try:
        for entry in manifest["dataset_files"]:
            report.files_checked += 1
            if entry["path"] not in present:
                report.problems.append(f"missing: {entry['path']}")
                continue
            try:
                with _local_file(paths, entry["path"]) as path:
                    _check_file(con, path, entry, manifest.get("schema"), report)
            except FileNotFoundError:  # removed since the listing
                report.problems.append(f"missing: {entry['path']}")
    finally:
        con.close()
    # files the last commit superseded stay one commit longer, for readers still on them
    retired = {entry["path"] for entry in manifest.get("superseded_files", [])}
    live = {entry["path"] for entry in manifest["dataset_files"]} | retired
    report.orphans += [relative for relative in sorted(present) if relative not in live]
    if paths.staging_root.exists():
        report.orphans += [str(p) for p in sorted(paths.staging_root.iterdir())]
    return report


def _check_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    entry: dict[str, object],
    schema: dict[str, str] | None,
    report: VerifyReport,
) -> None:
    if sha256_file(path) != entry["sha256"]:
        report.problems.append(f"sha256 mismatch: {entry['path']}")
        return
    found = con.execute(
        "select count(*) from read_parquet($p)", {"p": literal_path(path)}
    ).fetchone()
    if not found or found[0] != entry["rows"]:
        report.problems.append(
            f"row count: {entry['path']} has {found[0] if found else '?'}, "
            f"manifest says {entry['rows']}"
        )
    if schema and parquet_schema(path) != schema:
        report.problems.append(
            f"schema: {entry['path']} does not have the manifest's schema (a dataset "
            "mixing versions; `telemetry run --rebuild-all` republishes it whole)"
        )
