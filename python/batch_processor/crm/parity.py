"""Parity: the CRM marts' key figures computed a second, independent way — pyarrow and
Python over the export files, no SQL and no dbt — and compared with the marts in the
warehouse.

The input is every export file the warehouse has merged (``crm_raw.deliveries`` whose task
succeeded, in the order they were taken in, each checked against its recorded sha256), so
parity holds after any sequence of incremental runs: per table the files are stacked in
delivery order and the last row of each id wins, as the ``int_crm__*_latest`` models
define. Figures per order (customer, status, instant, amount by payment method and in
total), per customer (orders, first and last order instant, lifetime value) and for the
leads (count per stage, conversions within the window, total days to close).
``check_parity`` returns the differences (empty = parity)."""

from __future__ import annotations

import csv as std_csv
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
from batch_processor.checksums import sha256_file
from batch_processor.paths import PROJECT_ROOT

METHODS = ("credit_card", "coupon", "bank_transfer", "gift_card")
_ROW = "__row"


def conversion_window_days() -> int:
    """The dbt var crm_conversion_window_days, read from dbt_project.yml (one definition)."""
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text(encoding="utf-8"))
    return int(project["vars"]["crm_conversion_window_days"])


def _instant(text: str | None) -> dt.datetime | None:
    """An ISO 8601 date or timestamp as an aware UTC datetime (no offset: UTC)."""
    if text is None or not text.strip():
        return None
    value = dt.datetime.fromisoformat(text.strip())
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def _cents(value: Any) -> int:
    return round(Decimal(str(value)) * 100)


class Deliveries:
    """The export files a warehouse has taken in, per table, read back with pyarrow."""

    def __init__(self, warehouse: Path) -> None:
        con = db.connect(warehouse, read_only=True)
        try:
            self.files: dict[str, list[tuple[int, Path, str]]] = {}
            for table, delivery_id, path, digest in con.execute(
                "select table_name, delivery_id, path, sha256 from crm_raw.deliveries "
                "where merged_batch_id is not null order by delivery_id"
            ).fetchall():
                self.files.setdefault(table, []).append((delivery_id, Path(path), digest))
        finally:
            con.close()
        self.problems: list[str] = []
        self._latest: dict[str, pa.Table] = {}

    def latest(self, table: str, key_types: dict[str, pa.DataType]) -> pa.Table:
        """The last delivered row of every id of ``table`` (all columns text but
        ``key_types``)."""
        if table in self._latest:
            return self._latest[table]
        parts = []
        for delivery_id, path, digest in self.files.get(table, []):
            if not path.is_file() or sha256_file(path) != digest:
                self.problems.append(
                    f"{table}: {path} (delivery {delivery_id}) is gone or changed since it was "
                    "taken in; parity cannot recompute from it"
                )
                continue
            with path.open(encoding="utf-8", newline="") as handle:
                header = next(std_csv.reader(handle), [])
            parts.append(
                csv.read_csv(
                    path,
                    convert_options=csv.ConvertOptions(
                        column_types={n: key_types.get(n, pa.string()) for n in header},
                        strings_can_be_null=True,
                    ),
                )
            )
        if not parts:
            self._latest[table] = pa.table({"id": pa.array([], pa.int64())})
            return self._latest[table]
        stacked = pa.concat_tables(parts, promote_options="default")
        stacked = stacked.append_column(_ROW, pa.array(range(stacked.num_rows), pa.int64()))
        last = stacked.group_by("id").aggregate([(_ROW, "max")])
        self._latest[table] = stacked.take(last[f"{_ROW}_max"]).drop_columns([_ROW])
        return self._latest[table]


def _ids(table: pa.Table, column: str = "id") -> list[int]:
    return [int(v) for v in table[column].to_pylist()]


def orders_figures(deliveries: Deliveries) -> dict[int, tuple[Any, ...]]:
    """order_id -> (customer_id, status, placed at (UTC), cents by method…, total cents)."""
    orders = deliveries.latest("orders", {"id": pa.int64(), "user_id": pa.int64()})
    payments = deliveries.latest(
        "payments", {"id": pa.int64(), "order_id": pa.int64(), "amount": pa.int64()}
    )
    paid: dict[tuple[int, str], int] = {}
    if payments.num_rows:
        methods = pc.utf8_lower(pc.utf8_trim_whitespace(payments["payment_method"]))
        by_method = (
            pa.table(
                {"order_id": payments["order_id"], "method": methods, "amount": payments["amount"]}
            )
            .group_by(["order_id", "method"])
            .aggregate([("amount", "sum")])
        )
        paid = {
            (o, m): s
            for o, m, s in zip(
                by_method["order_id"].to_pylist(),
                by_method["method"].to_pylist(),
                by_method["amount_sum"].to_pylist(),
                strict=True,
            )
        }
    figures: dict[int, tuple[Any, ...]] = {}
    if not orders.num_rows:
        return figures
    for order_id, customer_id, status, placed in zip(
        _ids(orders),
        _ids(orders, "user_id"),
        orders["status"].to_pylist(),
        orders["order_date"].to_pylist(),
        strict=True,
    ):
        amounts = tuple(paid.get((order_id, m), 0) for m in METHODS)
        state = status.strip().lower() if status else None
        figures[order_id] = (customer_id, state, _instant(placed), *amounts, sum(amounts))
    return figures


def customers_figures(deliveries: Deliveries) -> dict[int, tuple[Any, ...]]:
    """customer_id -> (orders, first order instant, last order instant, lifetime cents)."""
    customers = deliveries.latest("customers", {"id": pa.int64()})
    orders = deliveries.latest("orders", {"id": pa.int64(), "user_id": pa.int64()})
    per_order = orders_figures(deliveries)
    found: dict[int, list[Any]] = {}
    if orders.num_rows:
        for order_id, customer_id, placed in zip(
            _ids(orders), _ids(orders, "user_id"), orders["order_date"].to_pylist(), strict=True
        ):
            at = _instant(placed)
            entry = found.setdefault(customer_id, [0, at, at, 0])
            entry[0] += 1
            entry[1], entry[2] = min(entry[1], at), max(entry[2], at)
            entry[3] += per_order[order_id][-1]
    if not customers.num_rows:
        return {}
    return {c: tuple(found.get(c, (0, None, None, 0))) for c in _ids(customers)}


def leads_figures(deliveries: Deliveries) -> dict[str, Any]:
    leads = deliveries.latest("leads", {"id": pa.int64(), "customer_id": pa.int64()})
    orders = deliveries.latest("orders", {"id": pa.int64(), "user_id": pa.int64()})
    if not leads.num_rows:
        return {"leads_per_stage": {}, "converted_leads": 0, "total_days_to_close": 0}
    window = dt.timedelta(days=conversion_window_days())
    placed: dict[int, list[dt.datetime]] = {}
    if orders.num_rows:
        for customer_id, at in zip(
            _ids(orders, "user_id"), orders["order_date"].to_pylist(), strict=True
        ):
            instant = _instant(at)
            if instant is not None:
                placed.setdefault(customer_id, []).append(instant)
    stages: dict[str, int] = {}
    converted = days = 0
    for customer_id, stage, created, closed in zip(
        _ids(leads, "customer_id"),
        leads["stage"].to_pylist(),
        leads["created_at"].to_pylist(),
        leads["closed_at"].to_pylist(),
        strict=True,
    ):
        name = stage.strip().lower()
        stages[name] = stages.get(name, 0) + 1
        start, end = _instant(created), _instant(closed)
        if start is not None and any(
            start <= at < start + window for at in placed.get(customer_id, [])
        ):
            converted += 1
        if start is not None and end is not None:
            days += (end.date() - start.date()).days
    return {
        "leads_per_stage": stages,
        "converted_leads": converted,
        "total_days_to_close": days,
    }


def _warehouse_figures(warehouse: Path, tables: Iterable[str]) -> dict[str, Any]:
    con = db.connect(warehouse, read_only=True)
    out: dict[str, Any] = {}
    try:
        if "orders" in tables:
            methods = ", ".join(f"{m}_amount" for m in METHODS)
            out["orders"] = {
                row[0]: (row[1], row[2], row[3], *(_cents(v) for v in row[4:]))
                for row in con.execute(
                    f"select order_id, customer_id, status, order_at, {methods}, amount "
                    "from crm.fct_orders"
                ).fetchall()
            }
        if "customers" in tables:
            out["customers"] = {
                row[0]: (row[1], row[2], row[3], _cents(row[4]))
                for row in con.execute(
                    "select customer_id, number_of_orders, first_order_at, most_recent_order_at, "
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


def check_parity(warehouse: Path, tables: Iterable[str]) -> list[str]:
    """Differences between the marts and the independent computation over every export the
    warehouse has taken in, for ``tables`` (orders, customers, leads); empty means parity."""
    tables = list(tables)
    deliveries = Deliveries(warehouse)
    marts = _warehouse_figures(warehouse, tables)
    expected: dict[str, Any] = {}
    if "orders" in tables:
        expected["orders"] = orders_figures(deliveries)
    if "customers" in tables:
        expected["customers"] = customers_figures(deliveries)
    if "leads" in tables:
        expected["leads"] = leads_figures(deliveries)
    problems = list(dict.fromkeys(deliveries.problems))
    for table, want in expected.items():
        got = marts[table]
        if isinstance(want, dict) and table != "leads":
            missing, extra = set(want) - set(got), set(got) - set(want)
            if missing or extra:
                problems.append(
                    f"{table}: keys only in the exports {sorted(missing)[:5]}, "
                    f"only in the mart {sorted(extra)[:5]}"
                )
            for key in sorted(set(want) & set(got)):
                if want[key] != got[key]:
                    problems.append(f"{table} {key}: exports {want[key]} != mart {got[key]}")
        elif want != got:
            problems.append(f"{table}: exports {want} != mart {got}")
    return problems
