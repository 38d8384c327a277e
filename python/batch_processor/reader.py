"""Read a published telemetry dataset the way downstream code should: through its current
manifest, never by globbing the folder (a glob would also see files a crashed or running
batch left behind). The dataset is an output folder or an ``s3://bucket/prefix``.

    from batch_processor.reader import read_dataset, read_dataset_arrow
    relation = read_dataset("demo/output")               # a DuckDB relation
    table = read_dataset_arrow("demo/output").to_table()  # a pyarrow dataset
    relation = read_dataset("s3://bucket/telemetry")     # the same, on S3

S3 is reached through the standard AWS settings (``AWS_ENDPOINT_URL``, ``AWS_REGION`` or
``AWS_DEFAULT_REGION``, credentials): pyarrow's own S3 filesystem, which DuckDB reads through
as an fsspec filesystem (DuckDB's httpfs extension cannot be installed on a machine without
access to extensions.duckdb.org; with it, ``read_parquet`` of the same URIs works as well).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs

from batch_processor.checksums import sha256_file
from batch_processor.dataset_commit import CURRENT, DATA, parse_manifest
from batch_processor.dataset_store import (
    S3_SCHEME,
    DatasetStore,
    LocalStore,
    is_remote,
    open_store,
)
from batch_processor.db import literal_path
from batch_processor.errors import BatchProcessorError, DatasetStateError

PARTITION_SCHEMA = pa.schema(
    [("site_id", pa.string()), ("year", pa.int32()), ("month", pa.int32())]
)


class DatasetError(BatchProcessorError):
    """The dataset cannot be read as its manifest describes it."""


def s3_filesystem() -> pafs.S3FileSystem:
    """pyarrow's S3 filesystem on the standard AWS settings (pyarrow itself does not read
    ``AWS_ENDPOINT_URL``; its credential chain is the SDK's)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    options: dict[str, Any] = {}
    if endpoint:
        options["endpoint_override"] = endpoint
    if region:
        options["region"] = region
    return pafs.S3FileSystem(**options)


def current_manifest(location: Path | str) -> dict[str, Any]:
    """The dataset's current manifest, its checksum verified."""
    return _current_manifest(open_store(location))


def _current_manifest(store: DatasetStore) -> dict[str, Any]:
    try:
        found = store.read(CURRENT)
        if found is None:
            raise DatasetError(f"no published dataset: {store.uri(CURRENT)} does not exist")
        return parse_manifest(found[0], store.uri(CURRENT))
    except DatasetStateError as exc:
        raise DatasetError(str(exc)) from exc


def _sha256(store: DatasetStore, key: str) -> str | None:
    if isinstance(store, LocalStore):  # streamed: a file may be large
        path = Path(store.uri(key))
        return sha256_file(path) if path.is_file() else None
    found = store.read(key)
    return hashlib.sha256(found[0]).hexdigest() if found is not None else None


def dataset_files(location: Path | str, *, verify: bool = False) -> list[str]:
    """The files of the current manifest (paths, or s3:// URIs), optionally checked against
    their sha256 (which reads every file)."""
    return _dataset_files(open_store(location), verify=verify)


def _dataset_files(store: DatasetStore, *, verify: bool) -> list[str]:
    manifest = _current_manifest(store)
    files = []
    for entry in manifest["dataset_files"]:
        key = DATA + entry["path"]
        if verify and _sha256(store, key) != entry["sha256"]:
            raise DatasetError(
                f"{store.uri(key)} is missing or does not match its sha256 in the manifest"
            )
        files.append(store.uri(key))
    if not files:
        raise DatasetError(f"the current manifest of {store.location} lists no files")
    return files


def register_s3(con: duckdb.DuckDBPyConnection) -> None:
    """pyarrow's S3 filesystem as the fsspec filesystem DuckDB routes ``s3://`` to."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    class S3(ArrowFSWrapper):  # type: ignore[misc]
        protocol = "s3"

    if "s3" not in con.list_filesystems():
        con.register_filesystem(S3(s3_filesystem()))


def readable_files(
    con: duckdb.DuckDBPyConnection, location: Path | str, files: list[str]
) -> list[str]:
    """A dataset's file paths or URIs as ``read_parquet`` on ``con`` takes them: S3 URIs with
    the S3 filesystem registered, local paths escaped (a glob character stays a character)."""
    if is_remote(location):
        register_s3(con)
        return files
    return [literal_path(Path(f)) for f in files]


def read_dataset(
    location: Path | str,
    *,
    verify: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> duckdb.DuckDBPyRelation:
    """The dataset as a DuckDB relation, with site_id, year and month from the partitions."""
    con = connection or duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    files = readable_files(con, location, dataset_files(location, verify=verify))
    return con.sql(
        "select * from read_parquet($files, hive_partitioning = true, "
        "hive_types = {'site_id': 'VARCHAR', 'year': 'INTEGER', 'month': 'INTEGER'})",
        params={"files": files},
    )


def read_dataset_arrow(location: Path | str, *, verify: bool = False) -> pads.Dataset:
    """The dataset as a pyarrow dataset over exactly the manifest's files."""
    store = open_store(location)
    files = _dataset_files(store, verify=verify)
    base = store.uri(DATA).rstrip("/")
    filesystem = None
    if is_remote(location):
        filesystem = s3_filesystem()
        files = [f.removeprefix(S3_SCHEME) for f in files]
        base = base.removeprefix(S3_SCHEME)
    return pads.dataset(
        files,
        format="parquet",
        filesystem=filesystem,
        partitioning=pads.partitioning(PARTITION_SCHEMA, flavor="hive"),
        partition_base_dir=base,
    )
