"""Every NATS subject and stream name of the CRM pipeline, defined once."""

TASKS_SUBJECT = "crm.tasks"  # where TaskIQ sends CRM task messages (JetStream)
TASKS_STREAM = "crm_tasks"
WORKERS_DURABLE = "crm_workers"  # one durable pull consumer shared by every worker

EVENTS_STREAM = "etl_events"  # completion events are kept in JetStream too
EVENTS_SUBJECTS = "etl.>"
ORDERS_COMPLETED = "etl.crm.orders.completed"
CUSTOMERS_COMPLETED = "etl.crm.customers.completed"
LEADS_COMPLETED = "etl.crm.leads.completed"
CUSTOMER_SEGMENTS_COMPLETED = "etl.crm.customer_segments.completed"
