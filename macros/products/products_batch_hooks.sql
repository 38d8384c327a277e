{#- The statements the `products` model runs inside its transaction (see products.sql). -#}

{% macro products_append_change_log() %}
    insert into {{ source('products_state', 'product_change_log') }}
    select
        '{{ invocation_id }}' as batch_id,
        brand_code,
        sku,
        change_type,
        old_data_version,
        data_version as new_data_version,
        changed_fields,
        source_id,
        src_updated_at,
        now() as changed_at
    from {{ ref('int_products__changes') }}
    where change_type in ('insert', 'update')
{% endmacro %}

{% macro products_advance_watermark() %}
    insert or replace into {{ source('products_state', 'etl_watermark') }}
    select
        {{ sql_string(var('products_source_name')) }} as source_name,
        src_updated_at as last_src_updated_at,
        source_id as last_id,
        '{{ invocation_id }}' as batch_id,
        now() as updated_at
    from {{ ref('int_products__batch') }}
    order by src_updated_at desc, source_id desc
    limit 1
{% endmacro %}

{#- Test-only: fail after the batch was applied, to prove the rollback. -#}
{% macro products_fault_injection() %}
    select
        case
            when {{ var("products_fail_after_apply") }}
                then error('products_fail_after_apply is set: failing the batch on purpose')
        end as injected_failure
{% endmacro %}
