"""Read a PostgreSQL products table batch by batch into the dbt source
``products_raw.products_staging``.

The rows after the watermark are read through one server-side cursor (``DECLARE … CURSOR``,
psycopg's named cursor) over a keyset query ordered by ``(src_updated_at, id)``, so the
server holds the result and the client fetches ``--limit`` rows at a time: memory is bounded
by one batch, and rows sharing a timestamp across a batch boundary are never skipped. The
cursor runs in one read-only transaction, so every batch comes from the same snapshot.

Every column is read as text (typing and normalization are the staging model's job, as for
an export file); the source table's column list comes from the DuckDB table the dbt macro
creates. Rows without an id or src_updated_at can never be batched; they are counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pyarrow as pa
from psycopg import sql

from batch_processor import db
from batch_processor.config import ProductsSettings
from batch_processor.errors import ConfigError, RunFailedError
from batch_processor.products.export_source import (
    REQUIRED_COLUMNS,
    STAGING_TABLE,
    staging_columns,
)

DEFAULT_TABLE: str = ProductsSettings.model_fields["source_table"].default
URL_SCHEMES = ("postgresql://", "postgres://")
_CURSOR_NAME = "products_keyset"


def is_postgres_url(source: str) -> bool:
    return source.startswith(URL_SCHEMES)


def redact(url: str) -> str:
    """The URL without its password, for reports and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _table_identifier(table: str) -> sql.Identifier:
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ConfigError(f"--source-table {table!r}: expected NAME or SCHEMA.NAME")
    return sql.Identifier(*parts)


@dataclass(frozen=True)
class Watermark:
    src_updated_at: datetime
    last_id: int


@dataclass
class PostgresSource:
    """One sync's view of a PostgreSQL table: ``open`` it, then ``stage_next`` per batch."""

    url: str
    table: str = DEFAULT_TABLE

    @property
    def label(self) -> str:
        return f"{redact(self.url)}#{self.table}"

    @contextmanager
    def open(
        self, warehouse: Path, after: Watermark | None, fetch_rows: int
    ) -> Iterator[PostgresBatches]:
        """Open the cursor after ``after``; batches are staged into ``warehouse``."""
        try:
            pg = psycopg.connect(self.url, connect_timeout=10)
        except psycopg.Error as error:
            raise ConfigError(
                f"--input {redact(self.url)}: cannot connect: {str(error).strip()}"
            ) from error
        try:
            pg.read_only = True
            pg.execute("set time zone 'UTC'")
            con = db.connect(warehouse, read_only=True)
            try:
                columns = staging_columns(con)
            finally:
                con.close()
            present = self._columns(pg)
            missing = REQUIRED_COLUMNS - present
            if missing:
                raise ConfigError(
                    f"--input {self.label}: the table lacks required column(s) "
                    + ", ".join(sorted(missing))
                )
            without_cursor = self._count_without_cursor(pg)
            cursor = pg.cursor(name=_CURSOR_NAME)
            cursor.itersize = fetch_rows
            cursor.execute(self._keyset_query(columns, present, after), self._params(after))
            yield PostgresBatches(
                warehouse, cursor, columns, self.label, fetch_rows, without_cursor
            )
            cursor.close()
        except psycopg.Error as error:
            raise RunFailedError(
                f"--input {self.label}: reading failed: {str(error).strip()}"
            ) from error
        finally:
            pg.close()

    def _columns(self, pg: psycopg.Connection[Any]) -> set[str]:
        query = sql.SQL("select * from {} limit 0").format(_table_identifier(self.table))
        try:
            cursor = pg.execute(query)
        except psycopg.errors.UndefinedTable as error:
            raise ConfigError(f"--input {redact(self.url)}: no table {self.table}") from error
        return {column.name.lower() for column in cursor.description or []}

    def _count_without_cursor(self, pg: psycopg.Connection[Any]) -> int:
        query = sql.SQL(
            "select count(*) from {} where id is null or src_updated_at is null"
        ).format(_table_identifier(self.table))
        found = pg.execute(query).fetchone()
        return int(found[0]) if found else 0

    def _keyset_query(
        self, columns: tuple[str, ...], present: set[str], after: Watermark | None
    ) -> sql.Composed:
        select_list = sql.SQL(", ").join(
            sql.SQL("source.{}::text as {}").format(sql.Identifier(column), sql.Identifier(column))
            if column in present
            else sql.SQL("null::text as {}").format(sql.Identifier(column))
            for column in columns
        )
        # Qualified: a bare `order by id` would sort by the text output column ('10' < '9').
        # (ts, NULL) > (x, y) is true when ts > x: the NULL checks stay in the keyset query.
        where = sql.SQL(
            "source.id is not null and source.src_updated_at is not null"
            + ("" if after is None else " and (source.src_updated_at, source.id) > (%s, %s)")
        )
        return sql.SQL(
            "select {} from {} as source where {} order by source.src_updated_at, source.id"
        ).format(select_list, _table_identifier(self.table), where)

    @staticmethod
    def _params(after: Watermark | None) -> list[Any]:
        return [] if after is None else [after.src_updated_at, after.last_id]


@dataclass
class PostgresBatches:
    """The open cursor: each call stages the next batch in place of the previous one.

    The warehouse is opened per batch, never held across one: dbt runs in between."""

    warehouse: Path
    cursor: psycopg.ServerCursor[Any]
    columns: tuple[str, ...]
    label: str
    fetch_rows: int
    rows_without_cursor: int
    rows_read: int = 0

    def stage_next(self) -> int:
        """Replace the source table's rows with the next batch; the number of rows staged.

        A staged row's ``source_line`` is its position in the cursor (1 = first row read)."""
        rows = self.cursor.fetchmany(self.fetch_rows)
        chunk = pa.table(
            {
                name: pa.array(values, pa.string())
                for name, values in zip(
                    self.columns,
                    zip(*rows, strict=True) if rows else [()] * len(self.columns),
                    strict=True,
                )
            }
            | {"position": pa.array(range(self.rows_read + 1, self.rows_read + len(rows) + 1))}
        )
        con = db.connect(self.warehouse)
        try:
            con.execute("begin")
            con.execute(f"delete from {STAGING_TABLE}")
            con.register("postgres_chunk", chunk)
            con.execute(
                f"insert into {STAGING_TABLE} select * exclude (position), $label, position, null "
                "from postgres_chunk",
                {"label": self.label},
            )
            con.execute("commit")
        finally:
            con.close()
        self.rows_read += len(rows)
        return len(rows)


# A products table as a source system keeps it: typed timestamps and JSON, the cursor indexed.
_DEMO_TABLE_DDL = """
create table if not exists {table} (
    id bigint primary key,
    brand_code text,
    sku text,
    name text,
    price text,
    currency text,
    attributes jsonb,
    src_updated_at timestamptz
);
create index if not exists {index} on {table} (src_updated_at, id);
"""


def copy_export_into_postgres(url: str, csv: Path, table: str = DEFAULT_TABLE) -> None:
    """Demos, tests and the benchmark: append a generated CSV export to ``table`` (created if
    missing) with ``COPY … FROM STDIN``, streamed in 64 KB blocks."""
    name = _table_identifier(table)
    index = sql.Identifier(table.replace(".", "_") + "_cursor")
    with psycopg.connect(url) as pg:
        pg.execute(sql.SQL(_DEMO_TABLE_DDL).format(table=name, index=index))
        copy_sql = sql.SQL("copy {} from stdin (format csv, header true)").format(name)
        with pg.cursor().copy(copy_sql) as copy, csv.open("rb") as source:
            while block := source.read(1 << 16):
                copy.write(block)
