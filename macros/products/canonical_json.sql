{#- The canonical text of a JSON value, built bottom-up from json_tree, in pure SQL.

    Rules (documented in the README; two values that mean the same get byte-identical text):
    - object keys sorted by their UTF-8 bytes, at every level; no whitespace;
    - numbers in one form: an integral value below 1e15 as an integer (1, 1.0, 1e0 → 1),
      any other as DuckDB's shortest round-trip double (2.50 → 2.5, 1.5e300 → 1.5e+300);
      integers the parser keeps exact (up to 2^64) are kept as written; -0 → 0;
    - strings re-escaped one way (\u00e9 → é); booleans true/false;
    - empty values dropped: an object member whose value is null, a blank string, [] or {}
      is removed, bottom-up (a member that becomes {} is removed in turn); array elements are
      never removed, their order is data.

    `source_relation` must have the columns `key_column` (unique) and `json_column` (valid
    JSON text); the calling query must start with `with recursive`. Returns rows
    (key_column, canonical_json, json_depth) for every input row in the CTE json_canonical;
    canonical_json is null when a node lies deeper than `max_depth`. The CTE json_nodes (one
    row per node: row_key, node_id, parent_id, node_key, node_path, node_type, node_atom) is
    there for checks of the caller's own. -#}
{% macro canonical_json_ctes(source_relation, key_column, json_column, max_depth) %}
json_nodes as (
    select
        src.{{ key_column }} as row_key,
        tree.id as node_id,
        tree.parent as parent_id,
        tree.key as node_key,
        tree.fullkey as node_path,
        tree.type as node_type,
        tree.atom as node_atom
    from {{ source_relation }} as src,
        json_tree(src.{{ json_column }}) as tree
),

json_depths (row_key, node_id, node_depth) as (
    select
        row_key,
        node_id,
        0 as node_depth
    from json_nodes
    where parent_id is null
    union all
    select
        child.row_key,
        child.node_id,
        parent.node_depth + 1 as node_depth
    from json_nodes as child
    inner join json_depths as parent
        on child.row_key = parent.row_key and child.parent_id = parent.node_id
),

json_leveled as (
    select
        json_nodes.*,
        json_depths.node_depth
    from json_nodes
    inner join json_depths using (row_key, node_id)
),

json_scalars as (
    select
        row_key,
        node_id,
        parent_id,
        node_key,
        node_depth,
        case node_type
            when 'NULL' then 'null'
            when 'BOOLEAN' then node_atom
            when 'VARCHAR' then to_json(json_extract_string(node_atom, '$'))::varchar
            when 'DOUBLE' then case
                when
                    node_atom::double = trunc(node_atom::double)
                    and abs(node_atom::double) < 1e15
                    then (node_atom::double)::hugeint::varchar
                else (node_atom::double)::varchar
            end
            else node_atom
        end as canonical
    from json_leveled
    where node_type not in ('OBJECT', 'ARRAY')
),
{% for depth in range(max_depth, -1, -1) %}
json_level_{{ depth }} as (
    select
        parent.row_key,
        parent.node_id,
        parent.parent_id,
        parent.node_key,
        parent.node_depth,
        case parent.node_type
            when 'OBJECT' then '{' || coalesce(
                string_agg(
                    to_json(child.node_key)::varchar || ':' || child.canonical, ','
                    order by child.node_key
                ) filter (
                    where
                    child.canonical not in ('null', '[]', '{}')
                    and not regexp_full_match(child.canonical, '"\s*"')
                ),
                ''
            ) || '}'
            else '[' || coalesce(
                string_agg(child.canonical, ',' order by try_cast(child.node_key as integer)),
                ''
            ) || ']'
        end as canonical
    from json_leveled as parent
    left join (
        select
            row_key,
            node_id,
            parent_id,
            node_key,
            node_depth,
            canonical
        from json_scalars
        where node_depth = {{ depth + 1 }}
        {%- if depth < max_depth %}
            union all
            select
                row_key,
                node_id,
                parent_id,
                node_key,
                node_depth,
                canonical
            from json_level_{{ depth + 1 }}
        {%- endif %}
    ) as child
        on parent.row_key = child.row_key and parent.node_id = child.parent_id
    where parent.node_depth = {{ depth }} and parent.node_type in ('OBJECT', 'ARRAY')
    group by
        parent.row_key,
        parent.node_id,
        parent.parent_id,
        parent.node_key,
        parent.node_depth,
        parent.node_type
),
{% endfor %}
json_roots as (
    select
        row_key,
        canonical
    from json_level_0
    union all
    select
        row_key,
        canonical
    from json_scalars
    where node_depth = 0
),

json_max_depths as (
    select
        row_key,
        max(node_depth) as json_depth
    from json_leveled
    group by row_key
),

json_canonical as (
    select
        json_max_depths.row_key as {{ key_column }},
        json_max_depths.json_depth,
        case
            when json_max_depths.json_depth <= {{ max_depth }} then json_roots.canonical
        end as canonical_json
    from json_max_depths
    left join json_roots using (row_key)
)
{% endmacro %}
