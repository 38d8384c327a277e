"""Proof that an export folder is the one the last sync took in whole, unchanged since.

A sync of an export folder registers every file again and runs a dbt build over all its rows,
even when nothing changed: ~9 CPU-s for 100 k rows, ~25 for 1 M, to find that there is
nothing to do. After a sync that completed (every batch committed, the source drained), its
export is recorded in ``products.last_sync_input`` (one row, replaced by every sync): the
source name, a digest of each file (path, size, sha256), of the project
(``dbt_runner.project_state``: the models that judged the rows) and of the code that
registers an export (``export_source.py``), the watermark's batch id it
ended at, and the files' inventory. The next sync with the same source name, the same digest
and the same watermark (no batch of another sync moved it) has nothing to take in: the
source table still holds that export's rows and the models built from them still stand, so
it reads the rows without a cursor and the unsynced rows from them as a full sync would, and
runs no dbt build. The record is cleared before any sync registers an export, so a sync that
fails or is killed half-way leaves none.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path

import duckdb

from batch_processor import db
from batch_processor.checksums import sha256_file
from batch_processor.dbt_runner import project_state
from batch_processor.products import export_source
from batch_processor.products.export_source import ExportFile, discover_exports

log = logging.getLogger(__name__)

TABLE = "products.last_sync_input"  # created by the macro products_create_state_tables
_WATERMARK_BATCH_SQL = "select batch_id from products.etl_watermark where source_name = ?"
# the models the sync reads its counts from (rows without a cursor, unsynced rows)
_COUNTED_FROM = (
    "products_staging.stg_products__staging",
    "products_intermediate.int_products__unsynced_rows",
)


def export_digest(folder: Path) -> str:
    """Digest of the export files under ``folder`` (path, size, content), of the project and
    of the code that registers them (export_source.py: its dialect, numbering, statuses)."""
    digest = hashlib.sha256(project_state().encode())
    digest.update(Path(export_source.__file__).read_bytes())
    for path in discover_exports(folder):
        digest.update(f"\n{path}\0{path.stat().st_size}\0{sha256_file(path)}".encode())
    return digest.hexdigest()


def unchanged_export(warehouse: Path, source_name: str, digest: str) -> list[ExportFile] | None:
    """The inventory of the export the last sync took in, if it is this one (``digest``),
    of ``source_name``, and the watermark is where that sync left it; otherwise None."""
    if not warehouse.exists():
        return None
    con = db.connect(warehouse, read_only=True)
    try:
        recorded = con.execute(
            f"select source_name, export_digest, watermark_batch_id, files_json from {TABLE}"
        ).fetchall()
        watermark = con.execute(_WATERMARK_BATCH_SQL, [source_name]).fetchall()
        for view in _COUNTED_FROM:  # the sync counts from them: gone, it builds again
            con.execute(f"select 1 from {view} limit 0").fetchall()
    except duckdb.CatalogException:  # a warehouse from before the record, a view dropped
        return None
    finally:
        con.close()
    if len(recorded) != 1:
        return None
    name, recorded_digest, batch_id, files_json = recorded[0]
    current_batch = watermark[0][0] if watermark else None
    if (name, recorded_digest, batch_id) != (source_name, digest, current_batch):
        return None
    return [ExportFile(**entry) for entry in json.loads(files_json)]


def forget_export(warehouse: Path) -> None:
    """Clear the record: the source table is about to be registered again."""
    con = db.connect(warehouse)
    try:
        con.execute(f"delete from {TABLE}")
    finally:
        con.close()


def record_export(
    warehouse: Path, source_name: str, digest: str, files: list[ExportFile], sync_id: str
) -> None:
    """After a sync that took ``files`` in whole: the record the next sync compares with. One
    that cannot be written only costs the next sync a full build: a warning."""
    try:
        _write_record(warehouse, source_name, digest, files, sync_id)
    except (duckdb.Error, OSError) as error:
        log.warning("could not record the export in %s: %s", warehouse, error)


def _write_record(
    warehouse: Path, source_name: str, digest: str, files: list[ExportFile], sync_id: str
) -> None:
    con = db.connect(warehouse)
    try:
        con.execute("begin")
        con.execute(f"delete from {TABLE}")
        con.execute(
            f"insert into {TABLE} select ?, ?, ({_WATERMARK_BATCH_SQL}), ?, ?, now()",
            [
                source_name,
                digest,
                source_name,
                json.dumps([asdict(f) for f in files]),
                sync_id,
            ],
        )
        con.execute("commit")
    finally:
        con.close()
