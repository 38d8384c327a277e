{{ config(materialized='table') }}

{#- The cells of int_telemetry__rows_in_scope whose outcome is contested, ranked, with what became
    of each (the others are kept, or nulled when invalid: int_telemetry__cell_deliveries).
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
    Only these cells (few) are ranked, with aggregates over narrow keys rather than windows
    over every cell, and only they are written. -#}
with

in_scope as not materialized (
    select * from {{ ref('int_telemetry__rows_in_scope') }}
),

-- A row's cells need ranking only when its sample time was delivered by more than one file,
-- or its reading time by more than one line of its file, or a sample holds several readings
-- and an invalid one (a valid reading beats an invalid one of the same delivery). All three
-- are properties of the row, found over rows, not cells.
contested_samples as (
    select
        site_id,
        sample_at
    from in_scope
    group by site_id, sample_at
    having
        min(batch_id) != max(batch_id)
        or min(file_id) != max(file_id)
        or (
            min(reading_at) != max(reading_at)
            and bool_or(len(list_filter(cells, lambda c: c['invalid_reason'] is not null)) > 0)
        )
),

repeated_readings as (
    select
        batch_id,
        file_id,
        site_id,
        reading_at
    from in_scope
    group by batch_id, file_id, site_id, reading_at
    having min(source_line) != max(source_line)
),

contested_rows as (
    select in_scope.*
    from in_scope
    left join contested_samples
        on
            in_scope.site_id = contested_samples.site_id
            and in_scope.sample_at = contested_samples.sample_at
    left join repeated_readings
        on
            in_scope.batch_id = repeated_readings.batch_id
            and in_scope.file_id = repeated_readings.file_id
            and in_scope.site_id = repeated_readings.site_id
            and in_scope.reading_at = repeated_readings.reading_at
    where contested_samples.site_id is not null or repeated_readings.site_id is not null
),

-- their cells, one row each (the struct's fields become columns; the alias names none)
contested as not materialized (
    select
        * exclude (cells),
        unnest(cells, recursive := true) as cell
    from contested_rows
),

shared as not materialized (
    select
        *,
        -- the delivery order: valid first, then batch, mtime, path, file (greatest wins)
        struct_pack(
            is_valid := invalid_reason is null, loaded_at, modified_at, relative_path,
            batch_id, file_id
        ) as delivery_key
    from contested
),

-- 1. a reading repeated inside its file: the last line wins
file_readings as (
    select
        batch_id,
        file_id,
        site_id,
        reading_at,
        device_id,
        point_id,
        max(source_line) as winning_line,
        arg_max(raw_value, source_line) as file_winner_value,
        count(distinct raw_value) > 1 as has_file_conflict
    from shared
    group by batch_id, file_id, site_id, reading_at, device_id, point_id
),

within_file as not materialized (
    select
        shared.*,
        file_readings.winning_line,
        file_readings.file_winner_value,
        file_readings.has_file_conflict
    from shared
    inner join file_readings
        on
            shared.batch_id = file_readings.batch_id
            and shared.file_id = file_readings.file_id
            and shared.site_id = file_readings.site_id
            and shared.reading_at = file_readings.reading_at
            and shared.device_id = file_readings.device_id
            and shared.point_id = file_readings.point_id
),

file_losers as (
    select
        * exclude (delivery_key, winning_line, file_winner_value, has_file_conflict),
        case
            when raw_value = file_winner_value then 'duplicate_in_file' else 'conflict_lost'
        end as outcome,
        batch_id as winning_batch_id,
        file_id as winning_file_id,
        source_file as winning_source_file,
        file_winner_value as winning_raw_value,
        false as has_file_conflict
    from within_file
    where source_line != winning_line
),

file_winners as not materialized (
    select * exclude (winning_line, file_winner_value)
    from within_file
    where source_line = winning_line
),

-- 2. a sample several deliveries delivered: the greatest delivery key wins
sample_winners as (
    select
        site_id,
        sample_at,
        device_id,
        point_id,
        max(delivery_key) as winning_key,
        arg_max(source_file, delivery_key) as winning_source_file
    from file_winners
    group by site_id, sample_at, device_id, point_id
),

ranked as (
    select
        file_winners.*,
        file_winners.delivery_key != sample_winners.winning_key as is_superseded,
        struct_extract(sample_winners.winning_key, 'batch_id') as winning_batch_id,
        struct_extract(sample_winners.winning_key, 'file_id') as winning_file_id,
        sample_winners.winning_source_file
    from file_winners
    inner join sample_winners
        on
            file_winners.site_id = sample_winners.site_id
            and file_winners.sample_at = sample_winners.sample_at
            and file_winners.device_id = sample_winners.device_id
            and file_winners.point_id = sample_winners.point_id
),

-- the value the winner delivered for the same reading time of the same sample (own value if
-- none; the sample, because a site whose raw interval changed files one reading time under two)
reading_winners as (
    select
        site_id,
        sample_at,
        device_id,
        point_id,
        reading_at,
        arg_max(raw_value, delivery_key) as winning_raw_value
    from file_winners
    group by site_id, sample_at, device_id, point_id, reading_at
),

-- the winner is only named for a cell that lost (NULL: the cell itself won)
ranked_values as (
    select
        ranked.*,
        reading_winners.winning_raw_value
    from ranked
    left join reading_winners
        on
            ranked.is_superseded
            and ranked.site_id = reading_winners.site_id
            and ranked.sample_at = reading_winners.sample_at
            and ranked.device_id = reading_winners.device_id
            and ranked.point_id = reading_winners.point_id
            and ranked.reading_at = reading_winners.reading_at
),

delivery_outcomes as (
    select
        * exclude (
            delivery_key, is_superseded, has_file_conflict,
            winning_batch_id, winning_file_id, winning_source_file, winning_raw_value
        ),
        case
            when is_superseded then 'superseded'
            when invalid_reason is not null then 'nulled'
            else 'kept'
        end as outcome,
        case when is_superseded then winning_batch_id end as winning_batch_id,
        case when is_superseded then winning_file_id end as winning_file_id,
        case when is_superseded then winning_source_file end as winning_source_file,
        winning_raw_value,
        has_file_conflict and not is_superseded as has_file_conflict
    from ranked_values
),

final as (
    select * from delivery_outcomes
    union all by name
    select * from file_losers
)

select * from final
