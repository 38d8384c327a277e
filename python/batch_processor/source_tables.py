"""Helpers for loading export files into the all-text source tables the dbt macros define:
the table's columns (read from the table, so the macro stays their one definition), a CSV
file's header, and the select list that maps one onto the other (a column the file lacks is
NULL)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from batch_processor.db import literal_path


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> tuple[str, ...]:
    """The columns of ``schema.table``, in table order."""
    return tuple(
        str(row[0])
        for row in con.execute(
            "select column_name from duckdb_columns() where schema_name = ? and table_name = ? "
            "order by column_index",
            [schema, table],
        ).fetchall()
    )


def csv_header(con: duckdb.DuckDBPyConnection, path: Path) -> set[str]:
    """The column names of a CSV file's header, trimmed and lower-cased."""
    described = con.execute(
        "describe select * from read_csv(?, header = true, all_varchar = true)",
        [literal_path(path)],
    ).fetchall()
    return {str(row[0]).strip().lower() for row in described}


def select_list(columns: tuple[str, ...], present: set[str]) -> str:
    """``columns`` in order, each read from the file when it has it, else NULL text."""
    return ", ".join(
        f'"{column}"' if column in present else f"null::varchar as {column}" for column in columns
    )
