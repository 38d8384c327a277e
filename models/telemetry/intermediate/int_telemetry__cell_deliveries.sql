{{ config(materialized='table') }}

{#- Every non-blank delivered cell that counts for the partitions being rebuilt (with
    telemetry_context_hours of history around them), from committed batches and this one,
    with what became of it. A delivery never erases a point it lacks or leaves blank.
      1. Inside one file, a reading (reading time, point) repeated on several lines: the last
         line wins; a repeat with the same raw value is `duplicate_in_file`, one with another
         value `conflict_lost` (and the winning cell is marked `has_file_conflict`). Distinct
         reading times that fall on the same sample time are distinct readings, averaged into
         the bucket as before.
      2. Across deliveries of a sample (site, sample time, device, point) by several files, in this
         batch or earlier ones: a valid value beats an invalid one (a sentinel, `???` or
         out-of-range value never erases a measurement, as a blank never does), then the
         latest batch wins (arrival order), then the file modified last, then the greatest
         relative path, then the greatest file number. Every reading of the winning delivery
         is kept; the others are `superseded`, naming the winner.
      3. The winner is `kept`, or `nulled` when its value is invalid (sentinel, out of
         range, `???`, not a number; the reason is in invalid_reason).
    Windows run only over the keys that are repeated or contested (few); the rest pass
    through. -#}
{%- set partitions_relation = ref('int_telemetry__partitions_to_build') -%}
{%- set partitions_window -%}
    select
        min(month_start) - interval '{{ var("telemetry_context_hours") }} hours',
        max(month_start) + interval 1 month + interval '{{ var("telemetry_context_hours") }} hours'
    from {{ partitions_relation }}
{%- endset %}

with

history as (
    select * from {{ ref('int_telemetry__readings_history') }}
    -- only the row groups around the partitions being rebuilt are read
    where {{ telemetry_history_window(partitions_relation, partitions_window) }}
),

committed as (
    select batch_id from {{ source('telemetry_meta', 'committed_batches') }}
),

partitions as (
    select * from {{ partitions_relation }}
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

-- Most samples have one cell; only the others need ranking (a repeat inside a file or a
-- second delivery both mean several cells for the same sample).
shared_keys as (
    select
        site_id,
        sample_at,
        device_id,
        point_id
    from in_scope
    group by site_id, sample_at, device_id, point_id
    having count(*) > 1
),

single as (
    select
        in_scope.*,
        1 as delivery_rank,
        cast(null as varchar) as winning_batch_id,
        cast(null as integer) as winning_file_id,
        cast(null as varchar) as winning_source_file,
        cast(null as varchar) as winning_raw_value,
        false as has_file_conflict
    from in_scope
    anti join shared_keys as k
        on
            in_scope.site_id = k.site_id
            and in_scope.sample_at = k.sample_at
            and in_scope.device_id = k.device_id
            and in_scope.point_id = k.point_id
),

shared as (
    select in_scope.*
    from in_scope
    semi join shared_keys as k
        on
            in_scope.site_id = k.site_id
            and in_scope.sample_at = k.sample_at
            and in_scope.device_id = k.device_id
            and in_scope.point_id = k.point_id
),

-- 1. a reading repeated inside its file: the last line wins
within_file as (
    select
        *,
        row_number() over same_reading as rank_in_file,
        first_value(raw_value) over same_reading as file_winner_value,
        count(distinct raw_value) over (
            partition by batch_id, file_id, site_id, reading_at, device_id, point_id
        ) > 1 as has_file_conflict
    from shared
    window same_reading as (
        partition by batch_id, file_id, site_id, reading_at, device_id, point_id
        order by source_line desc
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

-- 2. a sample several deliveries delivered: valid first, then batch, mtime, path, file
across_deliveries as (
    select
        * exclude (rank_in_file, file_winner_value),
        dense_rank() over same_sample as delivery_rank,
        first_value(batch_id) over same_sample as winning_batch_id,
        first_value(file_id) over same_sample as winning_file_id,
        first_value(source_file) over same_sample as winning_source_file,
        -- the value the winner delivered for the same reading time (own value if none)
        first_value(raw_value) over (
            partition by site_id, device_id, point_id, reading_at
            order by
                invalid_reason is not null, loaded_at desc, modified_at desc,
                relative_path desc, batch_id desc, file_id desc
        ) as winning_raw_value
    from within_file
    where rank_in_file = 1
    window same_sample as (
        partition by site_id, sample_at, device_id, point_id
        order by
            invalid_reason is not null, loaded_at desc, modified_at desc,
            relative_path desc, batch_id desc, file_id desc
    )
),

ranked as (
    select * from single
    union all by name
    select * from across_deliveries
),

-- the winner is only named for a cell that lost (NULL: the cell itself won)
delivery_outcomes as (
    select
        * exclude (
            delivery_rank, has_file_conflict,
            winning_batch_id, winning_file_id, winning_source_file, winning_raw_value
        ),
        case
            when delivery_rank > 1 then 'superseded'
            when invalid_reason is not null then 'nulled'
            else 'kept'
        end as outcome,
        case when delivery_rank > 1 then winning_batch_id end as winning_batch_id,
        case when delivery_rank > 1 then winning_file_id end as winning_file_id,
        case when delivery_rank > 1 then winning_source_file end as winning_source_file,
        case when delivery_rank > 1 then winning_raw_value end as winning_raw_value,
        has_file_conflict and delivery_rank = 1 as has_file_conflict
    from ranked
),

final as (
    select * from delivery_outcomes
    union all by name
    select * from file_losers
)

select * from final
