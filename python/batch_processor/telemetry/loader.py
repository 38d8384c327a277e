"""Register a batch of raw telemetry CSVs in DuckDB, one file at a time, isolating bad ones.

Python only decides what to read and records the outcome; DuckDB reads each file directly
(no DataFrames), keeps row-level rejects, and the per-file counts are computed in SQL once
for the whole batch.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import duckdb

from batch_processor.checksums import FileScan, normalize_line_endings, scan_file
from batch_processor.config import TelemetryConfig
from batch_processor.db import connect, literal_path
from batch_processor.progress import track
from batch_processor.telemetry.discover import discover_files, refusal
from batch_processor.telemetry.probe import ProbeRejection, ProbeResult, probe_file
from batch_processor.telemetry.raw_tables import RAW_SCHEMA, clear_raw_tables, ensure_raw_tables
from batch_processor.telemetry.sites import Site, SiteRegistry

log = logging.getLogger(__name__)

_REJECTS_TABLE = "csv_reject_errors"
_REJECTS_SCAN = "csv_reject_scans"

# The batch is staged in temporary tables of the same shape, one transaction per file (a file
# that fails is rolled back alone), and written to the raw tables in one transaction at the
# end: a commit to the warehouse file costs about as much as reading a file, and nothing of
# the batch reaches the warehouse before it is complete.
_RAW_TABLES = ("files", "csv_rows", "rejected_rows")
_STAGED = {table: f"temp.staged_{table}" for table in _RAW_TABLES}

# One statement reads a whole file: typed as text (typing is dbt's job), no sniffing, rejects
# kept, one row per CSV row with its cells as a list (blank cells kept as NULL). Columns are
# named c0..cN so that no name from the file ever appears in SQL text; the real names are
# recorded as the file's value_columns.
_READ_FILE_SQL = f"""
insert into {_STAGED["csv_rows"]} (file_id, source_line, raw_timestamp, raw_values)
select $file_id, ordinality + $header_line, c{{ts}}, [{{cells}}]
from read_csv(
    $path,
    header = true,
    skip = $skip,
    auto_detect = false,
    columns = $columns,
    delim = $delimiter,
    quote = '"',
    escape = '"',
    store_rejects = true,
    rejects_table = '{_REJECTS_TABLE}',
    rejects_scan = '{_REJECTS_SCAN}'
) with ordinality
"""

_COPY_REJECTS_SQL = f"""
insert into {_STAGED["rejected_rows"]}
select
    $file_id,
    line,
    list_extract($names, cast(substr(column_name, 2) as integer) + 1),
    error_type,
    csv_line,
    error_message
from temp.{_REJECTS_TABLE}
"""

_INSERT_FILE_SQL = f"""
insert into {_STAGED["files"]} (
    batch_id, file_id, path, relative_path, site_id, size_bytes, sha256, modified_at,
    status, reason, header_line, column_names, timestamp_column, loaded_at,
    physical_lines, blank_data_lines, line_endings, csv_delimiter, value_columns
) values (
    $batch_id, $file_id, $path, $relative_path, $site_id, $size_bytes, $sha256, $modified_at,
    $status, $reason, $header_line, $column_names, $timestamp_column, now(),
    $physical_lines, $blank_data_lines, $line_endings, $csv_delimiter, $value_columns
)
"""

# Per-file counts and the whole-file reject rule, for the whole batch at once.
_FINISH_BATCH_STATEMENTS = [
    f"""
-- DuckDB numbers accepted rows; shift each row past the rejected lines before it so that
-- source_line is the physical line (exact unless blank lines or quoted newlines precede it).
update {_STAGED["csv_rows"]} as r
set source_line = r.source_line + shift.n
from (
    select rd.file_id, rd.source_line, count(*) as n
    from {_STAGED["csv_rows"]} as rd
    inner join (
        select file_id, line, row_number() over (partition by file_id order by line) as rank
        from (select distinct file_id, line from {_STAGED["rejected_rows"]} where line is not null)
    ) as rj
        on rd.file_id = rj.file_id and rj.line - rj.rank < rd.source_line
    group by all
) as shift
where r.file_id = shift.file_id and r.source_line = shift.source_line
""",
    # The cells of the rows that hold a line break (few): the quoting checks below read them.
    f"""
create or replace temp table multiline_cells as
with candidates as (
    select r.file_id, r.source_line, r.raw_timestamp, r.raw_values, f.value_columns,
        f.timestamp_column, f.csv_delimiter
    from {_STAGED["csv_rows"]} r inner join {_STAGED["files"]} f using (file_id)
    where contains(r.raw_timestamp, chr(10))
        or len(list_filter(r.raw_values, lambda v: contains(v, chr(10)))) > 0
),
cells as (
    select file_id, source_line, unnest(value_columns) as raw_column,
        unnest(raw_values) as cell, csv_delimiter, false as is_timestamp
    from candidates
    union all
    select file_id, source_line, timestamp_column, raw_timestamp, csv_delimiter, true
    from candidates
)
select * from cells where contains(cell, chr(10))
""",
    # A quote opened in one row and closed rows later makes one cell of many lines: DuckDB
    # returns it as a row whose cell holds the delimiters of the rows it swallowed. Such a row
    # is rejected (its values belong to other times), and its lines count as swallowed.
    """
create or replace temp table quoted_rows as
select file_id, source_line, min(raw_column) as raw_column, arg_min(cell, raw_column) as cell
from temp.multiline_cells
where contains(cell, csv_delimiter)
group by file_id, source_line
""",
    f"""
insert into {_STAGED["rejected_rows"]}
select
    file_id,
    source_line,
    raw_column,
    'QUOTED ROWS',
    left(cell, 500),
    format(
        'a quoted cell in {{}} runs over {{}} more line(s) and holds their delimiters: a quote '
        || 'opened here closes on a later line; the row and those lines are set aside',
        raw_column, len(string_split(cell, chr(10))) - 1
    )
from temp.quoted_rows
""",
    f"""
delete from {_STAGED["csv_rows"]} as r
where exists (
    select 1 from temp.quoted_rows q where q.file_id = r.file_id and q.source_line = r.source_line
)
""",
    f"""
update {_STAGED["files"]} as f
set rows_read = coalesce(c.rows_read, 0), rows_rejected = coalesce(c.rows_rejected, 0)
from (
    select f2.file_id,
        (select count(*) from {_STAGED["csv_rows"]} r where r.file_id = f2.file_id) as rows_read,
        (select count(distinct coalesce(line, -1)) from {_STAGED["rejected_rows"]} j
         where j.file_id = f2.file_id) as rows_rejected
    from {_STAGED["files"]} f2
    where f2.status = 'loaded'
) as c
where f.file_id = c.file_id
""",
    # The line ledger: every physical line after the header is a row read, a rejected row, a
    # blank line, or swallowed (inside a quoted field that ran on: DuckDB reports a row whose
    # quote never closes as one rejected row, whatever it swallowed). Counted from the lines
    # the loader measured itself, not from DuckDB's reject count.
    # Line breaks inside the quoted cells of rows read are continuation lines, not losses
    # (empty lines inside a cell are blank lines, which the scan counted already).
    f"""
update {_STAGED["files"]} as f
set continuation_lines = coalesce(c.breaks, 0)
from (
    select f2.file_id, (
        select sum(
            len(string_split(m.cell, chr(10))) - 1
            - len(list_filter(
                string_split(m.cell, chr(10))[2:-2], lambda s: s = '' or s = chr(13)
            ))
        )
        from temp.multiline_cells m
        where m.file_id = f2.file_id
            and not exists (
                select 1 from temp.quoted_rows q
                where q.file_id = m.file_id and q.source_line = m.source_line
            )
    ) as breaks
    from {_STAGED["files"]} f2
    where f2.status = 'loaded'
) as c
where f.file_id = c.file_id
""",
    f"""
update {_STAGED["files"]}
set lines_swallowed = physical_lines - header_line - blank_data_lines - rows_read
    - continuation_lines - rows_rejected
where status = 'loaded'
""",
    f"""
update {_STAGED["files"]}
set status = 'rejected',
    reason = case
        when rows_read = 0 and rows_rejected = 0 and lines_swallowed = 0 then 'no data rows'
        else format(
            '{{}} of {{}} data lines lost ({{}} rejected row(s), {{}} line(s) swallowed by a '
            || 'quoting error), more than {{}} %: the file is set aside',
            rows_rejected + lines_swallowed, rows_read + rows_rejected + lines_swallowed,
            rows_rejected, lines_swallowed, round($max_reject_ratio * 100, 1)
        )
    end
where status = 'loaded'
  and (
    rows_read = 0
    or rows_rejected + lines_swallowed
    > $max_reject_ratio * (rows_read + rows_rejected + lines_swallowed)
  )
""",
    f"""
update {_STAGED["files"]} as f
set status = 'partial',
    reason = case
        when lines_swallowed = 0
            then format('{{}} row(s) rejected; see telemetry_raw.rejected_rows', rows_rejected)
        else format(
            '{{}} row(s) rejected and {{}} line(s) swallowed by a quoting error{{}}; '
            || 'see telemetry_raw.rejected_rows',
            rows_rejected, lines_swallowed,
            coalesce(
                (select format(' (from line {{}})', min(line)) from {_STAGED["rejected_rows"]} j
                 where j.file_id = f.file_id and j.line is not null),
                ''
            )
        )
    end
where f.status = 'loaded' and (f.rows_rejected > 0 or f.lines_swallowed > 0)
""",
    f"""
delete from {_STAGED["csv_rows"]}
where file_id in (select file_id from {_STAGED["files"]} where status = 'rejected')
""",
    # the whole batch reaches the raw tables at once
    *(
        f"insert into {RAW_SCHEMA}.{table} by name select * from {_STAGED[table]}"
        for table in _RAW_TABLES
    ),
]


@dataclass
class LoadSummary:
    """What a load did, by file status, for the CLI and the batch report."""

    batch_id: str
    files_total: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    rows_read: int = 0
    rows_rejected: int = 0
    lines_swallowed: int = 0
    set_aside: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    seconds: float = 0.0

    @property
    def has_rejects(self) -> bool:
        return bool(self.set_aside) or self.rows_rejected > 0 or self.lines_swallowed > 0


def first_error_line(exc: BaseException) -> str:
    """DuckDB errors run to many lines of advice; keep the ones that say what and where."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    keep = [lines[0]] if lines else [type(exc).__name__]
    keep += [line for line in lines[1:] if line.startswith(("Original Line", "CSV Error on Line"))]
    return " | ".join(keep)[:500]


def _modified_at(path: Path) -> datetime:
    try:
        return datetime.fromtimestamp(path.lstat().st_mtime, tz=UTC)
    except OSError:  # gone since it was listed
        return datetime.now(UTC)


class TelemetryLoader:
    """Loads one batch into the ``telemetry_raw`` tables."""

    def __init__(self, config: TelemetryConfig, batch_id: str) -> None:
        self.config = config
        self.batch_id = batch_id
        self.registry = SiteRegistry.from_seed(config.sites_seed)

    def load(
        self,
        input_dir: Path,
        *,
        only_site: str | None = None,
        only_files: frozenset[str] | None = None,
    ) -> LoadSummary:
        """``only_files`` (relative paths) is a shard's share of a batch: the other files
        are another shard's, so they are not recorded here at all (``only_site`` records
        them as skipped)."""
        started = time.monotonic()
        files = discover_files(input_dir, self.config.input_pattern)
        if only_files is not None:
            files = [(path, relative) for path, relative in files if str(relative) in only_files]
        self._input_dir = input_dir
        log.info(
            "found %d file(s) matching %r under %s",
            len(files),
            self.config.input_pattern,
            input_dir,
        )
        con = self._connect()
        try:
            ensure_raw_tables(con)
            clear_raw_tables(con)
            for table in _RAW_TABLES:  # the raw tables' shape, without their constraints
                con.execute(
                    f"create temp table staged_{table} as select * from {RAW_SCHEMA}.{table} "
                    "limit 0"
                )
            json_logs = self.config.log_format == "json"
            for file_id, (path, relative) in enumerate(
                track(files, len(files), "loading files", json_logs=json_logs), start=1
            ):
                self._load_one(con, file_id, path, relative, only_site)
            self._finish_batch(con)
            summary = self._summarize(con)
        finally:
            con.close()
        summary.seconds = time.monotonic() - started
        return summary

    def _connect(self) -> duckdb.DuckDBPyConnection:
        return connect(
            self.config.warehouse,
            memory_limit_mb=self.config.memory_limit_mb,
            temp_directory=self.config.spill_directory,
        )

    def _load_one(
        self,
        con: duckdb.DuckDBPyConnection,
        file_id: int,
        path: Path,
        relative: PurePosixPath,
        only_site: str | None,
    ) -> None:
        refused = refusal(path, self._input_dir, self.config.link_roots)
        if refused is not None:
            # not read at all (a link out of the input folder, a pipe): no bytes or lines
            record = self._file_record(file_id, path, relative, modified_at=_modified_at(path))
            record["reason"] = refused
            self._record(con, record, path)
            return
        stat = path.stat()
        scan = scan_file(path)
        record = self._file_record(
            file_id,
            path,
            relative,
            modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
            size_bytes=scan.size_bytes,
            sha256=scan.sha256,
            physical_lines=scan.lines,
            line_endings=scan.line_endings,
        )
        site = self.registry.resolve(relative)
        if site is None:
            record["reason"] = (
                "cannot tell the site: no folder is named after a site and the file name matches "
                f"no site's file_name_pattern (sites: {', '.join(self.registry.site_ids)})"
            )
            self._record(con, record, path)
            return
        record["site_id"] = site.site_id
        if only_site is not None and site.site_id != only_site:
            record["status"], record["reason"] = "skipped", f"not selected (--site {only_site})"
            self._record(con, record, path)
            return
        try:
            probe = probe_file(
                path, delimiter=site.csv_delimiter, timestamp_column=site.timestamp_column
            )
        except ProbeRejection as exc:
            record["reason"] = str(exc)
            self._record(con, record, path)
            return
        except OSError as exc:
            record["reason"] = f"cannot read the file: {exc.strerror or exc}"
            self._record(con, record, path)
            return
        record.update(
            header_line=probe.header_line,
            column_names=list(probe.column_names),
            timestamp_column=site.timestamp_column,
            csv_delimiter=site.csv_delimiter,
            value_columns=[
                name
                for index, name in enumerate(probe.column_names)
                if index != probe.timestamp_index
            ],
        )
        try:
            blank_lines = self._read(con, file_id, path, site, probe, scan)
        except duckdb.Error as exc:
            con.execute("rollback")
            record["reason"] = f"unreadable CSV: {first_error_line(exc)}"
            self._record(con, record, path)
            return
        after = path.stat()
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (
            stat.st_size,
            stat.st_mtime_ns,
            stat.st_ino,
        ):
            con.execute("rollback")
            record["reason"] = (
                f"changed while reading (size {stat.st_size} -> {after.st_size} bytes): set "
                "aside, its checksum would not describe what was loaded; deliver it again once "
                "it is complete"
            )
            self._record(con, record, path)
            return
        record["status"] = "loaded"
        record["blank_data_lines"] = blank_lines - probe.preamble_blank_lines
        self._record(con, record, path)
        con.execute("commit")

    def _file_record(
        self,
        file_id: int,
        path: Path,
        relative: PurePosixPath,
        *,
        modified_at: datetime,
        size_bytes: int = 0,
        sha256: str = "",
        physical_lines: int = 0,
        line_endings: str | None = None,
    ) -> dict[str, object]:
        """The file's row of telemetry_raw.files, rejected until the load says otherwise."""
        return {
            "batch_id": self.batch_id,
            "file_id": file_id,
            "path": str(path),
            "relative_path": str(relative),
            "site_id": None,
            "size_bytes": size_bytes,
            "sha256": sha256,
            "modified_at": modified_at,
            "status": "rejected",
            "reason": None,
            "header_line": None,
            "column_names": None,
            "timestamp_column": None,
            "physical_lines": physical_lines,
            "blank_data_lines": None,
            "line_endings": line_endings,
            "csv_delimiter": None,
            "value_columns": None,
        }

    def _finish_batch(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("begin transaction")
        for statement in _FINISH_BATCH_STATEMENTS:
            params = {"max_reject_ratio": self.config.max_reject_ratio}
            con.execute(statement, params if "$max_reject_ratio" in statement else None)
        con.execute("commit")

    def _read(
        self,
        con: duckdb.DuckDBPyConnection,
        file_id: int,
        path: Path,
        site: Site,
        probe: ProbeResult,
        scan: FileScan,
    ) -> int:
        """Insert the file's cells and its rejected rows; leaves the transaction open.
        Returns the file's blank lines, as counted on what was read.

        DuckDB's strict parser stops at a line ending that changes half-way through a file
        (LF, then CRLF) and at lone CR endings: such a file is read from a copy whose line
        endings are all LF, which keeps every line and its number."""
        if not scan.needs_normalizing:
            self._read_csv(con, file_id, path, site, probe)
            return scan.blank_lines
        self.config.spill_directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.config.spill_directory) as spool:
            normalized = Path(spool) / "normalized.csv"
            normalize_line_endings(path, normalized)
            self._read_csv(con, file_id, normalized, site, probe)
            return scan_file(normalized).blank_lines  # empty lines between lone CRs too

    def _read_csv(
        self,
        con: duckdb.DuckDBPyConnection,
        file_id: int,
        path: Path,
        site: Site,
        probe: ProbeResult,
    ) -> None:
        names = list(probe.column_names)
        con.execute(f"drop table if exists temp.{_REJECTS_TABLE}")
        con.execute(f"drop table if exists temp.{_REJECTS_SCAN}")
        con.execute("begin transaction")
        con.execute(
            _READ_FILE_SQL.format(
                ts=probe.timestamp_index,
                cells=", ".join(
                    f"c{i}" for i in range(len(names)) if i != probe.timestamp_index
                ),
            ),
            {
                "file_id": file_id,
                "header_line": probe.header_line,
                "path": literal_path(path),  # a name is data, never a glob
                "skip": probe.header_line - 1,
                "columns": {f"c{i}": "VARCHAR" for i in range(len(names))},
                "delimiter": site.csv_delimiter,
            },
        )
        con.execute(_COPY_REJECTS_SQL, {"file_id": file_id, "names": names})

    def _record(
        self, con: duckdb.DuckDBPyConnection, record: dict[str, object], path: Path
    ) -> None:
        con.execute(_INSERT_FILE_SQL, record)
        if record["status"] != "loaded":
            log.warning(
                "%s: %s: %s",
                record["status"],
                path,
                record["reason"],
                extra={"file": str(path), "status": record["status"], "reason": record["reason"]},
            )

    def _summarize(self, con: duckdb.DuckDBPyConnection) -> LoadSummary:
        summary = LoadSummary(batch_id=self.batch_id)
        for status, count, rows_read, rows_rejected, swallowed in con.execute(
            f"""
            select status, count(*), coalesce(sum(rows_read), 0), coalesce(sum(rows_rejected), 0),
                coalesce(sum(lines_swallowed), 0)
            from {RAW_SCHEMA}.files group by status order by status
            """
        ).fetchall():
            summary.by_status[status] = count
            summary.files_total += count
            summary.rows_read += rows_read
            summary.rows_rejected += rows_rejected
            summary.lines_swallowed += swallowed
        summary.set_aside = [
            (rel, reason)
            for rel, reason in con.execute(
                f"""
                select relative_path, reason from {RAW_SCHEMA}.files
                where status in ('rejected', 'partial') order by relative_path
                """
            ).fetchall()
        ]
        return summary
