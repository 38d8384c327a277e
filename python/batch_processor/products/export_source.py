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

# CSV: every field read positionally as c1..cN (the header names are data, never SQL). The
# good records go to a temporary table first (DuckDB fills its rejects table as it reads);
# a good record's line is the k-th line number that is not a rejected record's.
_CSV_READ_SQL = """
create or replace temp table {good} as
select *, ordinality as good_number
from read_csv(
    $path, header = true, auto_detect = false, {dialect}, columns = $columns,
    store_rejects = true, rejects_table = '{rejects}', rejects_scan = '{scans}',
    max_line_size = {max_line}
) with ordinality
"""
_CSV_INSERT_SQL = """
insert into {table}
with
bad as (
    select line, string_agg(distinct error_message, '; ' order by error_message) as message
    from {rejects}
    group by line
),
good_lines as (
    select line, row_number() over (order by line) as good_number
    from range(2, (select count(*) from {good}) + (select count(*) from bad) + 2) as t(line)
    where line not in (select line from bad)
)
select {select_list}, $file, good_lines.line, null
from {good} as good inner join good_lines using (good_number)
union all
select {nulls}, $file, bad.line, bad.message
from bad
"""
# JSON lines: one text column per physical line; fields taken from the parsed object.
_JSON_LOAD_SQL = """
insert into {table}
with lines as (
    select line_text, ordinality as line
    from read_csv(
        $path, header = false, auto_detect = false, delim = $delim, quote = '', escape = '',
        columns = {{'line_text': 'VARCHAR'}}, max_line_size = {max_line}
    ) with ordinality
    where nullif(trim(line_text), '') is not null
),
parsed as (
    select
        *,
        case
            when not json_valid(line_text) then 'line is not valid JSON: ' || left(line_text, 200)
            when json_type(line_text) <> 'OBJECT'
                then 'line is a JSON ' || lower(json_type(line_text)) || ', not an object'
        end as problem
    from lines
)
select {select_list}, $file, line, problem
from parsed
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
    with path.open(encoding="utf-8-sig", newline="") as stream:
        header = next(csv.reader(stream, delimiter=",", quotechar='"', doublequote=True), None)
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


def _load_csv(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...]) -> None:
    header = read_csv_header(path)
    _check_required(set(header))
    position = {name: index for index, name in enumerate(header, start=1)}
    select_list = ", ".join(
        f'good."c{position[column]}"' if column in position else "null" for column in columns
    )
    names = {"good": GOOD_TABLE, "rejects": REJECTS_TABLE, "scans": REJECTS_SCAN}
    con.execute(f"drop table if exists {REJECTS_TABLE}; drop table if exists {REJECTS_SCAN}")
    try:
        con.execute(
            _CSV_READ_SQL.format(**names, dialect=CSV_DIALECT, max_line=MAX_LINE_BYTES),
            {
                "path": literal_path(path),
                "columns": {f"c{index}": "VARCHAR" for index in range(1, len(header) + 1)},
            },
        )
        con.execute(
            _CSV_INSERT_SQL.format(
                **names,
                table=STAGING_TABLE,
                select_list=select_list,
                nulls=", ".join("null" for _ in columns),
            ),
            {"file": str(path)},
        )
    finally:
        con.execute(f"drop table if exists {GOOD_TABLE}")


def _json_field(column: str) -> str:
    """A JSON object's member as text: a string as its value, anything else as JSON text."""
    path = f"'$.\"{column}\"'"
    return (
        f"case when problem is null then case json_type(line_text, {path}) "
        f"when 'VARCHAR' then json_extract_string(line_text, {path}) "
        f"when 'NULL' then null else json_extract(line_text, {path})::varchar end end"
    )


def _load_json_lines(con: duckdb.DuckDBPyConnection, path: Path, columns: tuple[str, ...]) -> None:
    sql = _JSON_LOAD_SQL.format(
        table=STAGING_TABLE,
        max_line=MAX_LINE_BYTES,
        select_list=", ".join(_json_field(column) for column in columns),
    )
    con.execute(sql, {"path": literal_path(path), "file": str(path), "delim": JSON_LINE_DELIMITER})


def _file_counts(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[int, int, str | None]:
    rows, bad, first = con.execute(
        f"select count(*), count(load_error), "
        f"min('line ' || source_line || ': ' || load_error) filter (where load_error is not null) "
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
