"""CRM: marts equal an independent pyarrow computation (jaffle-shop and generated data), the
event decorator checks payloads in one place, and the TaskIQ tasks over a real nats-server
publish completion events, survive a failing run and a killed worker, and two workers share
one warehouse without corrupting it."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import nats
import pytest

from batch_processor import devservers
from batch_processor.crm import subjects
from batch_processor.crm.etl import DELAY_ENV, run_crm_task
from batch_processor.crm.events import CompletionEvent, event_task_handler
from batch_processor.crm.generator import generate_crm_exports, generate_hourly_crm_exports
from batch_processor.crm.parity import check_parity
from batch_processor.crm.tasks import TASKS
from batch_processor.crm.worker import STATUS_EVERY_S
from tests.conftest import SHARED_DATA, require_shared

JAFFLE = SHARED_DATA / "jaffle-shop-classic" / "main"
CLI = str(Path(sys.executable).parent / "batch-processor")


def run_tasks(folder: Path, warehouse: Path, *names: str) -> dict[str, CompletionEvent]:
    return {
        name: run_crm_task(TASKS[name], folder, warehouse, warehouse.parent / "work" / name)
        for name in names
    }


@pytest.mark.shared_data
def test_parity_on_the_jaffle_shop(tmp_path: Path) -> None:
    require_shared(JAFFLE)
    events = run_tasks(JAFFLE, tmp_path / "w.duckdb", "crm.orders", "crm.customers")
    assert {e.status for e in events.values()} == {"ok"}, events
    assert events["crm.orders"].rows == 99 and events["crm.customers"].rows == 100
    assert check_parity(tmp_path / "w.duckdb", ["orders", "customers"]) == []
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    # jaffle-shop's own published figures for customer 1: 2 orders, lifetime value 33
    assert con.execute(
        "select number_of_orders, customer_lifetime_value from crm.dim_customers "
        "where customer_id = 1"
    ).fetchall() == [(2, 33)]


def test_parity_on_generated_data_and_an_append(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=800, orders=3000, leads=1500, seed=5)
    warehouse = tmp_path / "w.duckdb"
    events = run_tasks(folder, warehouse, "crm.orders", "crm.customers", "crm.leads")
    assert {e.status for e in events.values()} == {"ok"}
    assert check_parity(warehouse, ["orders", "customers", "leads"]) == []

    # the mart does not hide a wrong figure: tamper with one order and parity says so
    con = duckdb.connect(str(warehouse))
    con.execute("update crm.fct_orders set coupon_amount = coupon_amount + 1 where order_id = 7")
    con.close()
    assert any(p.startswith("orders 7:") for p in check_parity(warehouse, ["orders"]))

    # more orders arrive (append-mostly) in the next export: the incremental mart takes
    # them, nothing doubles, and the tampered order is merged back to its true figures
    generate_crm_exports(tmp_path / "in2", customers=800, orders=3500, leads=1500, seed=5)
    again = run_tasks(tmp_path / "in2", warehouse, "crm.orders")["crm.orders"]
    assert again.status == "ok" and again.rows == 3500
    assert again.changes is not None
    assert again.changes["orders"]["inserted"] == 500
    assert again.changes["orders"]["unchanged"] == 3000
    assert check_parity(warehouse, ["orders"]) == []

    # an export edited after it was taken in: parity says it cannot vouch for it
    (folder / "orders.csv").write_text((folder / "orders.csv").read_text() + "\n")
    assert any("changed since it was taken in" in p for p in check_parity(warehouse, ["orders"]))


def test_hour_by_hour_deliveries_keep_the_marts_equal_to_everything_delivered(
    tmp_path: Path,
) -> None:
    """Cumulative hourly exports (ids repeated unchanged or with a new status), payments up
    to two hours after their order, times with -0500 / Z / +0700: after every hour the marts
    equal the independent computation over every file delivered so far."""
    hours = generate_hourly_crm_exports(
        tmp_path / "exports", hours=4, customers=60, orders=300, leads=80, seed=11
    )
    warehouse = tmp_path / "w.duckdb"
    late_paid: set[int] = set()
    seen: dict[tuple[str, str], int] = {}
    for index, folder in enumerate(hours):
        events = run_tasks(folder, warehouse, "crm.orders", "crm.customers", "crm.leads")
        assert {e.status for e in events.values()} == {"ok"}, events
        assert check_parity(warehouse, ["orders", "customers", "leads"]) == [], folder.name
        orders = events["crm.orders"].changes
        assert orders is not None
        for table in ("orders", "payments"):
            for kind in ("inserted", "updated", "unchanged"):
                seen[(table, kind)] = seen.get((table, kind), 0) + orders[table][kind]
        # the second task on the same folder finds its files already taken in
        assert events["crm.customers"].changes is not None
        assert events["crm.customers"].changes["orders"] == {"rows": 0, "already_taken_in": 1}
        with duckdb.connect(str(warehouse), read_only=True) as con:
            paid_now = {
                row[0]
                for row in con.execute(
                    "select order_id from crm.fct_orders where amount > 0"
                ).fetchall()
            }
        if index == 0:
            unpaid_first = {
                row[0]
                for row in duckdb.sql(
                    f"select id from read_csv('{folder / 'orders.csv'}') "
                    f"where id not in (select order_id from read_csv('{folder / 'payments.csv'}'))"
                ).fetchall()
            }
        late_paid |= unpaid_first & paid_now
    assert late_paid, "orders of hour 0 whose payments arrived later were merged again"
    # new ids, new statuses and unchanged repeats all occurred, and were told apart
    assert seen[("orders", "updated")] > 0 and seen[("orders", "unchanged")] > 0
    assert seen[("payments", "unchanged")] > 0 and seen[("payments", "updated")] == 0

    with duckdb.connect(str(warehouse), read_only=True) as con:
        # -0500 keeps its instant: 20:22 at -05:00 is 01:22 UTC the next day
        (offsets,) = con.execute(
            "select count(*) from crm.fct_orders "
            "where order_date != cast(timezone('UTC', order_at) as date)"
        ).fetchall()[0]
        assert offsets == 0
        kinds = con.execute(
            "select count(distinct extract(hour from order_at)) from crm.fct_orders"
        ).fetchall()[0][0]
        assert kinds > 1, "the time of day is kept"

    # replaying an old hour changes nothing: its files were taken in
    before = duckdb.connect(str(warehouse), read_only=True)
    snapshot = before.execute("select * from crm.fct_orders order by order_id").fetchall()
    before.close()
    replay = run_tasks(hours[0], warehouse, "crm.orders")["crm.orders"]
    assert replay.status == "ok"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute("select * from crm.fct_orders order by order_id").fetchall() == snapshot
    assert check_parity(warehouse, ["orders", "customers", "leads"]) == []


def test_a_delivery_whose_task_failed_is_loaded_again_by_the_next_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The files were registered, then dbt died: the delivery is not merged, so the retry
    loads it (it is not "already taken in") and parity only counts merged deliveries."""
    from batch_processor.crm import etl

    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=30, orders=40, leads=5, seed=2)
    warehouse = tmp_path / "w.duckdb"
    real_run_dbt = etl.run_dbt

    def dying(*args: object, **kwargs: object) -> object:
        raise OSError("the worker's disk vanished mid-build")

    monkeypatch.setattr(etl, "run_dbt", dying)
    failed = run_tasks(folder, warehouse, "crm.orders")["crm.orders"]
    assert failed.status == "failed"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(
            "select count(*) from crm_raw.deliveries where merged_batch_id is null"
        ).fetchall() == [(2,)]
    monkeypatch.setattr(etl, "run_dbt", real_run_dbt)
    retried = run_tasks(folder, warehouse, "crm.orders")["crm.orders"]
    assert retried.status == "ok" and retried.rows == 40
    assert retried.changes is not None and retried.changes["orders"]["inserted"] == 40
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(
            "select count(*), count(merged_batch_id) from crm_raw.deliveries"
        ).fetchall() == [(2, 2)], "the same delivery ids, now merged"
    assert check_parity(warehouse, ["orders"]) == []


def test_a_conflicting_id_in_one_export_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=20, orders=30, leads=5, seed=2)
    payments = folder / "payments.csv"
    lines = payments.read_text().splitlines()
    identical = lines[1]
    pid, order_id, method, amount = lines[2].split(",")
    conflicting = ",".join([pid, order_id, method, str(int(amount) + 1)])
    payments.write_text("\n".join([*lines, identical, conflicting]) + "\n")
    event = run_tasks(folder, tmp_path / "w.duckdb", "crm.orders")["crm.orders"]
    assert event.status == "failed"
    assert "one_version_per_key_stg_crm__payments_payment_id" in str(event.error)
    assert f"conflicting_id={pid}, versions=2" in str(event.error)
    assert f"conflicting_id={identical.split(',')[0]}," not in str(event.error)


def test_an_unreadable_export_fails_with_an_event_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=20, orders=30, leads=5, seed=2)
    orders = folder / "orders.csv"
    orders.write_bytes(orders.read_bytes().replace(b"placed", b"plac\xe9d", 1))
    event = run_tasks(folder, tmp_path / "w.duckdb", "crm.orders")["crm.orders"]
    assert event.status == "failed" and event.rows == 0
    assert str(orders) in str(event.error)


def test_an_unexpected_exception_still_ends_in_a_failed_event(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_processor.crm import etl

    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=20, orders=30, leads=5, seed=2)

    def broken(*_: object, **__: object) -> None:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(etl, "register_tables", broken)
    event = run_tasks(folder, tmp_path / "w.duckdb", "crm.orders")["crm.orders"]
    assert (event.status, event.error_type, event.error) == ("failed", "ZeroDivisionError", "a bug")


def test_a_bad_export_fails_the_task_with_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=50, orders=60, leads=10, seed=2)
    orders = folder / "orders.csv"
    orders.write_text(orders.read_text().replace(",placed", ",lost_in_mail", 1))
    event = run_tasks(folder, tmp_path / "w.duckdb", "crm.orders")["crm.orders"]
    assert event.status == "failed" and event.rows == 0
    assert "accepted_values_stg_crm__orders_status" in str(event.error)
    (folder / "payments.csv").unlink()
    event = run_tasks(folder, tmp_path / "w.duckdb", "crm.orders")["crm.orders"]
    assert event.status == "failed" and "no payments.csv" in str(event.error)


def test_the_event_decorator_checks_version_and_fields_in_one_place(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[CompletionEvent] = []

    @event_task_handler("etl.test.completed")
    async def listener(event: CompletionEvent, broker: object) -> None:
        seen.append(event)

    good = CompletionEvent(task="crm.orders", batch_id="b", status="ok", rows=3, duration_ms=5)
    caplog.set_level(logging.WARNING)
    assert asyncio.run(listener(good.to_bytes())) == good
    assert asyncio.run(listener(good.to_bytes().replace(b'"version":1', b'"version":2'))) is None
    assert asyncio.run(listener(b'{"version": 1, "task": "crm.orders"}')) is None
    assert asyncio.run(listener(b"not json")) is None
    assert seen == [good]
    reasons = [r.getMessage() for r in caplog.records]
    assert any("version: Input should be 1" in r for r in reasons)
    assert any("status: Field required" in r and "rows: Field required" in r for r in reasons)
    assert all(r.startswith("dropped an event on etl.test.completed") for r in reasons)


# --- over a real nats-server ---------------------------------------------------------------


@pytest.fixture(scope="module")
def nats_url() -> Iterator[str]:
    with devservers.nats_server() as url:
        yield url


ACK_WAIT_S = 6  # short, as the in-progress acks allow; a killed worker's task returns in 6 s


class Worker:
    def __init__(self, url: str, warehouse: Path, folder: Path, log: Path, **env: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [CLI, "worker", "--nats", url, "--warehouse", str(warehouse), "--input", str(folder)],
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "BATCH_PROCESSOR_NATS_ACK_WAIT_S": str(ACK_WAIT_S), **env},
        )
        self.wait_for("worker ready")

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"no {text!r} in {self.log.read_text()}"
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=60)
        return self.process.returncode


async def _collect(
    url: str, seconds: float, enqueue: list[list[str]], expect: int | None = None
) -> list[dict]:
    """Subscribe to every completion subject, run the enqueue commands, collect events
    (until ``expect`` of them, by default one per command, arrived)."""
    client = await nats.connect(url)
    events: list[dict] = []

    async def on_event(message: object) -> None:
        events.append({"subject": message.subject, **json.loads(message.data)})  # type: ignore[attr-defined]

    await client.subscribe("etl.crm.>", cb=on_event)
    for command in enqueue:
        await asyncio.to_thread(
            subprocess.run, [CLI, *command, "--nats", url], check=True, capture_output=True
        )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and len(events) < (expect or len(enqueue)):
        await asyncio.sleep(0.1)
    await asyncio.sleep(3)  # late duplicates would show up here
    await client.close()
    return events


@pytest.mark.slow
def test_tasks_publish_events_and_a_failed_run_does_not_stop_the_worker(
    tmp_path: Path, nats_url: str
) -> None:
    good, bad = tmp_path / "good", tmp_path / "bad"
    generate_crm_exports(good, customers=200, orders=400, leads=100, seed=3)
    shutil.copytree(good, bad)
    (bad / "orders.csv").write_text(
        (good / "orders.csv").read_text().replace(",completed", ",lost", 1)
    )
    worker = Worker(nats_url, tmp_path / "w.duckdb", good, tmp_path / "worker.log")
    try:
        events = asyncio.run(
            _collect(
                nats_url,
                60,
                [
                    ["enqueue", "crm.orders", "--input", str(bad)],
                    ["enqueue", "crm.orders"],
                    ["enqueue", "crm.customers"],
                ],
            )
        )
    finally:
        worker.stop()
    by_subject: dict[str, list[dict]] = {}
    for event in events:
        by_subject.setdefault(event["subject"], []).append(event)
    orders = by_subject[subjects.ORDERS_COMPLETED]
    assert [e["status"] for e in orders] == ["failed", "ok"]
    assert "accepted_values" in orders[0]["error"] and orders[1]["rows"] == 400
    assert by_subject[subjects.CUSTOMERS_COMPLETED][0]["rows"] == 200
    # the example listener refreshed what depends on the customers mart
    segments = by_subject[subjects.CUSTOMER_SEGMENTS_COMPLETED]
    assert len(segments) == 1 and segments[0]["status"] == "ok"
    assert all(e["version"] == 1 and e["task_id"] for e in events)


@pytest.mark.slow
def test_a_killed_workers_task_is_redelivered_and_nothing_is_duplicated(
    tmp_path: Path, nats_url: str
) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=100, orders=500, leads=10, seed=4)
    warehouse = tmp_path / "w.duckdb"
    doomed = Worker(nats_url, warehouse, folder, tmp_path / "a.log", **{DELAY_ENV: "30"})
    survivor: Worker | None = None
    try:

        async def scenario() -> list[dict]:
            client = await nats.connect(nats_url)
            events: list[dict] = []

            async def on_event(message: object) -> None:
                events.append(json.loads(message.data))  # type: ignore[attr-defined]

            await client.subscribe(subjects.ORDERS_COMPLETED, cb=on_event)
            await asyncio.to_thread(
                subprocess.run, [CLI, "enqueue", "crm.orders", "--nats", nats_url], check=True
            )
            await asyncio.to_thread(doomed.wait_for, "crm.orders")  # it took the task
            doomed.stop(signal.SIGKILL)  # … and dies in the middle of it
            nonlocal survivor
            survivor = await asyncio.to_thread(
                Worker, nats_url, warehouse, folder, tmp_path / "b.log"
            )
            deadline = time.monotonic() + 60
            while not events and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(ACK_WAIT_S + 2)  # a second delivery would show now
            await client.close()
            return events

        events = asyncio.run(scenario())
    finally:
        doomed.stop(signal.SIGKILL)
        if survivor is not None:
            survivor.stop()
    assert [e["status"] for e in events] == ["ok"]
    assert events[0]["worker"].endswith(f":{survivor.process.pid}")  # type: ignore[union-attr]
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute(
        "select count(*), count(distinct order_id) from crm.fct_orders"
    ).fetchall() == [(500, 500)]


@pytest.mark.slow
def test_two_workers_serve_concurrently_without_corrupting_the_warehouse(
    tmp_path: Path, nats_url: str
) -> None:
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=300, orders=1200, leads=400, seed=6)
    warehouse = tmp_path / "w.duckdb"
    workers = [Worker(nats_url, warehouse, folder, tmp_path / f"w{n}.log") for n in range(2)]
    try:
        commands = [
            ["enqueue", name]
            for name in (
                "crm.orders",
                "crm.leads",
                "crm.orders",
                "crm.leads",
                "crm.orders",
                "crm.leads",
                "crm.customers",
            )
        ]
        # 7 tasks, and the one segments task the customers completion makes (not one per
        # worker: the listeners share a queue group)
        events = asyncio.run(_collect(nats_url, 120, commands, expect=8))
    finally:
        for worker in workers:
            worker.stop()
    task_events = [e for e in events if e["task"] in ("crm.orders", "crm.leads")]
    assert len(task_events) == 6 and {e["status"] for e in task_events} == {"ok"}
    assert [e["task"] for e in events].count("crm.customer_segments") == 1
    assert len({e["worker"] for e in task_events}) == 2  # both served
    assert check_parity(warehouse, ["orders", "leads"]) == []


@pytest.mark.slow
def test_a_live_long_task_is_not_redelivered_and_sigterm_lets_it_finish(
    tmp_path: Path, nats_url: str
) -> None:
    """A task running for 3x ack_wait keeps its message (in-progress acks): a second, idle
    worker never gets it. SIGTERM during the task: it finishes, publishes its one event and
    is acked, and the worker exits 0; an idle worker stopped with SIGTERM exits 0 quietly."""
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=50, orders=100, leads=10, seed=8)
    warehouse = tmp_path / "w.duckdb"
    busy = Worker(
        nats_url, warehouse, folder, tmp_path / "busy.log", **{DELAY_ENV: str(3 * ACK_WAIT_S)}
    )
    idle: Worker | None = None
    try:

        async def scenario() -> list[dict]:
            client = await nats.connect(nats_url)
            events: list[dict] = []

            async def on_event(message: object) -> None:
                events.append(json.loads(message.data))  # type: ignore[attr-defined]

            await client.subscribe(subjects.ORDERS_COMPLETED, cb=on_event)
            await asyncio.to_thread(
                subprocess.run, [CLI, "enqueue", "crm.orders", "--nats", nats_url], check=True
            )
            await asyncio.to_thread(busy.wait_for, "crm.orders")
            nonlocal idle
            idle = await asyncio.to_thread(
                Worker, nats_url, warehouse, folder, tmp_path / "idle.log"
            )
            await asyncio.sleep(ACK_WAIT_S + 1)  # past ack_wait: the task is still busy's
            busy.process.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 90
            while not events and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(ACK_WAIT_S + 2)  # a redelivery would show now
            await client.close()
            return events

        events = asyncio.run(scenario())
        assert busy.process.wait(timeout=60) == 0, busy.log.read_text()
    finally:
        busy.stop(signal.SIGKILL)
    assert idle is not None
    assert idle.stop() == 0
    assert [e["status"] for e in events] == ["ok"], events
    assert events[0]["worker"].endswith(f":{busy.process.pid}")
    assert "crm.orders" not in idle.log.read_text()
    for log in (busy.log, idle.log):
        text = log.read_text()
        assert "Traceback" not in text and " ERROR " not in text, text
    assert "finishing the task in flight" in busy.log.read_text()


@pytest.mark.slow
def test_a_worker_rides_out_a_nats_outage_longer_than_the_old_reconnect_window(
    tmp_path: Path,
) -> None:
    """nats-py gives up after 60 reconnect attempts by default; with 0.2 s between
    attempts that is 12 s. The server is down for 18 s, comes back with its store, and the
    same worker serves the next task, with a log that says so in a few lines."""
    folder = tmp_path / "in"
    generate_crm_exports(folder, customers=50, orders=100, leads=10, seed=9)
    with devservers.nats_server_with_outages() as server:
        worker = Worker(
            server.url,
            tmp_path / "w.duckdb",
            folder,
            tmp_path / "worker.log",
            BATCH_PROCESSOR_NATS_RECONNECT_WAIT_S="0.2",
        )
        try:
            server.halt()
            time.sleep(18)
            assert worker.process.poll() is None, "the worker is still running"
            server.revive()
            worker.wait_for("reconnected to NATS", timeout=30)
            events = asyncio.run(_collect(server.url, 60, [["enqueue", "crm.orders"]]))
            # the worker writes its status every STATUS_EVERY_S: the one after the task
            deadline = time.monotonic() + 3 * STATUS_EVERY_S
            while True:
                status = subprocess.run(
                    [CLI, "worker", "status", "--nats", server.url],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                workers = json.loads(status.stdout)["workers"]
                if (workers and workers[0]["last_task"]) or time.monotonic() > deadline:
                    break
                time.sleep(1)
        finally:
            code = worker.stop()
    assert [e["status"] for e in events] == ["ok"]
    assert events[0]["worker"].endswith(f":{worker.process.pid}")
    assert code == 0
    # the outage is told in a few lines, not one per reconnect attempt (DuckDB's nanobind
    # prints its leak report at interpreter exit: not the worker's log)
    lines = [
        line
        for line in worker.log.read_text().splitlines()
        if "nanobind" not in line and "leaked" not in line
    ]
    assert len(lines) < 30, "\n".join(lines)
    assert sum("NATS" in line and "WARNING" in line for line in lines) <= 4
    assert "Traceback" not in worker.log.read_text()
    shown = json.loads(status.stdout)
    assert shown["queue"]["waiting"] == 0 and shown["queue"]["ack_wait_s"] == ACK_WAIT_S
    assert [w["worker"] for w in shown["workers"]] == [events[0]["worker"]]
    assert shown["workers"][0]["last_task"]["task"] == "crm.orders"
