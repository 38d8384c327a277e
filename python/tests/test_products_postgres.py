"""Products sync from a real PostgreSQL table (server on loopback, started by
scripts/postgres.sh): the same results as the export folder, tie-safe keyset batches read
through a server-side cursor, resume after a kill, clear errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from batch_processor.errors import ConfigError
from batch_processor.products.generator import generate_products_export
from batch_processor.products.postgres_source import copy_export_into_postgres
from batch_processor.products.sync import KILL_AFTER_BATCHES_ENV, sync_products
from tests.test_products import state

CLI = str(Path(sys.executable).parent / "batch-processor")


def test_postgres_rows_sharing_one_timestamp_arrive_like_the_export_folder(
    tmp_path: Path, postgres_url: str
) -> None:
    export = generate_products_export(
        tmp_path / "in", rows=1_000, seed=4, tie_group=1_000, products=900
    )
    copy_export_into_postgres(postgres_url, export.path)
    warehouse = tmp_path / "pg" / "w.duckdb"

    result = sync_products(postgres_url, warehouse, tmp_path / "pg" / "out", limit=300)
    assert result.error is None, result.error
    assert [b.rows for b in result.batches] == [300, 300, 300, 100]
    assert result.total("rows") == 1_000
    assert result.source == f"{postgres_url}#products_staging"
    rejected = [r for b in result.batches for r in b.rejected_rows]
    assert rejected and all(r["file"] == result.source for r in rejected)

    # the same rows from an export folder give exactly the same warehouse
    from_files = sync_products(
        export.path.parent, tmp_path / "files" / "w.duckdb", tmp_path / "files" / "out", limit=300
    )
    assert from_files.totals() == result.totals()
    assert state(warehouse) == state(tmp_path / "files" / "w.duckdb")

    again = sync_products(postgres_url, warehouse, tmp_path / "pg" / "out", limit=300)
    assert again.error is None and again.batches == []  # resumed after the watermark

    # new rows in the table: only they are read, and only the changed products move
    revision = generate_products_export(
        tmp_path / "rev", rows=1_000, seed=4, products=900, revision=1, changed_fraction=0.2
    )
    copy_export_into_postgres(postgres_url, revision.path)
    later = sync_products(postgres_url, warehouse, tmp_path / "pg" / "out", limit=300)
    assert later.total("rows") == revision.rows
    assert later.total("updated") > 0 and later.total("inserted") == 0


@pytest.mark.slow
def test_postgres_sync_killed_between_batches_resumes_without_loss_or_duplicates(
    tmp_path: Path, postgres_url: str
) -> None:
    export = generate_products_export(tmp_path / "in", rows=1_500, seed=6)
    copy_export_into_postgres(postgres_url, export.path)
    command = [
        CLI, "products", "sync", "--input", postgres_url, "--limit", "400",
        "--warehouse", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "out"),
    ]  # fmt: skip
    env = {**os.environ, KILL_AFTER_BATCHES_ENV: "2"}
    killed = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == -9
    assert state(tmp_path / "w.duckdb")["watermark"][0][2] == 800

    resumed = subprocess.run(command, capture_output=True, text=True, check=False)
    assert resumed.returncode in (0, 3), resumed.stderr
    assert "2 batch(es), 700 rows" in resumed.stdout
    clean = tmp_path / "clean"
    sync_products(postgres_url, clean / "w.duckdb", clean / "out", limit=400)
    got = state(tmp_path / "w.duckdb")
    assert got == state(clean / "w.duckdb")
    keys = [(c[0], c[1], c[4]) for c in got["changes"]]
    assert len(keys) == len(set(keys))  # every change logged once


def test_postgres_rows_without_a_cursor_are_counted_not_synced(
    tmp_path: Path, postgres_url: str
) -> None:
    export = generate_products_export(tmp_path / "in", rows=50, seed=8, products=50)
    copy_export_into_postgres(postgres_url, export.path)
    with psycopg.connect(postgres_url) as pg:
        pg.execute(
            "insert into products_staging values "
            "(9001, 'BR1', 'NO-TIME', 'x', '1.00', 'USD', '{}', null)"
        )
    result = sync_products(postgres_url, tmp_path / "w.duckdb", tmp_path / "out", limit=20)
    assert result.error is None
    assert result.total("rows") == 50
    assert result.rows_without_cursor == 1
    assert "NULL id or src_updated_at" in str(result.first_without_cursor)


@pytest.mark.parametrize(
    ("table_sql", "source_table", "message"),
    [
        (None, "products_staging", "no table products_staging"),
        (
            "create table items (id bigint, brand_code text)",
            "items",
            "the table lacks required column(s) sku, src_updated_at",
        ),
        (None, "a.b.c", "expected NAME or SCHEMA.NAME"),
    ],
)
def test_postgres_source_errors_say_what_is_wrong(
    tmp_path: Path, postgres_url: str, table_sql: str | None, source_table: str, message: str
) -> None:
    if table_sql:
        with psycopg.connect(postgres_url) as pg:
            pg.execute(table_sql)
    with pytest.raises(ConfigError) as caught:
        sync_products(
            postgres_url, tmp_path / "w.duckdb", tmp_path / "out", source_table=source_table
        )
    assert message in str(caught.value)


def test_an_unreachable_postgres_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"postgresql://u:\*\*\*@127\.0\.0\.1:9/db.*cannot"):
        sync_products("postgresql://u:secret@127.0.0.1:9/db", tmp_path / "w.duckdb", tmp_path)
