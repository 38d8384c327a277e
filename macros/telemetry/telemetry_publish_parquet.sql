{#- Post-hook of fct_telemetry_readings: COPY the partitions this batch rebuilt to Parquet in
    the batch's staging folder, Hive-partitioned site_id=/year=/month= (month zero-padded),
    at most telemetry_max_rows_per_file rows a file and exactly ceil(rows / max) files a
    partition (rows are numbered per partition and COPY k writes part k of each). Timestamps
    are INT64 UTC-adjusted, quality_flags LIST<STRING>, channels DOUBLE. Files are written
    before dbt's tests run: the Python publisher commits them only if every error-severity
    test passed. Without telemetry_staging_dir (a bare `dbt build`) nothing is written. -#}
{% macro telemetry_publish_parquet() %}
    {%- set staging_root = var('telemetry_staging_dir', '') -%}
    {%- if not execute or not staging_root -%}
        select 1
    {%- else -%}
        {%- set max_rows = var('telemetry_max_rows_per_file') | int -%}
        {%- set partitions = ref('int_telemetry__partitions_to_build') -%}
        {%- set target = (staging_root ~ '/' ~ invocation_id) | replace("'", "''") -%}
        {%- set largest = run_query(
            "select coalesce(max(n), 0) from (select count(*) as n from " ~ this ~ " as t "
            ~ "inner join " ~ partitions ~ " as p on t.site_id = p.site_id "
            ~ "and date_trunc('month', t.timestamp) = p.month_start "
            ~ "group by t.site_id, p.month_start)"
        ).columns[0].values()[0] | int -%}
        {%- for part in range(((largest + max_rows - 1) // max_rows)) %}
            copy (
                select * exclude (part_no)
                from (
                    select
                        t.*,
                        strftime(t.timestamp, '%Y') as year,
                        strftime(t.timestamp, '%m') as month,
                        (row_number() over (
                            partition by t.site_id, p.month_start order by t.timestamp
                        ) - 1) // {{ max_rows }} as part_no
                    from {{ this }} as t
                    inner join {{ partitions }} as p
                        on t.site_id = p.site_id and date_trunc('month', t.timestamp) = p.month_start
                )
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
