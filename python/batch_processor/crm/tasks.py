"""The CRM ETL tasks, defined once: what each registers, which dbt selection it runs, which
mart it reports and on which subject it announces completion."""

from __future__ import annotations

from dataclasses import dataclass

from batch_processor.crm import subjects


@dataclass(frozen=True)
class EntityState:
    staging: str  # the staging view of this run's delivery
    latest: str  # the model holding the latest delivered version of every id


# per export table: where its delivery and its latest state live, and its key
LATEST_STATE: dict[str, tuple[EntityState, str]] = {
    table: (
        EntityState(f"crm_staging.stg_crm__{table}", f"crm_intermediate.int_crm__{table}_latest"),
        key,
    )
    for table, key in (
        ("customers", "customer_id"),
        ("orders", "order_id"),
        ("payments", "payment_id"),
        ("leads", "lead_id"),
    )
}


@dataclass(frozen=True)
class CrmTask:
    name: str  # the TaskIQ task name, also `batch-processor enqueue NAME`
    sources: tuple[str, ...]  # crm_raw tables it registers from the export folder
    selector: str  # the dbt selection it builds (models and their tests)
    mart: str  # the relation whose rows the completion event reports
    subject: str  # completion event subject


TASKS: dict[str, CrmTask] = {
    task.name: task
    for task in (
        CrmTask(
            "crm.orders",
            ("orders", "payments"),
            "+fct_orders",
            "crm.fct_orders",
            subjects.ORDERS_COMPLETED,
        ),
        CrmTask(
            "crm.customers",
            ("customers", "orders", "payments"),
            "+dim_customers",
            "crm.dim_customers",
            subjects.CUSTOMERS_COMPLETED,
        ),
        CrmTask(
            "crm.leads",
            ("leads", "orders"),
            "+fct_leads",
            "crm.fct_leads",
            subjects.LEADS_COMPLETED,
        ),
        # depends on crm.customers' mart; enqueued by the example listener (crm.listeners)
        CrmTask(
            "crm.customer_segments",
            (),
            "dim_customer_segments",
            "crm.dim_customer_segments",
            subjects.CUSTOMER_SEGMENTS_COMPLETED,
        ),
    )
}
