"""The batch's accounting, read from the warehouse for the batch report and the manifest:
where every line and cell of each input file went (fct_telemetry_file_ledger), the cells
other deliveries replaced (int_telemetry__superseded_cells), conflicting duplicates inside
files (int_telemetry__file_conflicts) and the holes in each site's series
(fct_telemetry_gaps). The SQL models do the counting; this module only reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from batch_processor.db import connect

LEDGER = "telemetry.fct_telemetry_file_ledger"
FILES = "telemetry.dim_telemetry_input_files"
GAPS = "telemetry.fct_telemetry_gaps"
SUPERSEDED = "telemetry_intermediate.int_telemetry__superseded_cells"
CONFLICTS = "telemetry_intermediate.int_telemetry__file_conflicts"
CONFLICTS_LISTED = 100  # the report lists this many conflicts and counts the rest

LINE_FIELDS = (
    "physical_lines",
    "header_lines",
    "blank_lines",
    "rows_read",
    "continuation_lines",
    "rows_rejected",
    "lines_swallowed",
    "lines_set_aside",
)
ROW_FIELDS = ("data_rows", "repeated_header_rows", "bad_timestamp_rows")
CELL_FIELDS = (
    "cells_total",
    "cells_in_untimed_rows",
    "cells_unmapped",
    "cells_blank",
    "cells_duplicate_in_file",
    "cells_conflict_lost",
    "cells_superseded",
    "cells_nulled_sentinel",
    "cells_nulled_out_of_range",
    "cells_nulled_unreliable",
    "cells_nulled_not_a_number",
    "cells_kept",
)
ORDER_FIELDS = ("out_of_order_rows", "repeated_timestamp_rows")


def _records(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description or []]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def file_ledgers(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """One entry per input file: lines, rows and cells by category, and whether they add up."""
    columns = ", ".join(f"l.{c}" for c in (*LINE_FIELDS, *ROW_FIELDS, *CELL_FIELDS))
    order = ", ".join(f"f.{c}" for c in ORDER_FIELDS)
    entries = []
    for row in _records(
        con,
        f"""
        select l.source_file, l.relative_path, l.load_status, {columns}, {order},
            l.lines_balanced, l.rows_balanced, l.cells_balanced
        from {LEDGER} as l inner join {FILES} as f using (file_id)
        order by l.relative_path
        """,
    ):
        entries.append(
            {
                "path": row["source_file"],
                "relative_path": row["relative_path"],
                "status": row["load_status"],
                "lines": {k: row[k] for k in LINE_FIELDS},
                "rows": {k: row[k] for k in (*ROW_FIELDS, *ORDER_FIELDS)},
                "cells": {k.removeprefix("cells_"): row[k] for k in CELL_FIELDS},
                "balanced": bool(
                    row["lines_balanced"] and row["rows_balanced"] and row["cells_balanced"]
                ),
            }
        )
    return entries


def ledger_totals(files: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-file categories summed over the batch."""
    totals: dict[str, Any] = {"files": len(files)}
    for part in ("lines", "rows", "cells"):
        totals[part] = {
            key: sum(entry[part][key] for entry in files)
            for key in (files[0][part] if files else {})
        }
    totals["balanced"] = all(entry["balanced"] for entry in files)
    totals["unbalanced_files"] = [e["relative_path"] for e in files if not e["balanced"]]
    return totals


def superseded_cells(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return [
        {
            "site_id": r["site_id"],
            "losing_file": r["losing_source_file"],
            "losing_batch_id": r["losing_batch_id"],
            "winning_file": r["winning_source_file"],
            "winning_batch_id": r["winning_batch_id"],
            "cells": r["cells"],
            "changed_cells": r["changed_cells"],
            "time_range": [r["first_sample_at"].isoformat(), r["last_sample_at"].isoformat()],
        }
        for r in _records(
            con,
            f"select * from {SUPERSEDED} "
            "order by losing_source_file, winning_source_file, losing_batch_id",
        )
    ]


def file_conflicts(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    found = con.execute(f"select count(*) from {CONFLICTS}").fetchone()
    listed = [
        {
            "file": r["source_file"],
            "reading_at": r["reading_at"].isoformat(),
            "device_id": r["device_id"],
            "point_id": r["point_id"],
            "lines": r["source_lines"],
            "values": r["raw_values"],
            "kept_line": r["kept_line"],
            "kept_value": r["kept_value"],
        }
        for r in _records(
            con,
            f"select * from {CONFLICTS} order by source_file, reading_at, device_id, point_id "
            f"limit {CONFLICTS_LISTED}",
        )
    ]
    return {"count": int(found[0]) if found else 0, "rule": "the last line wins", "first": listed}


def gaps(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    return [
        {
            "site_id": r["site_id"],
            "start": r["gap_start"].isoformat(),
            "end": r["gap_end"].isoformat(),
            "missing_buckets": r["missing_buckets"],
            "duration_hours": round(r["duration_hours"], 4),
            "published_as_empty_rows": r["published_as_empty_rows"],
        }
        for r in _records(con, f"select * from {GAPS} order by site_id, gap_start")
    ]


def batch_accounting(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    """Everything above, as the report and the manifest carry it."""
    files = file_ledgers(con)
    superseded = superseded_cells(con)
    return {
        "ledger": {"totals": ledger_totals(files), "files": files},
        "superseded_cells": superseded,
        "within_file_conflicts": file_conflicts(con),
        "gaps": gaps(con),
    }


def read_accounting(warehouse: Path) -> dict[str, Any] | None:
    """The accounting of the batch the warehouse's raw tables hold, or None when its models
    were not built for that batch (the build failed before them)."""
    if not warehouse.exists():
        return None
    con = connect(warehouse, read_only=True)
    try:
        fresh = con.execute(
            f"""
            select count(*) = 0 from (
                select batch_id from telemetry_raw.files
                except select batch_id from {LEDGER}
            )
            """
        ).fetchone()
        if not fresh or not fresh[0]:
            return None
        return batch_accounting(con)
    except duckdb.CatalogException:
        return None
    finally:
        con.close()
