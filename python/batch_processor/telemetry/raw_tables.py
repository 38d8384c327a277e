"""The raw telemetry tables the loader fills and dbt reads as sources (schema telemetry_raw).

They hold the current batch only: every load starts by emptying them. History is kept
downstream, in dbt models. Their DDL is the dbt macro ``telemetry_create_raw_tables``, which
on-run-start runs too (so a bare ``dbt build`` works on a fresh warehouse).
"""

import re
from functools import cache

import duckdb

from batch_processor.errors import ConfigError
from batch_processor.paths import MACROS_DIR

RAW_SCHEMA = "telemetry_raw"

RAW_TABLES_MACRO = MACROS_DIR / "telemetry" / "telemetry_create_raw_tables.sql"
_MACRO_BODY = re.compile(
    r"\{%-?\s*macro\s+telemetry_create_raw_tables\(\)\s*-?%\}(?P<body>.*?)\{%-?\s*endmacro",
    re.DOTALL,
)


@cache
def raw_tables_ddl() -> str:
    """The DDL of the raw tables: the body of the dbt macro that on-run-start runs (one
    definition for dbt and the loader). The body is plain SQL; Jinja in it is refused."""
    text = RAW_TABLES_MACRO.read_text(encoding="utf-8")
    match = _MACRO_BODY.search(text)
    if match is None:
        raise ConfigError(f"{RAW_TABLES_MACRO}: no macro telemetry_create_raw_tables() found")
    body = match.group("body")
    if "{{" in body or "{%" in body or "{#" in body:
        raise ConfigError(
            f"{RAW_TABLES_MACRO}: the macro's body must be plain SQL (the loader runs it as is)"
        )
    return body


def ensure_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(raw_tables_ddl())


def clear_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Empty the tables for a new batch (one transaction)."""
    con.execute("begin transaction")
    for table in ("csv_rows", "rejected_rows", "files"):
        con.execute(f"delete from {RAW_SCHEMA}.{table}")
    con.execute("commit")
