"""The telemetry quality report: one self-contained HTML page per published dataset, what a
plant engineer looks at instead of reading JSON.

Per site: every channel over time with its flagged buckets marked by flag, the gaps shaded,
and a daily heat map of the flags; then the batches and the latest batch's ledger as tables.
Read through the manifest (``reader.read_dataset``); the figures' data comes from DuckDB
queries over it (SQL does the aggregation), plotted with plotly, whose JavaScript is inlined
once: the page needs no network. A site with more buckets than ``MAX_POINTS`` is plotted as
coarser means (said on the page), so the page stays small for years of data.
"""

from __future__ import annotations

import csv
import html
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from batch_processor.dataset_commit import DatasetPaths, as_dataset_paths, publish_report
from batch_processor.durable import replace_atomic
from batch_processor.paths import TELEMETRY_POINTS_SEED
from batch_processor.reader import current_manifest, read_dataset

REPORT_NAME = "quality_report.html"
MAX_POINTS = 2000  # buckets per site and channel on the page; more are averaged
NICE_STEPS = (5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)  # minutes
FLAG_COLOURS = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
GAP_COLOUR = "rgba(120, 120, 120, 0.18)"
NOT_CHANNELS = {"sample_count", "conflicting_cells", "coverage", "year", "month"}


@dataclass(frozen=True)
class SiteFigures:
    site_id: str
    step_minutes: int  # the plotted step (the dataset's, or coarser means)
    channels: str  # the channels figure, HTML fragment
    heat_map: str  # the daily flag heat map, HTML fragment
    flags: dict[str, int]  # flagged buckets per flag


def _points() -> dict[str, str]:
    """Mart column name -> canonical point id (seed telemetry_points)."""
    with TELEMETRY_POINTS_SEED.open(newline="", encoding="utf-8") as seed:
        return {row["column_name"]: row["point_id"] for row in csv.DictReader(seed)}


def _channels(con: duckdb.DuckDBPyConnection) -> list[str]:
    described = con.execute("describe dataset").fetchall()
    return [
        str(name)
        for name, kind, *_ in described
        if str(kind) == "DOUBLE" and str(name) not in NOT_CHANNELS
    ]


def _step_minutes(con: duckdb.DuckDBPyConnection, site: str) -> tuple[int, int]:
    """(the dataset's step, the plotted step) for ``site``, in minutes."""
    buckets, native = con.execute(
        """
        select count(*),
            coalesce(median(epoch(next_at - timestamp)) / 60, 5)
        from (select timestamp, lead(timestamp) over (order by timestamp) as next_at
              from dataset where site_id = $site)
        """,
        {"site": site},
    ).fetchall()[0]
    native_minutes = max(1, round(float(native)))
    wanted = native_minutes * max(1, math.ceil(int(buckets) / MAX_POINTS))
    # a coarser step that lines up with hours and days
    step = next((s for s in NICE_STEPS if s >= wanted and s % native_minutes == 0), wanted)
    return native_minutes, native_minutes if wanted == native_minutes else step


def _series(
    con: duckdb.DuckDBPyConnection, site: str, channels: list[str], step: int
) -> dict[str, list[Any]]:
    quoted = [c.replace('"', '""') for c in channels]
    means = ", ".join(f'avg("{c}") as "{c}"' for c in quoted)
    rows = con.execute(
        f"""
        select time_bucket(to_minutes($step), timestamp) as bucket_at, {means}
        from dataset where site_id = $site group by all order by bucket_at
        """,
        {"site": site, "step": step},
    )
    names = [d[0] for d in rows.description or []]
    columns = list(zip(*rows.fetchall(), strict=False)) or [()] * len(names)
    return {name: list(values) for name, values in zip(names, columns, strict=True)}


def _channel_flags(
    con: duckdb.DuckDBPyConnection, site: str, channels: list[str], step: int
) -> list[tuple[str, str, datetime]]:
    """(channel, flag, plotted bucket) of every flagged reading of a device of the site."""
    points = _points()
    wanted = {points.get(c, c): c for c in channels}
    return [
        (wanted[str(point)], str(flag), at)
        for point, flag, at in con.execute(
            """
            select distinct r.point_id, flag, time_bucket(to_minutes($step), d.timestamp)
            from dataset as d, unnest(d.device_readings) as u(r), unnest(r.quality_flags)
                as f(flag)
            where d.site_id = $site and list_contains($points, r.point_id)
            order by all
            """,
            {"site": site, "step": step, "points": list(wanted)},
        ).fetchall()
    ]


def _bucket_flags(
    con: duckdb.DuckDBPyConnection, site: str, step: int
) -> list[tuple[str, datetime, int]]:
    """(flag, plotted bucket, buckets flagged) of every bucket-level flag."""
    return [
        (str(flag), at, int(count))
        for flag, at, count in con.execute(
            """
            select flag, time_bucket(to_minutes($step), timestamp) as bucket_at, count(*)
            from dataset, unnest(quality_flags) as f(flag)
            where site_id = $site group by all order by all
            """,
            {"site": site, "step": step},
        ).fetchall()
    ]


def _gaps(
    con: duckdb.DuckDBPyConnection, site: str, native: int
) -> list[tuple[datetime, datetime]]:
    """Spans without data: runs of published empty buckets (no sample) and stretches with no
    bucket at all (a gap too long to publish as empty rows)."""
    return list(
        con.execute(
            """
            with buckets as (
                select timestamp, coalesce(sample_count, 0) = 0 as empty,
                    lead(timestamp) over (order by timestamp) as next_at
                from dataset where site_id = $site
            ),
            runs as (
                select timestamp, empty, next_at,
                    sum(case when empty then 0 else 1 end) over (order by timestamp) as run
                from buckets
            )
            select min(timestamp), max(timestamp) + to_minutes($native)
            from runs where empty group by run
            union all
            select timestamp + to_minutes($native), next_at
            from buckets where next_at - timestamp > to_minutes($native)
            order by 1
            """,
            {"site": site, "native": native},
        ).fetchall()
    )


def _daily_flags(con: duckdb.DuckDBPyConnection, site: str) -> list[tuple[str, str, int]]:
    return [
        (str(day), str(flag), int(count))
        for day, flag, count in con.execute(
            """
            select strftime(timestamp, '%Y-%m-%d') as day, flag, count(*)
            from dataset, unnest(quality_flags) as f(flag)
            where site_id = $site group by all order by all
            """,
            {"site": site},
        ).fetchall()
    ]


def _colours(flags: list[str]) -> dict[str, str]:
    return {flag: FLAG_COLOURS[i % len(FLAG_COLOURS)] for i, flag in enumerate(sorted(flags))}


def _stacked_layout(titles: list[str]) -> dict[str, Any]:
    """Rows of plots sharing one time axis (what plotly's make_subplots builds, without its
    cost): row 1 at the top, the time labels under the last row, a title above each row."""
    rows = len(titles)
    gap = min(0.02, 0.5 / rows)
    height = (1 - gap * (rows - 1)) / rows
    layout: dict[str, Any] = {"annotations": []}
    for row, title in enumerate(titles, start=1):
        top = 1 - (row - 1) * (height + gap)
        suffix = "" if row == 1 else str(row)
        layout[f"xaxis{suffix}"] = {
            "anchor": f"y{suffix}",
            "domain": [0, 1],
            "matches": None if row == 1 else "x",
            "showticklabels": row == rows,
        }
        layout[f"yaxis{suffix}"] = {"anchor": f"x{suffix}", "domain": [top - height, top]}
        layout["annotations"].append(
            {
                "text": title,
                "x": 0.5,
                "y": top,
                "xref": "paper",
                "yref": "paper",
                "xanchor": "center",
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 11},
            }
        )
    return layout


def _site_figures(
    con: duckdb.DuckDBPyConnection, site: str, channels: list[str], colours: dict[str, str]
) -> SiteFigures:
    native, step = _step_minutes(con, site)
    series = _series(con, site, channels, step)
    plotted = [c for c in channels if any(v is not None for v in series.get(c, []))]
    flagged = _channel_flags(con, site, plotted, step)
    buckets = _bucket_flags(con, site, step)
    rows = len(plotted) + 1
    # the layout (stacked axes sharing x) from plotly; traces and shapes as plain dicts, which
    # plotly renders without validating each one (that took seconds per site)
    layout = _stacked_layout(["bucket flags", *plotted])
    data: list[dict[str, Any]] = []
    shown: set[str] = set()

    def axes(row: int) -> dict[str, str]:
        return {"xaxis": "x" if row == 1 else f"x{row}", "yaxis": "y" if row == 1 else f"y{row}"}

    def marker_trace(flag: str, x: list[Any], y: list[Any], row: int, **marker: Any) -> None:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": x,
                "y": y,
                "name": flag,
                "legendgroup": flag,
                "showlegend": flag not in shown,
                "marker": {"color": colours[flag], **marker},
                **axes(row),
            }
        )
        shown.add(flag)

    for flag in sorted(colours):
        at = [b[1] for b in buckets if b[0] == flag]
        if at:
            marker_trace(flag, at, [flag] * len(at), 1, size=6, symbol="square")
    for row, channel in enumerate(plotted, start=2):
        data.append(
            {
                "type": "scattergl",
                "mode": "lines",
                "x": series["bucket_at"],
                "y": series[channel],
                "name": channel,
                "showlegend": False,
                "line": {"color": "#4c72b0", "width": 1},
                **axes(row),
            }
        )
        plotted_at = dict(zip(series["bucket_at"], series[channel], strict=True))
        for flag in sorted(colours):
            # on the line: the site-level value plotted (a sum or max over the site's devices),
            # not the flagged device's own reading
            points = [
                (at, plotted_at.get(at)) for c, f, at in flagged if c == channel and f == flag
            ]
            if points:
                marker_trace(flag, [p[0] for p in points], [p[1] for p in points], row, size=7)
    layout["shapes"] = [
        {
            "type": "rect",
            "xref": "x",
            "yref": "paper",
            "x0": start,
            "x1": end,
            "y0": 0,
            "y1": 1,
            "fillcolor": GAP_COLOUR,
            "line": {"width": 0},
            "layer": "below",
        }
        for start, end in _gaps(con, site, native)
    ]
    layout.update(
        height=140 * rows + 120,
        margin={"l": 60, "r": 20, "t": 40, "b": 30},
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom", "title": {"text": "flags"}},
        template=pio.templates["plotly_white"].to_plotly_json(),
    )
    daily = _daily_flags(con, site)
    days = sorted({d for d, _, _ in daily})
    flags = sorted({f for _, f, _ in daily})
    counts = {(d, f): n for d, f, n in daily}
    heat = go.Figure(
        go.Heatmap(
            x=days,
            y=flags,
            z=[[counts.get((d, f), 0) for d in days] for f in flags],
            colorscale="Reds",
            colorbar={"title": "buckets"},
            hovertemplate="%{x} %{y}: %{z} bucket(s)<extra></extra>",
        )
    )
    heat.update_layout(
        height=120 + 40 * max(1, len(flags)),
        margin={"l": 160, "r": 20, "t": 30, "b": 40},
        title="flagged buckets per day",
        template="plotly_white",
    )
    totals: dict[str, int] = {}
    for _, flag, count in daily:
        totals[flag] = totals.get(flag, 0) + count
    return SiteFigures(
        site_id=site,
        step_minutes=step,
        channels=pio.to_html(
            {"data": data, "layout": layout},
            full_html=False,
            include_plotlyjs=False,
            validate=False,
        ),
        heat_map=heat.to_html(full_html=False, include_plotlyjs=False),
        flags=totals,
    )


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _batch_reports(folder: Path) -> list[dict[str, Any]]:
    reports = []
    for path in sorted(folder.glob("batch_report_*.json")):
        try:
            reports.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue  # a report being written, or not ours: the page lists what it can read
    return sorted(reports, key=lambda r: str(r.get("started_at", "")))


def _ledger_tables(reports: list[dict[str, Any]]) -> str:
    batches = [
        [
            r.get("batch_id", ""),
            r.get("started_at", ""),
            r.get("status", ""),
            r.get("files", {}).get("total", ""),
            r.get("rows", {}).get("read", ""),
            r.get("rows", {}).get("rejected", ""),
            r.get("rows", {}).get("written", ""),
            r.get("ledger", {}).get("totals", {}).get("balanced", ""),
        ]
        for r in reversed(reports)
    ]
    parts = [
        "<h2>Batches</h2>",
        _table(
            ["batch", "started", "status", "files", "rows read", "rejected", "written", "balanced"],
            batches,
        ),
    ]
    latest = next((r for r in reversed(reports) if r.get("ledger")), None)
    if latest is not None:
        reasons = {f["path"]: f["reason"] for f in latest.get("files", {}).get("failed", [])}
        files = []
        for entry in latest["ledger"].get("files", []):
            cells = entry.get("cells", {})
            nulled = sum(v for k, v in cells.items() if k.startswith("nulled_"))
            files.append(
                [
                    entry.get("relative_path", ""),
                    entry.get("status", ""),
                    entry.get("rows", {}).get("data_rows", ""),
                    entry.get("lines", {}).get("rows_rejected", ""),
                    cells.get("total", ""),
                    cells.get("kept", ""),
                    nulled,
                    cells.get("superseded", ""),
                    cells.get("blank", ""),
                    reasons.get(entry.get("relative_path", ""), ""),
                ]
            )
        parts += [
            f"<h2>Ledger of the latest batch ({html.escape(str(latest.get('batch_id')))})</h2>",
            "<p>Every input cell ends in one bucket: kept, nulled (with its reason), "
            "superseded by a later delivery, or blank; the batch report JSON has every count.</p>",
            _table(
                [
                    "file",
                    "status",
                    "data rows",
                    "rows rejected",
                    "cells",
                    "kept",
                    "nulled",
                    "superseded",
                    "blank",
                    "reason",
                ],
                files,
            ),
        ]
        failed = latest.get("files", {}).get("failed", [])
        if failed:
            parts += [
                "<h3>Files set aside or partial</h3>",
                _table(["file", "reason"], [[f["path"], f["reason"]] for f in failed]),
            ]
    return "\n".join(parts)


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { margin-bottom: 0; } .meta { color: #666; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 24px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; } section.site { margin-bottom: 40px; }
.note { color: #555; font-size: 13px; }
"""


def build_quality_report(output: DatasetPaths | Path, memory_limit_mb: int = 1024) -> str:
    """The report's HTML for the dataset published in ``output`` (a folder, or the paths of
    an ``s3://`` dataset whose batch reports are in its local work folder)."""
    paths = as_dataset_paths(output)
    manifest = current_manifest(paths.location)
    con = duckdb.connect(config={"memory_limit": f"{memory_limit_mb}MB"})
    try:
        con.execute("set TimeZone = 'UTC'")
        read_dataset(paths.location, connection=con).create_view("published")
        # nanosecond timestamps (the dataset's Parquet type) as timestamptz for the arithmetic
        con.execute(
            "create view dataset as select * replace (timestamp::timestamptz as timestamp) "
            "from published"
        )
        channels = _channels(con)
        sites = [
            str(s)
            for (s,) in con.execute("select distinct site_id from dataset order by 1").fetchall()
        ]
        all_flags = [
            str(f)
            for (f,) in con.execute(
                "select distinct flag from dataset, unnest(quality_flags) as f(flag) order by 1"
            ).fetchall()
        ]
        colours = _colours(all_flags)
        figures = [_site_figures(con, site, channels, colours) for site in sites]
    finally:
        con.close()
    reports = _batch_reports(paths.reports)
    sections = []
    for site in figures:
        flags = ", ".join(f"{flag} {count:,}" for flag, count in sorted(site.flags.items()))
        sections.append(
            f'<section class="site" data-site="{html.escape(site.site_id)}">'
            f"<h2>Site {html.escape(site.site_id)}</h2>"
            f'<p class="note">Flagged buckets: {html.escape(flags or "none")}. Plotted every '
            f"{site.step_minutes} min (means when coarser than the dataset's step); grey bands "
            "are gaps (no sample).</p>"
            f"{site.channels}{site.heat_map}</section>"
        )
    created = datetime.now(UTC).isoformat(timespec="seconds")
    batch = html.escape(str(manifest.get("batch_id")))
    name = paths.location.rstrip("/").rsplit("/", 1)[-1]
    total_rows = int(manifest.get("statistics", {}).get("total_rows", 0))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Telemetry quality report: {html.escape(name)}</title>
<style>{_STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Telemetry quality report</h1>
<p class="meta">Dataset {html.escape(paths.location)}: batch {batch},
{len(sites)} site(s), {total_rows:,} rows; made {created}.</p>
{"".join(sections)}
{_ledger_tables(reports)}
</body></html>
"""


def write_quality_report(
    output: DatasetPaths | Path, target: Path | None = None, memory_limit_mb: int = 1024
) -> Path:
    """Write the report (atomically) to ``target``; by default
    ``<output or work folder>/reports/quality_report.html``, which an ``s3://`` dataset also
    gets next to it (``<prefix>/reports/quality_report.html``)."""
    paths = as_dataset_paths(output)
    page = build_quality_report(paths, memory_limit_mb).encode("utf-8")
    path = target or paths.reports / REPORT_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_atomic(path, page)
    if target is None:
        publish_report(paths, path)
    return path
