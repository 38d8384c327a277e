"""Register a products export folder (CSV / JSON lines files) as the dbt source
``products_raw.products_staging``.

Each file is read by DuckDB on its own (no DataFrames), every column as text (typing is the
staging model's job), with its file and line as lineage. A file that cannot be read at all
(not UTF-8, no header, a required column missing) is set aside with the reason. Inside a
readable file every record ends in the table: a record DuckDB cannot parse (too few or too
many fields, a broken quote, a JSON line that is not a JSON object) is kept as a row whose
``load_error`` holds DuckDB's whole message, and the staging model reports it as rejected
with its file and line.

CSV files are read as RFC 4180 (comma, double quote, quotes doubled inside a field), with an
explicit dialect rather than a sniffed one: a sniffer guesses from the first lines and one
bad quote further down makes it guess wrong for the whole file. Line breaks inside quoted
fields are data. ``source_line`` is DuckDB's line number of the record (the header is
line 1; a quoted line break stays inside its record). JSON lines files are read line by line
and each line parsed as JSON in SQL, so a bad line is a rejected row, not a skipped one.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from batch_processor.checksums import sha256_file
from batch_processor.db import literal_path
from batch_processor.source_tables import table_columns

STAGING_TABLE = "products_raw.products_staging"
# The source table's columns are defined once, by the dbt macro products_create_state_tables;
# the loader reads them from the table. These three, last, are the loader's lineage.
LINEAGE_COLUMNS = ("source_file", "source_line", "load_error")
REQUIRED_COLUMNS = frozenset({"id", "brand_code", "sku", "src_updated_at"})
EXPORT_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
GOOD_TABLE = "products_load_good"
REJECTS_TABLE = "products_load_rejects"
REJECTS_SCAN = "products_load_scans"
MAX_LINE_BYTES = 16 * 1024 * 1024
# One RFC 4180 dialect for the header and the data: Python's csv module and DuckDB agree on it.
CSV_DIALECT = "delim = ',', quote = '\"', escape = '\"'"
JSON_LINE_DELIMITER = "\x1f"  # a raw control character is never inside valid JSON text

# Both formats are read by DuckDB's CSV reader with a rejects table: the good records go to
# a temporary table first (DuckDB fills its rejects table as it reads); the insert then
# numbers them (a good record's line is the k-th line number, from `first_line` on, that is
# not a rejected record's) and adds one row per rejected line with DuckDB's message.
_READ_SQL = """
create or replace temp table {good} as
select *, ordinality as good_number
from read_csv(
    $path, {options}, store_rejects = true, rejects_table = '{rejects}',
    rejects_scan = '{scans}', max_line_size = {max_line}
) with ordinality
"""
_NUMBERED_CTES = """
bad as (
    -- DuckDB writes one reject per missing column: the first column's message is the line's
    select line, arg_min(error_message, column_idx) as message
    from {rejects}
    group by line
),
good_lines as (
    select line, row_number() over (order by line) as good_number
    from range(
        {first_line}, (select count(*) from {good}) + (select count(*) from bad) + {first_line}
    ) as t(line)
    where line not in (select line from bad)
),
numbered as (
    select good.*, good_lines.line
    from {good} as good inner join good_lines using (good_number)
)
"""
# CSV: every field read positionally as c1..cN (the header names are data, never SQL).
_CSV_OPTIONS = f"header = true, auto_detect = false, {CSV_DIALECT}, columns = $columns"
_CSV_INSERT_SQL = """
insert into {table}
with
{numbered_ctes}
select {select_list}, $file, line, null from numbered
union all
select {nulls}, $file, line, message from bad
"""
# JSON lines: one text column per physical line; fields taken from the parsed object.
_JSON_OPTIONS = (
    "header = false, auto_detect = false, delim = $delim, quote = '', escape = '', "
    "columns = {'line_text': 'VARCHAR'}"
)
_JSON_INSERT_SQL = """
insert into {table}
with
{numbered_ctes},
parsed as (
    select
        *,
        case
            when not json_valid(line_text) then 'line is not valid JSON: ' || left(line_text, 200)
            when json_type(line_text) <> 'OBJECT'
                then 'line is a JSON ' || lower(json_type(line_text)) || ', not an object'
            when len(json_keys(line_text)) > len(list_distinct(json_keys(line_text)))
                then 'line holds a key more than once: ' || array_to_string(list_filter(
                    list_distinct(json_keys(line_text)),
                    lambda k: len(list_filter(json_keys(line_text), lambda x: x = k)) > 1
                ), ', ')
        end as problem
    from numbered
    where nullif(trim(line_text), '') is not null
)
select {select_list}, $file, line, problem from parsed
union all
select {nulls}, $file, line, message from bad
"""


@dataclass(frozen=True)
class ExportFile:
    path: str
    size_bytes: int
    sha256: str
    rows: int  # records in the table, rejected records included
    rejected_lines: int  # records DuckDB could not parse (kept as rejected rows)
    status: str  # loaded | partial | rejected
    reason: str | None


def discover_exports(folder: Path) -> list[Path]:
    """Export files under ``folder``, in a stable order; hidden and ``_`` files are skipped."""
    return sorted(
        path
        for path in folder.rglob("*")
        if path.is_file()
        and path.suffix.lower() in EXPORT_SUFFIXES
        and not path.name.startswith((".", "_"))
    )


def staging_columns(con: duckdb.DuckDBPyConnection) -> tuple[str, ...]:
    """The data columns of the source table, in table order (lineage columns excluded)."""
    names = table_columns(con, *STAGING_TABLE.split("."))
    if names[-len(LINEAGE_COLUMNS) :] != LINEAGE_COLUMNS:
        raise RuntimeError(f"{STAGING_TABLE} must end with the lineage columns {LINEAGE_COLUMNS}")
    return names[: -len(LINEAGE_COLUMNS)]


def read_csv_header(path: Path) -> list[str]:
    """The header record of a CSV export (trimmed, lower-cased), read in CSV_DIALECT."""
    with path.open("rb") as stream:
        # decoded one line at a time, only as far as the header record goes: a bad byte
        # further down is DuckDB's to report, as a rejected line
        lines = (line.decode("utf-8") for line in stream)
        header = next(csv.reader(lines, delimiter=",", quotechar='"', doublequote=True), None)
    if header:
        header[0] = header[0].removeprefix("\ufeff")
    if not header or not any(name.strip() for name in header):
        raise ValueError("the file has no header line")
    names = [name.strip().lower() for name in header]
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        raise ValueError(f"the header names column(s) more than once: {', '.join(repeated)}")
    return names


def _check_required(present: set[str]) -> None:
    missing = REQUIRED_COLUMNS - present
    if missing:
        raise ValueError(f"missing required column(s): {', '.join(sorted(missing))}")


def _load(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    *,
    options: str,
    read_params: dict[str, Any],
    insert_sql: str,
    first_line: int,
    select_list: str,
    nulls: str,
) -> None:
    names = {"good": GOOD_TABLE, "rejects": REJECTS_TABLE, "scans": REJECTS_SCAN}
    con.execute(f"drop table if exists {REJECTS_TABLE}; drop table if exists {REJECTS_SCAN}")
    # inside the caller's transaction: a failure rolls the temporary table back with the rest
    con.execute(
        _READ_SQL.format(**names, options=options, max_line=MAX_LINE_BYTES),
        {"path": literal_path(path), **read_params},
    )
    numbered = _NUMBERED_CTES.format(**names, first_line=first_line)
    con.execute(
        insert_sql.format(
            table=STAGING_TABLE, numbered_ctes=numbered, select_list=select_list, nulls=nulls
        ),
        {"file": str(path)},
    )
    con.execute(f"drop table {GOOD_TABLE}")


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...]) -> None:
    header = read_csv_header(path)
    _check_required(set(header))
    position = {name: index for index, name in enumerate(header, start=1)}
    _load(
        con,
        path,
        options=_CSV_OPTIONS,
        read_params={"columns": {f"c{i}": "VARCHAR" for i in range(1, len(header) + 1)}},
        insert_sql=_CSV_INSERT_SQL,
        first_line=2,  # the header is line 1
        select_list=", ".join(f'"c{position[c]}"' if c in position else "null" for c in columns),
        nulls=", ".join("null" for _ in columns),
    )


def _json_field(column: str) -> str:
    """A JSON object's member as text: a string as its value, anything else as JSON text."""
    path = f"'$.\"{column}\"'"
    return (
        f"case when problem is null then case json_type(line_text, {path}) "
        f"when 'VARCHAR' then json_extract_string(line_text, {path}) "
        f"when 'NULL' then null else json_extract(line_text, {path})::varchar end end"
    )


def _load_json_lines(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...]) -> None:
    _load(
        con,
        path,
        options=_JSON_OPTIONS,
        read_params={"delim": JSON_LINE_DELIMITER},
        insert_sql=_JSON_INSERT_SQL,
        first_line=1,
        select_list=", ".join(_json_field(column) for column in columns),
        nulls=", ".join("null" for _ in columns),
    )


def _file_counts(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int, str | None]:
    rows, bad, first = con.execute(
        f"select count(*), count(load_error), "
        f"arg_min('line ' || source_line || ': ' || load_error, source_line) "
        f"filter (where load_error is not null) "
        f"from {STAGING_TABLE} where source_file = ?",
        [str(path)],
    ).fetchall()[0]
    return int(rows), int(bad), first


def register_export(con: duckdb.DuckDBPyConnection, folder: Path) -> list[ExportFile]:
    """Replace the source table's rows with the export in ``folder``; one entry per file."""
    con.execute(f"delete from {STAGING_TABLE}")
    columns = staging_columns(con)
    inventory: list[ExportFile] = []
    for path in discover_exports(folder):
        size, digest = path.stat().st_size, sha256_file(path)
        con.execute("begin")
        try:
            if EXPORT_SUFFIXES[path.suffix.lower()] == "csv":
                _load_csv(con, path, columns)
            else:
                _load_json_lines(con, path, columns)
            rows, bad_lines, first_error = _file_counts(con, path)
        except (duckdb.Error, ValueError, UnicodeDecodeError, csv.Error) as error:
            con.execute("rollback")
            reason = " ".join(str(error).split()) or type(error).__name__
            inventory.append(ExportFile(str(path), size, digest, 0, 0, "rejected", reason))
            continue
        con.execute("commit")
        status = "partial" if bad_lines else "loaded"
        inventory.append(ExportFile(str(path), size, digest, rows, bad_lines, status, first_error))
    return inventory
