"""``batch-processor crm generate``: CRM exports (customers, orders, payments, leads) made by
DuckDB in SQL, deterministic for a seed, at any volume. Realistic shapes: most customers
order a few times, some never; orders have 1-3 payments by method; leads move through the
stages with increasing dates, and some convert into an order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
    folder.mkdir(parents=True, exist_ok=True)
    params = {"customers": max(1, customers), "orders": orders, "leads": leads, "seed": seed}
    rows: dict[str, int] = {}
    con = db.connect(":memory:")
    try:
        for table, sql in _TABLES_SQL.items():
            used = {k: v for k, v in params.items() if f"${k}" in sql}
            con.execute(f"create or replace temp table export as {sql}", used)
            target = str(folder / f"{table}.csv").replace("'", "''")
            con.execute(f"copy export to '{target}' (header true)")
            rows[table] = int(con.execute("select count(*) from export").fetchall()[0][0])
    finally:
        con.close()
    return GeneratedCrm(folder, rows)
