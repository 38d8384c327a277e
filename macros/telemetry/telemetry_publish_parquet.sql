{#- Post-hook of fct_telemetry_readings: COPY the partitions this batch rebuilt to Parquet in
    the batch's staging folder, Hive-partitioned site_id=/year=/month= (month zero-padded).
    A file holds at most telemetry_max_rows_per_file rows and, when
    telemetry_max_time_span_per_file_s is set, spans at most that much time (slots aligned
    on the month's start): rows are numbered into parts per partition and COPY k writes part
    k of each, so a partition has exactly as many files as its parts. Timestamps are INT64
    nanoseconds adjusted to UTC (Parquet TIMESTAMP(NANOS, true)), quality_flags
    LIST<STRING>, channels DOUBLE. Files are written before dbt's tests run: the Python
    publisher commits them only if every error-severity test passed. The staging folder comes
    from the environment (BATCH_PROCESSOR_TELEMETRY_STAGING_DIR, set by the Python runner),
    never from --vars, which dbt would parse as YAML and render as Jinja; without it (a bare
    `dbt build`) nothing is written. -#}
{% macro telemetry_publish_parquet() %}
    {%- set staging_root = env_var('BATCH_PROCESSOR_TELEMETRY_STAGING_DIR', '') -%}
    {%- if not execute or not staging_root -%}
        select 1
    {%- else -%}
        {%- set parts = telemetry_parquet_parts() -%}
        {%- set target = (staging_root ~ '/' ~ invocation_id) | replace("'", "''") -%}
        {%- set part_count = run_query(
            "select coalesce(max(part_no) + 1, 0) from (" ~ parts ~ ")"
        ).columns[0].values()[0] | int -%}
        {%- for part in range(part_count) %}
            copy (
                select * exclude (part_no) replace (
                    cast(timestamp as timestamptz_ns) as timestamp
                )
                from ({{ parts }})
                where part_no = {{ part }}
                order by site_id, timestamp
            ) to '{{ target }}' (
                format parquet,
                compression {{ var('telemetry_parquet_compression') }},
                partition_by (site_id, year, month),
                append,
                filename_pattern 'part-{{ invocation_id }}-{{ part }}-{uuid}'
            );
        {%- endfor %}
        select 1
    {%- endif -%}
{% endmacro %}

{#- The rebuilt partitions' rows with year, month and part_no: parts are numbered per
    partition by (time slot, row slot), where the time slot is the span of
    telemetry_max_time_span_per_file_s the row falls in (one slot when 0) and the row slot
    counts telemetry_max_rows_per_file rows within it. -#}
{% macro telemetry_parquet_parts() -%}
    {%- set max_rows = var('telemetry_max_rows_per_file') | int -%}
    {%- set span_s = var('telemetry_max_time_span_per_file_s', 0) | int -%}
    {%- set partitions = ref('int_telemetry__partitions_to_build') -%}
    select
        * exclude (time_slot, row_slot),
        dense_rank() over (
            partition by site_id, year, month order by time_slot, row_slot
        ) - 1 as part_no
    from (
        select
            *,
            (row_number() over (
                partition by site_id, year, month, time_slot order by timestamp
            ) - 1) // {{ max_rows }} as row_slot
        from (
            select
                t.*,
                strftime(t.timestamp, '%Y') as year,
                strftime(t.timestamp, '%m') as month,
                {% if span_s > 0 -%}
                    cast(floor((epoch(t.timestamp) - epoch(p.month_start)) / {{ span_s }}) as bigint)
                {%- else -%}
                    0
                {%- endif %} as time_slot
            from {{ this }} as t
            inner join {{ partitions }} as p
                on t.site_id = p.site_id and date_trunc('month', t.timestamp) = p.month_start
        )
    )
{%- endmacro %}
