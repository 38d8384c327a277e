"""The sites an input file can belong to, read from the dbt seed an analyst edits."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import duckdb

from batch_processor.db import literal_path
from batch_processor.errors import ConfigError


@dataclass(frozen=True)
class Site:
    site_id: str
    timezone: str
    timestamp_column: str
    csv_delimiter: str
    file_name_pattern: str
    raw_interval_s: int


class SiteRegistry:
    """Resolve the site of a file from its folder names first, then its file name."""

    def __init__(self, sites: list[Site]) -> None:
        self._by_id = {site.site_id: site for site in sites}

    @classmethod
    def from_seed(cls, seed: Path) -> SiteRegistry:
        if not seed.is_file():
            raise ConfigError(f"sites seed not found: {seed}")
        con = duckdb.connect()
        try:
            rows = con.execute(
                """
                select site_id, timezone, coalesce(timestamp_column, ''),
                       coalesce(csv_delimiter, ','),
                       coalesce(file_name_pattern, ''), raw_interval_s
                from read_csv($seed, header = true, all_varchar = true)
                order by site_id
                """,
                {"seed": literal_path(seed)},
            ).fetchall()
        except duckdb.Error as exc:
            raise ConfigError(f"cannot read sites seed {seed}: {exc}") from exc
        finally:
            con.close()
        return cls([Site(r[0], r[1], r[2], r[3], r[4], int(r[5])) for r in rows])

    @property
    def site_ids(self) -> list[str]:
        return sorted(self._by_id)

    def get(self, site_id: str) -> Site | None:
        return self._by_id.get(site_id)

    def resolve(self, relative_path: PurePosixPath) -> Site | None:
        """The site named by a folder of ``relative_path``, else by its file name pattern."""
        for folder in relative_path.parts[:-1]:
            if folder in self._by_id:
                return self._by_id[folder]
        for site in self._by_id.values():
            if site.file_name_pattern and fnmatch.fnmatchcase(
                relative_path.name, site.file_name_pattern
            ):
                return site
        return None
