{{
    config(
        materialized='incremental',
        incremental_strategy='append',
        on_schema_change='fail',
        pre_hook="{% if is_incremental() %}delete from {{ this }} using {{ ref('int_telemetry__partitions_to_build') }} as p where {{ this }}.site_id = p.site_id and date_trunc('month', {{ this }}.timestamp) = p.month_start{% endif %}"
    )
}}

{#- One row per raised quality flag: site, bucket, flag, the channel and rule that raised it,
    the observed value and the threshold it broke, so an analyst can see why a row is flagged.
    Incremental by partition: the (site, month) partitions of this batch are deleted and
    written again whole. The precedence table of the domain reference (§2.6) is applied here:
    - an empty or thin bucket (INSUFFICIENT_DATA) gets no physics or statistical flag;
    - a channel that is FROZEN gets no MAD outlier;
    - HEAT_IMBALANCE and AFFINITY_VIOLATION need clean inputs: none FROZEN or invalid;
    - a MAD outlier on a channel that a raised physics flag already explains is dropped. -#}
with

raised as (
    select * from {{ ref('int_telemetry__flag_insufficient_data') }}
    union all
    select * from {{ ref('int_telemetry__flag_outlier') }}
    union all
    select * from {{ ref('int_telemetry__flag_frozen') }}
    union all
    select * from {{ ref('int_telemetry__flag_heat_imbalance') }}
    union all
    select * from {{ ref('int_telemetry__flag_affinity') }}
),

bucket_context as (
    select
        site_id,
        bucket_start,
        bool_or(flag = 'INSUFFICIENT_DATA') as is_insufficient,
        coalesce(list(channel) filter (where flag = 'FROZEN'), []) as frozen_channels,
        coalesce(
            list(channel) filter (where flag = 'FROZEN' or (flag = 'OUTLIER' and rule <> 'mad')),
            []
        ) as unusable_channels,
        coalesce(
            flatten(
                list(input_channels) filter (
                    where flag in ('HEAT_IMBALANCE', 'AFFINITY_VIOLATION')
                )
            ),
            []
        ) as explained_channels
    from raised
    group by site_id, bucket_start
),

kept as (
    select raised.*
    from raised
    inner join bucket_context
        on
            raised.site_id = bucket_context.site_id
            and raised.bucket_start = bucket_context.bucket_start
    where
        not (
            bucket_context.is_insufficient
            and (
                raised.flag in ('FROZEN', 'HEAT_IMBALANCE', 'AFFINITY_VIOLATION')
                or raised.rule = 'mad'
            )
        )
        and not (
            raised.rule = 'mad'
            and list_contains(bucket_context.frozen_channels, raised.channel)
        )
        and not (
            raised.flag in ('HEAT_IMBALANCE', 'AFFINITY_VIOLATION')
            and list_has_any(raised.input_channels, bucket_context.unusable_channels)
        )
        and not (
            raised.rule = 'mad'
            and list_contains(bucket_context.explained_channels, raised.channel)
        )
),

partitions as (
    select * from {{ ref('int_telemetry__partitions_to_build') }}
),

final as (
    select
        kept.site_id,
        kept.bucket_start as timestamp,
        kept.flag,
        kept.device_id,
        kept.point_id,
        kept.channel,
        kept.rule,
        kept.observed_value,
        kept.threshold,
        kept.detail,
        kept.input_channels
    from kept
    semi join partitions
        on
            kept.site_id = partitions.site_id
            and date_trunc('month', kept.bucket_start) = partitions.month_start
)

select * from final
