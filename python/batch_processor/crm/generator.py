"""``batch-processor crm generate``: CRM exports (customers, orders, payments, leads) made by
DuckDB in SQL, deterministic for a seed, at any volume. Realistic shapes: most customers
order a few times, some never; orders have 1-3 payments by method; leads move through the
stages with increasing dates, and some convert into an order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from batch_processor import db

_TABLES_SQL = {
    "customers": """
        select
            i + 1 as id,
            'First' || (hash(i, $seed) % 997)::varchar as first_name,
            chr(65 + (hash(i, $seed, 1) % 26)::integer) || '.' as last_name,
            'customer' || (i + 1)::varchar || '@example.com' as email
        from range($customers) as t(i)
    """,
    "orders": """
        select
            i + 1 as id,
            1 + hash(i, $seed, 2) % ($customers * 0.8)::bigint as user_id,
            (date '2023-01-01' + (hash(i, $seed, 3) % 730)::integer)::varchar as order_date,
            ['placed', 'shipped', 'completed', 'completed', 'completed', 'return_pending',
             'returned'][1 + (hash(i, $seed, 4) % 7)::integer] as status
        from range($orders) as t(i)
    """,
    "payments": """
        select
            row_number() over (order by o, p) as id,
            o + 1 as order_id,
            ['credit_card', 'coupon', 'bank_transfer', 'gift_card']
                [1 + (hash(o, p, $seed, 5) % 4)::integer] as payment_method,
            100 + hash(o, p, $seed, 6) % 5000 as amount
        from range($orders) as t(o), range(3) as s(p)
        where p < 1 + hash(o, $seed, 7) % 3
    """,
    "leads": """
        with base as (
            select
                i,
                1 + hash(i, $seed, 8) % $customers as customer_id,
                date '2023-01-01' + (hash(i, $seed, 9) % 700)::integer as created,
                hash(i, $seed, 10) % 5 as progress
            from range($leads) as t(i)
        )
        select
            i + 1 as id,
            customer_id,
            case progress when 0 then 'new' when 1 then 'qualified' when 2 then 'proposal'
                when 3 then 'won' else 'lost' end as stage,
            ((hash(i, $seed, 11) % 100000) / 100.0)::decimal(18, 2) as amount,
            'rep' || (hash(i, $seed, 12) % 12)::varchar as owner,
            created::varchar as created_at,
            case when progress >= 1 and progress != 4
                then (created + 1 + (hash(i, $seed, 13) % 10)::integer)::varchar end
                as qualified_at,
            case when progress in (2, 3)
                then (created + 12 + (hash(i, $seed, 14) % 20)::integer)::varchar end
                as proposal_at,
            case when progress >= 3
                then (created + 35 + (hash(i, $seed, 15) % 30)::integer)::varchar end
                as closed_at
        from base
    """,
}


@dataclass(frozen=True)
class GeneratedCrm:
    folder: Path
    rows: dict[str, int]


def generate_crm_exports(
    folder: Path, *, customers: int, orders: int, leads: int, seed: int = 1
) -> GeneratedCrm:
    """Write customers.csv, orders.csv, payments.csv and leads.csv into ``folder``."""
    params = {"customers": max(1, customers), "orders": orders, "leads": leads, "seed": seed}
    con = db.connect(":memory:")
    try:
        rows = _write_tables(con, folder, _TABLES_SQL, params)
    finally:
        con.close()
    return GeneratedCrm(folder, rows)


def _write_tables(
    con: duckdb.DuckDBPyConnection, folder: Path, tables: dict[str, str], params: dict[str, int]
) -> dict[str, int]:
    """Each of ``tables`` (name -> query) as ``folder/<name>.csv``; rows written per table."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, int] = {}
    for table, sql in tables.items():
        used = {k: v for k, v in params.items() if f"${k}" in sql}
        con.execute(f"create or replace temp table export as {sql}", used)
        target = str(folder / f"{table}.csv").replace("'", "''")
        con.execute(f"copy export to '{target}' (header true)")
        rows[table] = int(con.execute("select count(*) from export").fetchall()[0][0])
    return rows


_HOURLY_SQL = {
    # every customer, in every hour's export (a cumulative export)
    "customers": _TABLES_SQL["customers"],
    # every order placed so far, its status moving on with its age: ids repeat every hour,
    # unchanged or updated; the time carries an offset (-0500, Z or +0700)
    "orders": """
        with placed as (
            select
                i,
                timestamp '2018-01-01 00:00:00' + to_hours((hash(i, $seed, 20) % $hours)::integer)
                    + to_seconds((hash(i, $seed, 21) % 3600)::integer) as placed_utc
            from range($orders) as t(i)
        )
        select
            i + 1 as id,
            1 + hash(i, $seed, 2) % $customers as user_id,
            case i % 3
                when 0 then
                    strftime(placed_utc - interval 5 hours, '%Y-%m-%dT%H:%M:%S.000') || '-0500'
                when 1 then strftime(placed_utc, '%Y-%m-%dT%H:%M:%S') || 'Z'
                else strftime(placed_utc + interval 7 hours, '%Y-%m-%d %H:%M:%S') || '+0700'
            end as order_date,
            case $hour - (hash(i, $seed, 20) % $hours)::integer
                when 0 then 'placed' when 1 then 'shipped' else 'completed' end as status
        from placed
        where (hash(i, $seed, 20) % $hours)::integer <= $hour
    """,
    # a payment arrives 0-2 hours after its order and is repeated in the next hour's export
    "payments": """
        with all_payments as (
            select
                row_number() over (order by o, p) as id,
                o + 1 as order_id,
                ['credit_card', 'coupon', 'bank_transfer', 'gift_card']
                    [1 + (hash(o, p, $seed, 5) % 4)::integer] as payment_method,
                100 + hash(o, p, $seed, 6) % 5000 as amount,
                (hash(o, $seed, 20) % $hours)::integer + (hash(o, p, $seed, 22) % 3)::integer
                    as arrival_hour
            from range($orders) as t(o), range(3) as s(p)
            where p < 1 + hash(o, $seed, 7) % 3
        )
        select id, order_id, payment_method, amount
        from all_payments
        where arrival_hour in ($hour - 1, $hour)
    """,
    # every lead created so far, its stage and stage times moving on with its age
    "leads": """
        with base as (
            select
                i,
                1 + hash(i, $seed, 8) % $customers as customer_id,
                (hash(i, $seed, 9) % $hours)::integer as created_hour,
                hash(i, $seed, 10) % 2 = 0 as wins
            from range($leads) as t(i)
        ),
        aged as (
            select
                *,
                $hour - created_hour as age,
                timestamp '2018-01-01 00:00:00' + to_hours(created_hour) as created
            from base
            where created_hour <= $hour
        )
        select
            i + 1 as id,
            customer_id,
            case when age = 0 then 'new' when age = 1 then 'qualified'
                when age = 2 then 'proposal' when wins then 'won' else 'lost' end as stage,
            ((hash(i, $seed, 11) % 100000) / 100.0)::decimal(18, 2) as amount,
            'rep' || (hash(i, $seed, 12) % 12)::varchar as owner,
            strftime(created - interval 5 hours, '%Y-%m-%dT%H:%M:%S') || '-05:00' as created_at,
            case when age >= 1 then strftime(created + interval 1 hour, '%Y-%m-%dT%H:%M:%SZ')
                end as qualified_at,
            case when age >= 2 then strftime(created + interval 2 hours, '%Y-%m-%dT%H:%M:%SZ')
                end as proposal_at,
            case when age >= 3 then strftime(created + interval 3 hours, '%Y-%m-%dT%H:%M:%SZ')
                end as closed_at
        from aged
    """,
}


def generate_hourly_crm_exports(
    root: Path, *, hours: int, customers: int, orders: int, leads: int, seed: int = 1
) -> list[Path]:
    """Hour-by-hour exports, one folder each (``hour=00`` …), as a live shop delivers them:
    orders and leads cumulative (ids repeat unchanged or with a new status), payments that
    arrive up to two hours after their order and are repeated in the next hour's export,
    times with offsets (``-0500``, ``Z``, ``+0700``). The folders, in delivery order."""
    folders = []
    con = db.connect(":memory:")
    try:
        for hour in range(hours):
            folder = root / f"hour={hour:02d}"
            params = {
                "customers": max(1, customers),
                "orders": orders,
                "leads": leads,
                "seed": seed,
                "hour": hour,
                "hours": hours,
            }
            _write_tables(con, folder, _HOURLY_SQL, params)
            folders.append(folder)
    finally:
        con.close()
    return folders
