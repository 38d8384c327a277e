{#- Every non-blank delivered cell that counts for the partitions being rebuilt (with
    telemetry_context_hours of history around them), from committed batches and this one,
    with what became of it: the contested cells as the merge ranked them
    (int_telemetry__contested_cells), every other cell kept, or nulled when its value is
    invalid (the reason is in invalid_reason). A delivery never erases a point it lacks or
    leaves blank. A view: the cells are unnested from the history's rows where they are used,
    never written one row each. -#}
-- the rows in scope are read again by every query that reads this view more than once, not
-- kept in memory: scanning them costs less than holding (or spilling) every row's cells
with

in_scope as not materialized (
    select * from {{ ref('int_telemetry__rows_in_scope') }}
),

contested as (
    select * from {{ ref('int_telemetry__contested_cells') }}
),

contested_rows as (
    select distinct
        batch_id,
        file_id,
        source_line
    from contested
),

-- `not in` over the row key, not an anti join: DuckDB then builds its hash table on the few
-- contested rows, not on every row in scope with its cells (4 against 0.7 CPU-s at 1 M rows)
uncontested_rows as (
    select in_scope.*
    from in_scope
    where
        (in_scope.batch_id, in_scope.file_id, in_scope.source_line) not in (
            select (contested_rows.batch_id, contested_rows.file_id, contested_rows.source_line)
            from contested_rows
        )
),

-- one row per cell (the struct's fields become columns; the alias names none)
uncontested as (
    select
        * exclude (cells),
        unnest(cells, recursive := true) as cell
    from uncontested_rows
),

outcomes as (
    select
        *,
        case when invalid_reason is not null then 'nulled' else 'kept' end as outcome,
        cast(null as varchar) as winning_batch_id,
        cast(null as integer) as winning_file_id,
        cast(null as varchar) as winning_source_file,
        cast(null as varchar) as winning_raw_value,
        false as has_file_conflict
    from uncontested
),

final as (
    select * from outcomes
    union all by name
    select * from contested
)

select * from final
