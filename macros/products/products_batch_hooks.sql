{#- The statements the `products` model runs inside its transaction (see products.sql). -#}

{% macro products_append_change_log() %}
    insert into {{ state_table('products_state', 'product_change_log') }}
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
        now() as changed_at,
        changes
    from {{ ref('int_products__changes') }}
    where change_type in ('insert', 'update')
{% endmacro %}

{#- Every cursor the batch took in (applied, skipped or rejected) and how many contents its
    copies had then: a later sync tells a row that arrived behind the watermark from one it
    has seen, and a cursor delivered again with other contents from a known conflict. -#}
{% macro products_record_synced_rows() %}
    insert or replace into {{ state_table('products_state', 'synced_rows') }}
    select
        {{ sql_string(var('products_source_name')) }} as source_name,
        source_id,
        src_updated_at,
        '{{ invocation_id }}' as batch_id,
        content_versions
    from {{ ref('int_products__batch') }}
{% endmacro %}

{#- The watermark only moves forward: the later of the stored one and the batch's last
    cursor (a replay of an older export, --no-resume or --since, never moves it back). -#}
{% macro products_advance_watermark() %}
    insert or replace into {{ state_table('products_state', 'etl_watermark') }}
    select
        {{ sql_string(var('products_source_name')) }} as source_name,
        last_src_updated_at,
        last_id,
        batch_id,
        now() as updated_at
    from (
        select
            src_updated_at as last_src_updated_at,
            source_id as last_id,
            '{{ invocation_id }}' as batch_id
        from {{ ref('int_products__batch') }}
        union all
        select
            last_src_updated_at,
            last_id,
            batch_id
        from {{ state_table('products_state', 'etl_watermark') }}
        where source_name = {{ sql_string(var('products_source_name')) }}
    ) as candidates
    order by last_src_updated_at desc, last_id desc
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
