"""``batch-processor products generate``: a products_staging export made by DuckDB in SQL.

Deterministic for a seed (values come from ``hash(row, seed)``, not a random generator), with
the things a real feed has: several rows per (brand_code, sku) (later rows win), rows that
share one src_updated_at, attribute JSON written with varying key order, spacing and number
spelling for the same meaning, and a few bad rows. ``--changed-fraction`` with ``--revision``
makes the next export of the same catalogue: that share of products gets a new price or
attribute and a later src_updated_at.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batch_processor import db

_EXPORT_SQL = """
create temp table export as
    with rows as (
        select
            i,
            hash(i, $seed) as h,
            i % $products as product
        from range($rows) as t(i)
    ),
    revised as (
        select
            *,
            $revision > 0
            and hash(product, $seed, $revision) % 10000 < $changed_fraction * 10000 as changed
        from rows
    )
    select
        i + 1 + $revision * $rows as id,
        case when h % 7 = 0 then lower(' br' || (product % 50)::varchar || ' ')
             else 'BR' || (product % 50)::varchar end as brand_code,
        'SKU-' || lpad(product::varchar, 8, '0') as sku,
        'Product  ' || product::varchar || case when h % 5 = 0 then '  ' else '' end as name,
        case when i % 997 = 13 then 'n/a'
             else ((hash(product, $seed) % 100000) / 100.0 + changed::integer)::varchar
        end as price,
        'usd' as currency,
        case h % 3
            when 0 then '{"color": "c' || (product % 9)::varchar || '", "size": '
                || (product % 40)::varchar || '.0, "tags": ["a", "b"], "note": ""}'
            when 1 then '{"tags":["a","b"],"size":' || (product % 40)::varchar
                || ',"color":"c' || (product % 9)::varchar || '"}'
            else '{ "size" : ' || (product % 40)::varchar || 'e0 , "color" : "c'
                || (product % 9)::varchar || '", "tags" : [ "a" , "b" ], "gone": null }'
        end as attributes,
        strftime(
            timestamp '2026-01-01' + to_seconds((i // $tie_group) + $revision * 100000000),
            '%Y-%m-%dT%H:%M:%SZ'
        ) as src_updated_at
    from revised
    where $revision = 0 or changed
"""


@dataclass(frozen=True)
class GeneratedExport:
    path: Path
    rows: int


def generate_products_export(
    out_dir: Path,
    *,
    rows: int,
    seed: int = 1,
    products: int | None = None,
    tie_group: int = 1,
    revision: int = 0,
    changed_fraction: float = 0.0,
) -> GeneratedExport:
    """Write ``out_dir/products_<revision>.csv``; ``tie_group`` rows share each timestamp."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"products_{revision:03d}.csv"
    con = db.connect(":memory:")
    try:
        con.execute(
            _EXPORT_SQL,
            {
                "rows": rows,
                "seed": seed,
                "products": products or max(1, rows * 9 // 10),
                "tie_group": max(1, tie_group),
                "revision": revision,
                "changed_fraction": changed_fraction,
            },
        )
        quoted = str(path).replace("'", "''")
        con.execute(f"copy export to '{quoted}' (header true)")
        written = con.execute("select count(*) from export").fetchall()[0][0]
    finally:
        con.close()
    return GeneratedExport(path, int(written))
