{#- Every row of the point map names a device of its site (telemetry_devices) whose type is
    the type the point belongs to (telemetry_points): a fan's speed cannot be mapped to a
    chiller, and a device the devices seed does not describe has no ratings. -#}
{% test telemetry_point_device_types_match(model) %}
    select
        point_map.site_id,
        point_map.device_id,
        point_map.raw_column,
        point_map.point_id,
        points.device_type as point_device_type,
        devices.device_type as mapped_device_type
    from {{ model }} as point_map
    left join {{ ref('telemetry_points') }} as points on point_map.point_id = points.point_id
    left join {{ ref('telemetry_devices') }} as devices
        on point_map.site_id = devices.site_id and point_map.device_id = devices.device_id
    where devices.device_id is null or points.device_type is distinct from devices.device_type
{% endtest %}
