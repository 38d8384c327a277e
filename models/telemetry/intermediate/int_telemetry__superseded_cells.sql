{#- Cells that lost the merge to another delivery, per losing file and winning file, where
    either side is this batch: a correction in this batch that replaces cells of an earlier
    batch's file is counted for both files, whichever mtime they carry. -#}
with

cells as (
    select * from {{ ref('int_telemetry__contested_cells') }}
    where outcome = 'superseded'
),

pairs as (
    select
        site_id,
        batch_id as losing_batch_id,
        file_id as losing_file_id,
        source_file as losing_source_file,
        winning_batch_id,
        winning_file_id,
        winning_source_file,
        count(*) as cells,
        -- 7.0250 and 7.025 are the same value; text is compared as text
        count(*) filter (
            where coalesce(
                try_cast(raw_value as double) != try_cast(winning_raw_value as double),
                raw_value != winning_raw_value
            )
        ) as changed_cells,
        min(sample_at) as first_sample_at,
        max(sample_at) as last_sample_at
    from cells
    where
        batch_id = '{{ invocation_id }}'
        or winning_batch_id = '{{ invocation_id }}'
    group by all
)

select * from pairs
