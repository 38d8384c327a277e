"""Parity: the CRM marts' key figures computed a second, independent way — pyarrow over the
raw CSV exports, no SQL and no dbt — and compared with the marts in the warehouse.

Figures per order (amount by payment method and in total), per customer (orders, first and
last order date, lifetime value) and for the leads (count per stage, conversions within the
window, total days to close). ``check_parity`` returns the differences (empty = parity)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import yaml  # type: ignore[import-untyped,unused-ignore]
from pyarrow import csv

from batch_processor import db
from batch_processor.crm.sources import export_file
from batch_processor.paths import PROJECT_ROOT

METHODS = ("credit_card", "coupon", "bank_transfer", "gift_card")


def conversion_window_days() -> int:
    """The dbt var crm_conversion_window_days, read from dbt_project.yml (one definition)."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text(encoding="utf-8"))
    return int(project["vars"]["crm_conversion_window_days"])


def _read(folder: Path, table: str, types: dict[str, pa.DataType]) -> pa.Table:
    return csv.read_csv(
        export_file(folder, table), convert_options=csv.ConvertOptions(column_types=types)
    )


def _cents(value: Any) -> int:
    return round(Decimal(str(value)) * 100)


def orders_figures(folder: Path) -> dict[int, tuple[int, ...]]:
    """order_id -> (customer_id, cents by method…, total cents)."""
    orders = _read(folder, "orders", {"id": pa.int64(), "user_id": pa.int64()})
    payments = _read(folder, "payments", {"order_id": pa.int64(), "amount": pa.int64()})
    by_method = payments.group_by(["order_id", "payment_method"]).aggregate([("amount", "sum")])
    paid: dict[tuple[int, str], int] = {
        (o, m): s
        for o, m, s in zip(
            by_method["order_id"].to_pylist(),
            by_method["payment_method"].to_pylist(),
            by_method["amount_sum"].to_pylist(),
            strict=True,
        )
    }
    figures = {}
    for order_id, customer_id in zip(
        orders["id"].to_pylist(), orders["user_id"].to_pylist(), strict=True
    ):
        amounts = tuple(paid.get((order_id, m), 0) for m in METHODS)
        figures[order_id] = (customer_id, *amounts, sum(amounts))
    return figures


def customers_figures(folder: Path) -> dict[int, tuple[Any, ...]]:
    """customer_id -> (orders, first order date, last order date, lifetime value cents)."""
    customers = _read(folder, "customers", {"id": pa.int64()})
    orders = _read(folder, "orders", {"id": pa.int64(), "user_id": pa.int64()})
    per_order = orders_figures(folder)
    order_totals = pa.table(
        {
            "id": pa.array(list(per_order), pa.int64()),
            "total": pa.array([v[-1] for v in per_order.values()], pa.int64()),
        }
    )
    joined = orders.join(order_totals, "id")
    summary = joined.group_by("user_id").aggregate(
        [("id", "count"), ("order_date", "min"), ("order_date", "max"), ("total", "sum")]
    )
    found = {
        row["user_id"]: (
            row["id_count"],
            row["order_date_min"],
            row["order_date_max"],
            row["total_sum"],
        )
        for row in summary.to_pylist()
    }
    return {c: found.get(c, (0, None, None, 0)) for c in customers["id"].to_pylist()}


def leads_figures(folder: Path) -> dict[str, Any]:
    leads = _read(folder, "leads", {"id": pa.int64(), "customer_id": pa.int64()})
    orders = _read(folder, "orders", {"id": pa.int64(), "user_id": pa.int64()})
    stages = leads.group_by("stage").aggregate([("id", "count")])
    pairs = leads.select(["id", "customer_id", "created_at"]).join(
        orders.select(["user_id", "order_date"]), "customer_id", "user_id"
    )
    window = pc.add(pairs["created_at"], pa.scalar(dt.timedelta(days=conversion_window_days())))
    inside = pairs.filter(
        pc.and_(
            pc.greater_equal(pairs["order_date"], pairs["created_at"]),
            pc.less(pc.cast(pairs["order_date"], pa.timestamp("s")), window),
        )
    )
    closed = leads.filter(pc.is_valid(leads["closed_at"]))
    days = pc.days_between(closed["created_at"], closed["closed_at"])
    return {
        "leads_per_stage": dict(
            zip(stages["stage"].to_pylist(), stages["id_count"].to_pylist(), strict=True)
        ),
        "converted_leads": len(set(inside["id"].to_pylist())),
        "total_days_to_close": int(pc.sum(days).as_py() or 0),
    }


def _warehouse_figures(warehouse: Path, tables: Iterable[str]) -> dict[str, Any]:
    con = db.connect(warehouse, read_only=True)
    out: dict[str, Any] = {}
    try:
        if "orders" in tables:
            methods = ", ".join(f"{m}_amount" for m in METHODS)
            out["orders"] = {
                row[0]: (row[1], *(_cents(v) for v in row[2:]))
                for row in con.execute(
                    f"select order_id, customer_id, {methods}, amount from crm.fct_orders"
                ).fetchall()
            }
        if "customers" in tables:
            out["customers"] = {
                row[0]: (row[1], row[2], row[3], _cents(row[4]))
                for row in con.execute(
                    "select customer_id, number_of_orders, first_order, most_recent_order, "
                    "customer_lifetime_value from crm.dim_customers"
                ).fetchall()
            }
        if "leads" in tables:
            stages = con.execute(
                "select stage, count(*) from crm.fct_leads group by all"
            ).fetchall()
            converted, days = con.execute(
                "select count(*) filter (where is_converted), coalesce(sum(days_to_close), 0) "
                "from crm.fct_leads"
            ).fetchall()[0]
            out["leads"] = {
                "leads_per_stage": dict(stages),
                "converted_leads": int(converted),
                "total_days_to_close": int(days),
            }
    finally:
        con.close()
    return out


def check_parity(folder: Path, warehouse: Path, tables: Iterable[str]) -> list[str]:
    """Differences between the marts and the independent computation, for ``tables``
    (orders, customers, leads); an empty list means parity."""
    tables = list(tables)
    marts = _warehouse_figures(warehouse, tables)
    expected: dict[str, Any] = {}
    if "orders" in tables:
        expected["orders"] = orders_figures(folder)
    if "customers" in tables:
        expected["customers"] = customers_figures(folder)
    if "leads" in tables:
        expected["leads"] = leads_figures(folder)
    problems = []
    for table, want in expected.items():
        got = marts[table]
        if isinstance(want, dict) and table != "leads":
            missing, extra = set(want) - set(got), set(got) - set(want)
            if missing or extra:
                problems.append(
                    f"{table}: keys only in the raw data {sorted(missing)[:5]}, "
                    f"only in the mart {sorted(extra)[:5]}"
                )
            for key in sorted(set(want) & set(got)):
                if want[key] != got[key]:
                    problems.append(f"{table} {key}: raw {want[key]} != mart {got[key]}")
        elif want != got:
            problems.append(f"{table}: raw {want} != mart {got}")
    return problems
