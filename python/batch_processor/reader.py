"""Read a published telemetry dataset the way downstream code should: through its current
manifest, never by globbing the folder (a glob would also see files a crashed or running
batch left behind).

    from batch_processor.reader import read_dataset, read_dataset_arrow
    relation = read_dataset("demo/output")               # a DuckDB relation
    table = read_dataset_arrow("demo/output").to_table()  # a pyarrow dataset
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads

from batch_processor.checksums import sha256_file
from batch_processor.dataset_commit import DatasetPaths
from batch_processor.db import literal_path
from batch_processor.errors import BatchProcessorError

PARTITION_SCHEMA = pa.schema(
    [("site_id", pa.string()), ("year", pa.int32()), ("month", pa.int32())]
)


class DatasetError(BatchProcessorError):
    """The dataset cannot be read as its manifest describes it."""


def current_manifest(output_dir: Path | str) -> dict[str, Any]:
    paths = DatasetPaths(Path(output_dir))
    if not paths.current.exists():
        raise DatasetError(f"no published dataset: {paths.current} does not exist")
    manifest: dict[str, Any] = json.loads(paths.current.read_text(encoding="utf-8"))
    return manifest


def dataset_files(output_dir: Path | str, *, verify: bool = False) -> list[Path]:
    """The files of the current manifest, optionally checked against their sha256."""
    paths = DatasetPaths(Path(output_dir))
    manifest = current_manifest(output_dir)
    files = []
    for entry in manifest["dataset_files"]:
        path = paths.data / entry["path"]
        if verify and (not path.exists() or sha256_file(path) != entry["sha256"]):
            raise DatasetError(f"{path} is missing or does not match its sha256 in the manifest")
        files.append(path)
    if not files:
        raise DatasetError(f"the current manifest of {output_dir} lists no files")
    return files


def read_dataset(
    output_dir: Path | str,
    *,
    verify: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyRelation:
    """The dataset as a DuckDB relation, with site_id, year and month from the partitions."""
    con = connection or duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    files = [literal_path(f) for f in dataset_files(output_dir, verify=verify)]
    return con.sql(
        "select * from read_parquet($files, hive_partitioning = true, "
        "hive_types = {'site_id': 'VARCHAR', 'year': 'INTEGER', 'month': 'INTEGER'})",
        params={"files": files},
    )


def read_dataset_arrow(output_dir: Path | str, *, verify: bool = False) -> pads.Dataset:
    """The dataset as a pyarrow dataset over exactly the manifest's files."""
    paths = DatasetPaths(Path(output_dir))
    files = [str(f) for f in dataset_files(output_dir, verify=verify)]
    return pads.dataset(
        files,
        format="parquet",
        partitioning=pads.partitioning(PARTITION_SCHEMA, flavor="hive"),
        partition_base_dir=str(paths.data),
    )
