"""Re-check a published output folder against its current manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb

from batch_processor.checksums import sha256_file
from batch_processor.dataset_commit import DatasetPaths, read_current
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


def verify_output(output_dir: Path) -> VerifyReport:
    paths = DatasetPaths(output_dir)
    report = VerifyReport()
    try:
        manifest = read_current(paths)
    except DatasetStateError as exc:
        report.problems.append(str(exc))
        return report
    if manifest is None:
        report.problems.append(f"no current manifest at {paths.current}")
        return report
    report.batch_id = manifest["batch_id"]
    if not checksum_ok(manifest):  # read_current verified it; kept as the check of record
        report.problems.append(f"{paths.current}: the checksum does not match the manifest body")
    con = duckdb.connect()
    try:
        for entry in manifest["dataset_files"]:
            path = paths.data / entry["path"]
            report.files_checked += 1
            if not path.exists():
                report.problems.append(f"missing: {entry['path']}")
                continue
            if sha256_file(path) != entry["sha256"]:
                report.problems.append(f"sha256 mismatch: {entry['path']}")
                continue
            found = con.execute(
                "select count(*) from read_parquet($p)", {"p": literal_path(path)}
            ).fetchone()
            if not found or found[0] != entry["rows"]:
                report.problems.append(
                    f"row count: {entry['path']} has {found[0] if found else '?'}, "
                    f"manifest says {entry['rows']}"
                )
            if manifest.get("schema") and parquet_schema(path) != manifest["schema"]:
                report.problems.append(
                    f"schema: {entry['path']} does not have the manifest's schema (a dataset "
                    "mixing versions; `telemetry run --rebuild-all` republishes it whole)"
                )
    finally:
        con.close()
    # files the last commit superseded stay one commit longer, for readers still on them
    retired = {entry["path"] for entry in manifest.get("superseded_files", [])}
    live = {entry["path"] for entry in manifest["dataset_files"]} | retired
    if paths.data.exists():
        for path in sorted(paths.data.rglob("*")):
            relative = str(PurePosixPath(path.relative_to(paths.data).as_posix()))
            if path.is_file() and relative not in live:
                report.orphans.append(relative)
    if paths.staging_root.exists():
        report.orphans += [str(p) for p in sorted(paths.staging_root.iterdir())]
    return report
