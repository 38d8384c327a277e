"""Precision and recall of each quality flag on generated data with known faults.

Generates a batch (injected faults listed in _ground_truth.csv), runs the telemetry job, and
compares, per flag, the (site, bucket) pairs flagged in fct_telemetry_readings with those the
ground truth expects. False positives are listed with the rule that raised them. With
--real FILE (default: the Vanderbilt ESB export in ../shared/data, if present) it also runs
that file alone and prints its flag counts per type and rule.

    .venv/bin/python benchmarks/flag_accuracy.py [--sites 4] [--days 3] [--seed 42]
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from pathlib import Path

import duckdb

from batch_processor.config import load_telemetry_config
from batch_processor.paths import PROJECT_ROOT
from batch_processor.telemetry.generator import generate_demo_data
from batch_processor.telemetry.pipeline import run_telemetry

FLAGS = ["FROZEN", "HEAT_IMBALANCE", "AFFINITY_VIOLATION", "OUTLIER", "INSUFFICIENT_DATA"]
ESB = (
    PROJECT_ROOT.parent
    / "shared/data/vanderbilt-esb-chillers/raw_imperial_2018-10-01/ESB Chiller 1.csv"
)


def run(input_dir: Path, work: Path, link_roots: list[Path] | None = None) -> Path:
    warehouse = work / "warehouse.duckdb"
    config = load_telemetry_config(
        warehouse_path=warehouse, memory_limit_mb=2048, link_roots=link_roots or []
    )
    run_telemetry(config, input_dir, work / "output")
    return warehouse


def accuracy(args: argparse.Namespace, work: Path) -> None:
    batch = generate_demo_data(work / "input", sites=args.sites, days=args.days, seed=args.seed)
    warehouse = run(batch.out_dir, work)
    con = duckdb.connect(str(warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        "create temp table truth as select distinct site_id, bucket_start, expected_flag "
        "from read_csv($p, header = true, columns = {'site_id': 'VARCHAR', "
        "'bucket_start': 'TIMESTAMPTZ', 'expected_flag': 'VARCHAR', 'fault': 'VARCHAR', "
        "'channel': 'VARCHAR'})",
        {"p": str(batch.ground_truth)},
    )
    con.execute(
        'create temp table predicted as select site_id, "timestamp" as bucket_start, flag '
        "from telemetry.fct_telemetry_readings, unnest(quality_flags) as f(flag)"
    )
    rows = con.execute("select count(*) from telemetry.fct_telemetry_readings").fetchone()[0]
    print(
        f"generated: {args.sites} sites x {args.days} days, seed {args.seed}: "
        f"{batch.rows:,} raw rows, {rows:,} output rows"
    )
    print(
        f"{'flag':20s} {'truth':>6s} {'flagged':>8s} {'tp':>6s} {'precision':>10s} {'recall':>8s}"
    )
    for flag in FLAGS:
        truth, flagged, tp = con.execute(
            """
            select
                (select count(*) from truth where expected_flag = $f),
                (select count(*) from predicted where flag = $f),
                (select count(*) from predicted p join truth t
                    on p.site_id = t.site_id and p.bucket_start = t.bucket_start
                    and p.flag = t.expected_flag where p.flag = $f)
            """,
            {"f": flag},
        ).fetchone()
        precision = tp / flagged if flagged else float("nan")
        recall = tp / truth if truth else float("nan")
        ok = "ok" if precision >= 0.95 and recall >= 0.95 else "BELOW 0.95"
        print(f"{flag:20s} {truth:6d} {flagged:8d} {tp:6d} {precision:10.3f} {recall:8.3f}  {ok}")
    false_positives = con.execute(
        """
        select e.site_id, e."timestamp", e.flag, e.channel, e.rule, e.observed_value, e.detail
        from telemetry.fct_telemetry_flag_events e
        anti join truth t
            on e.site_id = t.site_id and e."timestamp" = t.bucket_start
            and e.flag = t.expected_flag
        order by e.flag, e.site_id, e."timestamp"
        """
    ).fetchall()
    print(f"false positives: {len(false_positives)}")
    for row in false_positives[: args.show]:
        print("  ", row[0], row[1].isoformat(), row[2], row[3], row[4], f"{row[5]!r}", row[6])
    misses = con.execute(
        """
        select t.site_id, t.bucket_start, t.expected_flag from truth t
        anti join predicted p
            on p.site_id = t.site_id and p.bucket_start = t.bucket_start
            and p.flag = t.expected_flag
        order by all
        """
    ).fetchall()
    print(f"missed: {len(misses)}")
    for row in misses[: args.show]:
        print("  ", row[0], row[1].isoformat(), row[2])
    con.close()


def real_file(path: Path, work: Path) -> None:
    (work / "real").mkdir()
    (work / "real" / path.name).symlink_to(path)
    warehouse = run(work / "real", work / "real_run", link_roots=[path.parent])
    con = duckdb.connect(str(warehouse), read_only=True)
    total = con.execute("select count(*) from telemetry.fct_telemetry_readings").fetchone()[0]
    print(f"\nreal file: {path.name}: {total:,} output rows (5-minute buckets)")
    for flag, count in con.execute(
        "select f, count(*) from telemetry.fct_telemetry_readings, unnest(quality_flags) as t(f) "
        "group by f order by f"
    ).fetchall():
        print(f"  {flag:20s} {count:6d} rows")
    print("  by rule (events):")
    for flag, channel, rule, count in con.execute(
        "select flag, channel, rule, count(*) from telemetry.fct_telemetry_flag_events "
        "group by all order by flag, count(*) desc"
    ).fetchall():
        print(f"    {flag:20s} {channel:20s} {rule:18s} {count:6d}")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--show", type=int, default=40, help="rows of false positives to list")
    parser.add_argument("--real", type=Path, default=ESB if ESB.exists() else None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="flag-accuracy-"))
    try:
        accuracy(args, work)
        if args.real is not None:
            real_file(args.real, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
