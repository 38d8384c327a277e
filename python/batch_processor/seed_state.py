"""Whether a warehouse already holds this checkout's seeds, loaded and tested.

The seeds (sites, point maps, devices, units, sentinels) change when an analyst edits them,
not per batch, yet loading them and running the 34 tests that read only them is 40 of a
telemetry batch's 99 dbt nodes. A build that loaded them and passed records the project's
state (the digest of every file dbt reads, and the versions of dbt and its packages:
``dbt_runner.project_state``) in ``telemetry_meta.loaded_seeds``; while the project is
unchanged, a batch leaves the seeds out (the tests that also read a model, such as a
relationship to a seed, still run). Any edit (a seed, its column settings, a generic test a
seed uses, a macro) has them loaded and tested once more. Before a build that loads them,
the record is cleared: a build that fails half-way may have reloaded some seed tables, and
must not leave a record that claims the old ones.
"""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from batch_processor import db
from batch_processor.dbt_runner import project_state

log = logging.getLogger(__name__)

TABLE = "telemetry_meta.loaded_seeds"  # created by the macro telemetry_create_meta_tables


def seeds_digest() -> str:
    """The state the seeds are loaded for: the project's (see the module docstring)."""
    return project_state()


def seeds_loaded(warehouse: Path, digest: str) -> bool:
    """True if the last build that loaded the seeds into ``warehouse`` passed, in project
    state ``digest``; a new warehouse, or one from before the record, has them loaded again."""
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
    """After a passed build that loaded the seeds: they are loaded, with ``digest``. A record
    that cannot be written only costs the next batch a reload: a warning, not a failure."""
    try:
        con = db.connect(warehouse)
        try:
            con.execute("begin")
            con.execute(f"delete from {TABLE}")
            con.execute(f"insert into {TABLE} values (?, now())", [digest])
            con.execute("commit")
        finally:
            con.close()
    except (duckdb.Error, OSError) as error:
        log.warning("could not record the loaded seeds in %s: %s", warehouse, error)
