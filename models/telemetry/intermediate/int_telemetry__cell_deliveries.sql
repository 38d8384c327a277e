{{ config(materialized='table') }}

{#- Every non-blank delivered cell that counts for the partitions being rebuilt (with
    telemetry_context_hours of history around them), from committed batches and this one,
    with what became of it. The merge decides per cell, (site, sample time, point), so a
    delivery that lacks a point or leaves it blank never erases another delivery's value.
      1. Inside one file, the last line wins: a cell repeated with the same raw value is
         `duplicate_in_file`, one repeated with another value is `conflict_lost` (and the
         winning cell is marked `has_file_conflict`).
      2. Across deliveries (files, in this batch or earlier ones), the latest batch wins
         (arrival order), then the file modified last, then the greatest relative path, then
         the greatest file number: the others are `superseded`, naming the winner.
      3. The winner is `kept`, or `nulled` when its value is invalid (sentinel, out of
         range, `???`, not a number; the reason is in invalid_reason). -#}
with

history as (
    select * from {{ ref('int_telemetry__readings_history') }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

partitions as (
    select * from {{ ref('int_telemetry__partitions_to_build') }}
),

visible as (
    select history.*
    from history
    where
        (
            history.batch_id = '{{ invocation_id }}'
            or history.batch_id in (select committed.batch_id from committed)
        )
        and coalesce(trim(history.raw_value), '') != ''
),

in_scope as (
    select visible.*
    from visible
    semi join partitions
        on
            visible.site_id = partitions.site_id
            and visible.sample_at
            >= partitions.month_start - interval '{{ var("telemetry_context_hours") }} hours'
            and visible.sample_at < partitions.month_start + interval 1 month
            + interval '{{ var("telemetry_context_hours") }} hours'
),

within_file as (
    select
        *,
        row_number() over same_cell_in_file as rank_in_file,
        first_value(raw_value) over same_cell_in_file as file_winner_value,
        count(distinct raw_value) over (
            partition by batch_id, file_id, site_id, sample_at, point_id
        ) > 1 as has_file_conflict
    from in_scope
    window same_cell_in_file as (
        partition by batch_id, file_id, site_id, sample_at, point_id
        order by source_line desc
    )
),

across_deliveries as (
    select
        *,
        row_number() over same_cell as delivery_rank,
        first_value(batch_id) over same_cell as winning_batch_id,
        first_value(file_id) over same_cell as winning_file_id,
        first_value(source_file) over same_cell as winning_source_file,
        first_value(raw_value) over same_cell as winning_raw_value
    from within_file
    where rank_in_file = 1
    window same_cell as (
        partition by site_id, sample_at, point_id
        order by loaded_at desc, modified_at desc, relative_path desc, batch_id desc, file_id desc
    )
),

file_losers as (
    select
        * exclude (rank_in_file, file_winner_value, has_file_conflict),
        case
            when raw_value = file_winner_value then 'duplicate_in_file' else 'conflict_lost'
        end as outcome,
        batch_id as winning_batch_id,
        file_id as winning_file_id,
        source_file as winning_source_file,
        file_winner_value as winning_raw_value,
        false as has_file_conflict
    from within_file
    where rank_in_file > 1
),

delivery_outcomes as (
    select
        * exclude (
            rank_in_file, file_winner_value, delivery_rank,
            winning_batch_id, winning_file_id, winning_source_file, winning_raw_value,
            has_file_conflict
        ),
        case
            when delivery_rank > 1 then 'superseded'
            when invalid_reason is not null then 'nulled'
            else 'kept'
        end as outcome,
        winning_batch_id,
        winning_file_id,
        winning_source_file,
        winning_raw_value,
        has_file_conflict and delivery_rank = 1 as has_file_conflict
    from across_deliveries
),

final as (
    select * from delivery_outcomes
    union all by name
    select * from file_losers
)

select * from final
