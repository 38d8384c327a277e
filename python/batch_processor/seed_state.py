"""Whether a warehouse already holds this checkout's seeds, loaded and tested.

The seeds (sites, point maps, devices, units, sentinels) change when an analyst edits them,
not per batch, yet loading them and running their ~36 tests is ~40 of a telemetry batch's
~100 dbt nodes. A build that loaded them and passed records the digest of the seed files
(and of dbt_project.yml, which holds their column settings) in ``telemetry_meta.
loaded_seeds``; while the files still have that digest, a batch leaves the seeds out (the
tests that also read a model, such as a relationship to a seed, still run). Before a build
that loads them, the record is cleared: a build that fails half-way may have reloaded some
seed tables, and must not leave a record that claims the old ones.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb

from batch_processor import db
from batch_processor.paths import PROJECT_ROOT, SEEDS_DIR

TABLE = "telemetry_meta.loaded_seeds"  # created by the macro telemetry_create_meta_tables


def seeds_digest() -> str:
    """sha256 of every file under seeds/ (name and content) and of dbt_project.yml."""
    digest = hashlib.sha256()
    files = sorted(p for p in SEEDS_DIR.rglob("*") if p.is_file())
    for path in [*files, PROJECT_ROOT / "dbt_project.yml"]:
        content = path.read_bytes()
        name = path.relative_to(PROJECT_ROOT).as_posix()
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()


def seeds_loaded(warehouse: Path, digest: str) -> bool:
    """True if the last build that loaded the seeds into ``warehouse`` passed, with these
    seed files; a new warehouse, or one from before the record, has them loaded again."""
    if not warehouse.exists():
        return False
    con = db.connect(warehouse, read_only=True)
    try:
        rows = con.execute(f"select digest from {TABLE}").fetchall()
    except duckdb.CatalogException:
        return False
    finally:
        con.close()
    return rows == [(digest,)]


def forget_seeds(warehouse: Path) -> None:
    """Clear the record before a build that loads the seeds (see the module docstring)."""
    if not warehouse.exists():
        return
    con = db.connect(warehouse)
    try:
        con.execute(f"delete from {TABLE}")
    except duckdb.CatalogException:
        pass  # the table comes with the first build
    finally:
        con.close()


def record_seeds(warehouse: Path, digest: str) -> None:
    """After a passed build that loaded the seeds: they are loaded, with ``digest``."""
    con = db.connect(warehouse)
    try:
        con.execute("begin")
        con.execute(f"delete from {TABLE}")
        con.execute(f"insert into {TABLE} values (?, now())", [digest])
        con.execute("commit")
    finally:
        con.close()
