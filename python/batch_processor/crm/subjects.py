"""Every NATS subject and stream name, defined once: the CRM tasks and the telemetry shards
share one task stream and one pool of workers."""

TASKS_SUBJECT = "crm.tasks"  # where TaskIQ sends CRM task messages (JetStream)
TASKS_STREAM = "crm_tasks"
WORKERS_DURABLE = "crm_workers"  # one durable pull consumer shared by every worker
LISTENERS_QUEUE = "crm_listeners"  # queue group: each event reaches one worker's listener
WORKERS_STATUS_BUCKET = "crm_workers"  # JetStream key-value: one live status per worker

EVENTS_STREAM = "etl_events"  # completion events are kept in JetStream too
EVENTS_SUBJECTS = "etl.>"
ORDERS_COMPLETED = "etl.crm.orders.completed"
CUSTOMERS_COMPLETED = "etl.crm.customers.completed"
LEADS_COMPLETED = "etl.crm.leads.completed"
CUSTOMER_SEGMENTS_COMPLETED = "etl.crm.customer_segments.completed"
SHARD_TASK = "telemetry.shard"  # one site of a sharded telemetry batch (same task stream)
SHARD_COMPLETED = "etl.telemetry.shard.completed"
