"""Demo chiller-plant data: realistic, deterministic for a seed, with faults at known times.

The plant is simulated in DuckDB SQL (no Python loops over rows): a daily schedule and load
profile, an energy balance that closes (Q_cond = Q_evap + W), pumps and fans on the cube law.
Values are written in each site's own raw columns and units, read from the seeds, so any site
described there can be generated. Files per site overlap in time (the same reading is
delivered twice), and a few malformed files are dropped into the batch.

Ground truth (``_ground_truth.csv``): one row per site, 5-minute bucket (UTC) and expected flag.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_processor.db import connect, literal_path
from batch_processor.errors import ConfigError
from batch_processor.paths import (
    TELEMETRY_DEVICES_SEED,
    TELEMETRY_POINT_MAP_SEED,
    TELEMETRY_POINTS_SEED,
    TELEMETRY_SITES_SEED,
    UNIT_CONVERSIONS_SEED,
)

log = logging.getLogger(__name__)

GROUND_TRUTH_FILE = "_ground_truth.csv"  # leading "_": not picked up as input
BUCKET_SECONDS = 300
DEFAULT_START = datetime(2025, 6, 1, tzinfo=UTC)  # in the past: the contract refuses the future

# Injected faults, per site and day, as (kind, local start hour, minutes, point, flag). The
# hours fall inside the daily running period (06:00-22:00 local); each fault hits one device,
# rotating over the site's chillers or drives by day (the ground truth names it).
FAULTS: list[tuple[str, float, int, str, str]] = [
    ("stuck_sensor", 9.0, 120, "chw_supply_temp", "FROZEN"),
    ("heat_balance_break", 12.0, 60, "cdw_return_temp", "HEAT_IMBALANCE"),
    ("pump_power_vs_speed", 14.0, 60, "chw_pump_power", "AFFINITY_VIOLATION"),
    ("out_of_range", 15.5, 15, "chw_supply_temp", "OUTLIER"),
    ("gap", 19.0, 60, "*", "INSUFFICIENT_DATA"),
]
SENTINEL_MINUTES_AFTER_16H = (5, 35, 65)  # one sentinel cell each, flagged OUTLIER
SENTINELS = ("1e20", "-9999", "65535")


@dataclass(frozen=True)
class MappedColumn:
    """A raw column of a site (seed telemetry_point_map) and how to write it."""

    raw_column: str
    device_id: str
    point_id: str
    raw_unit: str
    scale: float
    offset: float
    per_hz: bool
    base_hz: float

    @property
    def channel(self) -> str:
        return f"{self.device_id}.{self.point_id}"


@dataclass(frozen=True)
class GeneratedBatch:
    out_dir: Path
    files: int
    rows: int
    bytes: int
    ground_truth: Path


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _sql_identifier(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


_SIMULATE_SQL = """
create or replace temp table sim as
with
grid as (
    select ts from range($start, $end, to_seconds($interval_s)) as t(ts)
),
clock as (
    select
        ts,
        timezone($tz, ts) as local_ts,
        extract(hour from timezone($tz, ts)) + extract(minute from timezone($tz, ts)) / 60.0
            as hour,
        -- deterministic noise in [-0.5, 0.5), one stream per purpose
        (hash($seed, $site, epoch(ts), 1) % 1000000) / 1e6 - 0.5 as n1,
        (hash($seed, $site, epoch(ts), 2) % 1000000) / 1e6 - 0.5 as n2,
        (hash($seed, $site, epoch(ts), 3) % 1000000) / 1e6 - 0.5 as n3,
        (hash($seed, $site, epoch(ts), 4) % 1000000) / 1e6 - 0.5 as n4,
        (hash($seed, $site, cast(epoch(ts) / 86400 as bigint), 5) % 1000000) / 1e6 as day_level
    from grid
),
weather as (
    select
        *,
        $base_oat + 5 * sin(2 * pi() * (hour - 9) / 24) + 3 * (day_level - 0.5) + 0.2 * n1
            as oat_c,
        least(98, greatest(20, 70 - 15 * sin(2 * pi() * (hour - 9) / 24) + 2 * n2)) as oa_rh_pct,
        hour >= 6 and hour < 22 as running
    from clock
),
loads as (
    select
        *,
        oat_c - (100 - oa_rh_pct) / 5 as oa_wetbulb_c,
        case when running then
            least(0.95, greatest(0.25,
                0.35 + 0.35 * sin(pi() * (hour - 6) / 16) + 0.01 * (oat_c - $base_oat)
                + 0.1 * (day_level - 0.5) + 0.005 * n3))
        else 0 end as load_frac
    from weather
),
plant as (
    select
        *,
        load_frac * $rated_cooling_kw as q_evap_kw,
        case when running then $design_chw_flow * (0.8 + 0.2 * load_frac) else 0 end as chw_flow,
        case when running then $design_cdw_flow else 0 end as cdw_flow,
        case when running then 0.6 + 0.35 * load_frac else 0 end as chw_pump_speed,
        case when running then 0.85 else 0 end as cdw_pump_speed,
        case when running then least(1.0, 0.4 + 0.6 * load_frac) else 0 end as fan_speed,
        case when running then 5.8 - 1.5 * power(1 - load_frac, 2) - 0.04 * (oat_c - $base_oat)
             else 1 end as cop
    from loads
)
select
    ts,
    running,
    case when running then 1 else 0 end as chiller_status,
    case when running then q_evap_kw / cop * (1 + 0.003 * n4) else 0 end as chiller_power,
    case when running then 7.0 + 0.1 * n1 else 12.0 + 0.5 * day_level end as chw_supply_temp,
    chw_flow * (1 + 0.004 * n2) as chw_flow,
    cdw_flow * (1 + 0.004 * n3) as cdw_flow,
    q_evap_kw,
    chw_pump_speed,
    case when running then 1 else 0 end as chw_pump_status,
    $chw_pump_kw * power(chw_pump_speed, 3) * (1 + 0.01 * n2) as chw_pump_power,
    cdw_pump_speed,
    case when running then 1 else 0 end as cdw_pump_status,
    $cdw_pump_kw * power(cdw_pump_speed, 3) * (1 + 0.01 * n3) as cdw_pump_power,
    fan_speed as tower_fan_speed,
    $fan_kw * power(fan_speed, 3) * (1 + 0.01 * n4) as tower_fan_power,
    oat_c as oat,
    oa_rh_pct as oa_rh,
    oa_wetbulb_c as oa_wetbulb,
    case when running then oa_wetbulb_c + 3.5 + 0.05 * n2 else oat_c - 1 end as cdw_supply_temp
from plant
"""

# Derived channels of the reference devices (one of each type); the site totals scale them by
# the sum of every device's size relative to the reference (e.g. $chillers = 1.8 for two
# chillers of 1407 and 1125 kW cooling against a reference of 1407).
_DERIVE_SQL = """
create or replace temp table sim_full as
select
    *,
    chw_supply_temp_true + case when chw_flow > 0
        then q_evap_kw * 1000 / (998 * 4186 * chw_flow) else 0.05 end as chw_return_temp,
    cdw_supply_temp + case when cdw_flow > 0
        then (q_evap_kw + chiller_power) * 1000 / (998 * 4186 * cdw_flow) else 0.05 end
        as cdw_return_temp,
    least(1.0, chiller_power / $rated_kw) as chiller_load,
    q_evap_kw * $chillers as cooling_load,
    chiller_power * $chillers + chw_pump_power * $chw_pumps + cdw_pump_power * $cdw_pumps
        + tower_fan_power * $tower_fans as plant_power,
    case when q_evap_kw > 0 then chiller_power / q_evap_kw end as bms_efficiency
from (
    select *, chw_supply_temp as chw_supply_temp_true from sim
)
"""


class DemoGenerator:
    """Writes ``sites`` sites x ``days`` days of raw CSVs under ``out_dir/<site_id>/``."""

    def __init__(
        self,
        out_dir: Path,
        *,
        sites: int,
        days: int,
        seed: int,
        interval_minutes: int | None = None,
        files_per_day: int = 4,
        start: datetime = DEFAULT_START,
        malformed_files: bool = True,
        site_ids: list[str] | None = None,
    ) -> None:
        if days < 1:
            raise ConfigError("--days must be at least 1")
        if files_per_day < 1 or 24 % files_per_day:
            raise ConfigError("--files-per-day must divide 24 (1, 2, 3, 4, 6, 8, 12 or 24)")
        if interval_minutes not in (None, 1, 5):
            raise ConfigError("--interval-minutes must be 1 or 5")
        self.out_dir = out_dir
        self.days = days
        self.seed = seed
        self.interval_minutes = interval_minutes
        self.files_per_day = files_per_day
        self.start = start
        self.malformed_files = malformed_files
        self.con = connect(":memory:")
        self.sites = self._sites(sites, site_ids)

    def _sites(self, count: int, site_ids: list[str] | None) -> list[dict[str, object]]:
        rows = self.con.execute(
            """
            select * from read_csv($path, header = true)
            where coalesce(demo_export_style, '') <> ''
            order by case when site_id = 'CGMH-TY' then 0 else 1 end, site_id
            """,
            {"path": literal_path(TELEMETRY_SITES_SEED)},
        )
        columns = [d[0] for d in rows.description]
        sites = [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]
        if site_ids:
            known = {str(site["site_id"]) for site in sites}
            unknown = [site_id for site_id in site_ids if site_id not in known]
            if unknown:
                raise ConfigError(
                    f"--site-id {', '.join(unknown)}: not a site of {TELEMETRY_SITES_SEED} with "
                    f"a demo_export_style (known: {', '.join(sorted(known))})"
                )
            return [site for site in sites if str(site["site_id"]) in site_ids]
        if count < 1 or count > len(sites):
            raise ConfigError(
                f"--sites must be between 1 and {len(sites)}: the sites seed describes "
                f"{len(sites)} site(s) with a demo_export_style ({TELEMETRY_SITES_SEED})"
            )
        return sites[:count]

    def generate(self) -> GeneratedBatch:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.con.execute(
            "create temp table truth (site_id varchar, bucket_start timestamptz, "
            "expected_flag varchar, fault varchar, channel varchar)"
        )
        files = rows = 0
        for site in self.sites:
            site_files, site_rows = self._generate_site(site)
            files += site_files
            rows += site_rows
        if self.malformed_files:
            files += self._write_malformed(self.sites[0])
        truth_path = self.out_dir / GROUND_TRUTH_FILE
        self.con.execute(
            f"copy (select distinct * from truth order by all) to {_sql_string(str(truth_path))} "
            "(header, delimiter ',')"
        )
        total_bytes = sum(p.stat().st_size for p in self.out_dir.rglob("*.csv"))
        return GeneratedBatch(self.out_dir, files, rows, total_bytes, truth_path)

    # -- one site -----------------------------------------------------------------------

    def _interval_s(self, site: dict[str, object]) -> int:
        if self.interval_minutes is not None:
            return self.interval_minutes * 60
        return int(str(site["raw_interval_s"]))

    def _devices(self, site_id: str) -> list[dict[str, object]]:
        """The site's devices (seed telemetry_devices) with their size relative to the first
        device of their type (rated cooling for chillers, rated power otherwise)."""
        rows = self.con.execute(
            """
            select
                *,
                coalesce(
                    coalesce(rated_cooling_kw, rated_kw) / first_value(
                        coalesce(rated_cooling_kw, rated_kw)
                    ) over (partition by device_type order by device_id),
                    1.0
                ) as size
            from read_csv($path, header = true)
            where site_id = $site
            order by device_type, device_id
            """,
            {"path": literal_path(TELEMETRY_DEVICES_SEED), "site": site_id},
        )
        columns = [d[0] for d in rows.description]
        return [dict(zip(columns, row, strict=True)) for row in rows.fetchall()]

    def _generate_site(self, site: dict[str, object]) -> tuple[int, int]:
        site_id = str(site["site_id"])
        tz = str(site["timezone"])
        interval_s = self._interval_s(site)
        end = self.start + timedelta(days=self.days)
        base_oat = 29.0 if tz.startswith("Asia/") else 26.0
        devices = self._devices(site_id)
        first: dict[str, dict[str, object]] = {}
        for device in devices:
            first.setdefault(str(device["device_type"]), device)
        if "chiller" not in first:
            raise ConfigError(f"site {site_id}: {TELEMETRY_DEVICES_SEED} describes no chiller")

        def rating(device_type: str, column: str) -> float:
            device = first.get(device_type)
            return _number(device.get(column) if device else None)

        def total_size(device_type: str) -> float:
            return sum(_number(d["size"]) for d in devices if d["device_type"] == device_type)

        self.con.execute(
            _SIMULATE_SQL,
            {
                "start": self.start,
                "end": end,
                "interval_s": interval_s,
                "tz": tz,
                "seed": self.seed,
                "site": site_id,
                "base_oat": base_oat,
                "rated_cooling_kw": rating("chiller", "rated_cooling_kw"),
                "design_chw_flow": rating("chiller", "design_chw_flow_m3_s"),
                "design_cdw_flow": rating("chiller", "design_cdw_flow_m3_s"),
                "chw_pump_kw": rating("chw_pump", "rated_kw") * 0.9,
                "cdw_pump_kw": rating("cdw_pump", "rated_kw") * 0.9,
                "fan_kw": rating("tower_fan", "rated_kw") * 0.9,
            },
        )
        self.con.execute(
            _DERIVE_SQL,
            {
                "rated_kw": rating("chiller", "rated_kw"),
                "chillers": total_size("chiller"),
                "chw_pumps": total_size("chw_pump"),
                "cdw_pumps": total_size("cdw_pump"),
                "tower_fans": total_size("tower_fan"),
            },
        )
        mapping = self._point_map(site_id)
        self._expand_devices(mapping, {str(d["device_id"]): _number(d["size"]) for d in devices})
        thin = self._invalid_sample_empties_bucket(interval_s)
        self._inject_physical_faults(site_id, tz, mapping, devices)
        self._build_raw_table(site, mapping)
        style = str(site["demo_export_style"])
        self._inject_cell_faults(site_id, tz, mapping, devices, style, thin)
        return self._write_files(site, interval_s)

    def _expand_devices(self, mapping: list[MappedColumn], sizes: dict[str, float]) -> None:
        """One column per (device, point) the site maps, named ``device.point``: the
        reference device's simulated value, scaled by the device's size for the points that
        add up over devices (site_aggregate = sum: power, flow), as is for the others."""
        extensive = {
            row[0]
            for row in self.con.execute(
                "select point_id from read_csv($p, header = true) where site_aggregate = 'sum'",
                {"p": literal_path(TELEMETRY_POINTS_SEED)},
            ).fetchall()
        }
        columns = []
        for device, point in sorted({(c.device_id, c.point_id) for c in mapping}):
            factor = sizes.get(device, 1.0) if point in extensive else 1.0
            columns.append(
                f"{_sql_identifier(point)} * {factor!r} as {_sql_identifier(f'{device}.{point}')}"
            )
        self.con.execute(
            f"create or replace temp table sim_devices as select ts, {', '.join(columns)} "
            "from sim_full"
        )

    def _local_midnights(self, tz: str) -> list[datetime]:
        """Local midnight of each generated day, shifted by 20 min a day so faults move."""
        found = self.con.execute(
            """
            select timezone($tz, cast(timezone($tz, $start + to_days(cast(d as integer))
                + interval 12 hour) as date)::timestamp)
            from range($days) as t(d) order by d
            """,
            {"tz": tz, "start": self.start, "days": self.days},
        ).fetchall()
        return [row[0] + timedelta(minutes=20 * (day % 3)) for day, row in enumerate(found)]

    def _fault_windows(self, tz: str) -> list[tuple[int, str, datetime, datetime, str]]:
        """(day, kind, start UTC, end UTC, flag) for every day of the run."""
        windows = []
        end_of_data = self.start + timedelta(days=self.days)
        for day, midnight in enumerate(self._local_midnights(tz)):
            for kind, hour, minutes, _, flag in FAULTS:
                begin = midnight + timedelta(hours=hour)
                end = begin + timedelta(minutes=minutes)
                if begin >= self.start and end <= end_of_data:
                    windows.append((day, kind, begin, end, flag))
        return windows

    def _record_truth(
        self, site_id: str, begin: datetime, end: datetime, flag: str, fault: str, channel: str
    ) -> None:
        self.con.execute(
            """
            insert into truth
            select $site, time_bucket(to_seconds($bucket), b), $flag, $fault, $channel
            from range($begin, $end, to_seconds($bucket)) as t(b)
            """,
            {
                "site": site_id,
                "bucket": BUCKET_SECONDS,
                "flag": flag,
                "fault": fault,
                "channel": channel,
                "begin": begin,
                "end": end,
            },
        )

    @staticmethod
    def _invalid_sample_empties_bucket(interval_s: int) -> bool:
        """Whether one invalid sample leaves a bucket below the coverage minimum
        (INSUFFICIENT_DATA): c_min is 0.5 when the raw interval is at most half the bucket,
        else 1.0; coverage is valid samples / expected samples."""
        expected = BUCKET_SECONDS // interval_s
        minimum = 0.5 if interval_s * 2 <= BUCKET_SECONDS else 1.0
        return (expected - 1) / expected < minimum

    def _required_points(self) -> set[str]:
        return {
            row[0]
            for row in self.con.execute(
                "select point_id from read_csv($p, header = true) where required_for_coverage",
                {"p": literal_path(TELEMETRY_POINTS_SEED)},
            ).fetchall()
        }

    def _inject_physical_faults(
        self,
        site_id: str,
        tz: str,
        mapping: list[MappedColumn],
        devices: list[dict[str, object]],
    ) -> None:
        """Each day's faults on one device each, rotating over the site's devices by day, so
        that a site with several chillers or fans shows that the flags name the right one."""
        mapped = {c.channel for c in mapping}
        chillers = [str(d["device_id"]) for d in devices if d["device_type"] == "chiller"]
        # drives (a speed and a power mapped), tower fans first, then the pumps
        order = {"tower_fan": 0, "chw_pump": 1, "cdw_pump": 2}
        drives = []
        for d in sorted(
            devices, key=lambda d: (order.get(str(d["device_type"]), 9), str(d["device_id"]))
        ):
            device, kind = str(d["device_id"]), str(d["device_type"])
            if {f"{device}.{kind}_speed", f"{device}.{kind}_power"} <= mapped:
                drives.append((device, f"{kind}_power"))
        for day, kind, begin, end, flag in self._fault_windows(tz):
            chiller = chillers[day % len(chillers)]
            window = {"begin": begin, "end": end}
            if kind == "stuck_sensor":
                # the sensor repeats its last reading; the water itself keeps its temperature
                column = _sql_identifier(f"{chiller}.chw_supply_temp")
                self.con.execute(
                    f"update sim_devices set {column} = (select {column} from sim_devices "
                    "where ts = $begin) where ts >= $begin and ts < $end",
                    window,
                )
                channel = f"{chiller}.chw_supply_temp"
            elif kind == "heat_balance_break":
                chiller = chillers[(day + 1) % len(chillers)]
                if f"{chiller}.cdw_flow" not in mapped:
                    continue  # no condenser flow meter: the balance is not evaluable
                column = _sql_identifier(f"{chiller}.cdw_return_temp")
                self.con.execute(
                    f"update sim_devices set {column} = {column} + 1.5 "
                    "where ts >= $begin and ts < $end",
                    window,
                )
                channel = chiller
            elif kind == "pump_power_vs_speed":
                if not drives:
                    continue
                device, power_point = drives[day % len(drives)]
                column = _sql_identifier(f"{device}.{power_point}")
                self.con.execute(
                    f"update sim_devices set {column} = {column} * 1.8 "
                    "where ts >= $begin and ts < $end",
                    window,
                )
                channel = device
            elif kind == "out_of_range":
                column = _sql_identifier(f"{chiller}.chw_supply_temp")
                self.con.execute(
                    f"update sim_devices set {column} = 85.0 where ts >= $begin and ts < $end",
                    window,
                )
                channel = f"{chiller}.chw_supply_temp"
                # every sample of a required point is invalid: the buckets have none of it
                self._record_truth(site_id, begin, end, "INSUFFICIENT_DATA", kind, "bucket")
            else:  # gap
                self.con.execute("delete from sim_devices where ts >= $begin and ts < $end", window)
                channel = "bucket"
            self._record_truth(site_id, begin, end, flag, kind, channel)

    def _point_map(self, site_id: str) -> list[MappedColumn]:
        """The site's raw columns, with the unit conversion to invert."""
        return [
            MappedColumn(r[0], r[1], r[2], r[3], float(r[4]), float(r[5]), bool(r[6]), float(r[7]))
            for r in self.con.execute(
                """
                select m.raw_column, m.device_id, m.point_id, m.raw_unit, c.scale, c."offset",
                       c.divide_by_site_base_hz, s.base_vfd_hz
                from read_csv($map, header = true, all_varchar = true) as m
                inner join read_csv($conv, header = true) as c on m.raw_unit = c.raw_unit
                inner join read_csv($sites, header = true) as s on m.site_id = s.site_id
                where m.site_id = $site
                order by m.raw_column
                """,
                {
                    "map": literal_path(TELEMETRY_POINT_MAP_SEED),
                    "conv": literal_path(UNIT_CONVERSIONS_SEED),
                    "sites": literal_path(TELEMETRY_SITES_SEED),
                    "site": site_id,
                },
            ).fetchall()
        ]

    def _build_raw_table(self, site: dict[str, object], mapping: list[MappedColumn]) -> None:
        """The site's rows in its own columns and units, as text, with its timestamp format."""
        tz = _sql_string(str(site["timezone"]))
        if site["demo_export_style"] == "metasys_imperial":
            ts_expr = (
                f"strftime(timezone({tz}, ts), '%Y-%m-%d %H:%M:%S') || "
                f"printf('%+03d:00', cast(date_diff('hour', timezone('UTC', ts), "
                f"timezone({tz}, ts)) as integer))"
            )
        else:
            ts_expr = f"strftime(timezone({tz}, ts), '%Y-%m-%d %H:%M:%S')"
        columns = [f"{ts_expr} as {_sql_identifier(str(site['timestamp_column']))}"]
        for column in mapping:
            si = _sql_identifier(column.channel)
            raw = f"({si} - {column.offset!r}) / {column.scale!r}"
            if column.per_hz:
                raw = f"({raw}) * {column.base_hz!r}"
            fmt = "'%.0f'" if column.raw_unit == "on_off" else "'%.3f'"
            columns.append(f"printf({fmt}, {raw}) as {_sql_identifier(column.raw_column)}")
        self.con.execute(
            f"create or replace temp table raw_rows as select ts, 0 as sort_key, "
            f"{', '.join(columns)} from sim_devices"
        )

    def _inject_cell_faults(
        self,
        site_id: str,
        tz: str,
        mapping: list[MappedColumn],
        devices: list[dict[str, object]],
        style: str,
        one_invalid_sample_empties_bucket: bool,
    ) -> None:
        by_channel = {c.channel: c.raw_column for c in mapping}
        chiller = next(str(d["device_id"]) for d in devices if d["device_type"] == "chiller")
        plant = next((str(d["device_id"]) for d in devices if d["device_type"] == "plant"), "")
        required = self._required_points()
        rng = random.Random(f"{self.seed}:{site_id}")
        for midnight in self._local_midnights(tz):
            # sentinel values in a sensor that is otherwise fine
            for minute, sentinel in zip(SENTINEL_MINUTES_AFTER_16H, SENTINELS, strict=True):
                point = rng.choice(["chiller_power", "chw_return_temp", "cdw_supply_temp"])
                channel = f"{chiller}.{point}"
                at = self._row_at(midnight + timedelta(hours=16, minutes=minute))
                if at is None or channel not in by_channel:
                    continue
                self._set_cell(at, by_channel[channel], _sql_string(sentinel))
                moment = (at, at + timedelta(seconds=1))
                self._record_truth(site_id, *moment, "OUTLIER", "sentinel", channel)
                if point in required and one_invalid_sample_empties_bucket:
                    self._record_truth(site_id, *moment, "INSUFFICIENT_DATA", "sentinel", "bucket")
            if style == "metasys_imperial":
                # the BMS's "unreliable" marker in front of a plausible number
                at = self._row_at(midnight + timedelta(hours=17, minutes=rng.randrange(0, 50)))
                channel = f"{chiller}.cdw_supply_temp"
                column = by_channel.get(channel)
                if at is not None and column is not None:
                    self._set_cell(at, column, f"'??? ' || {_sql_identifier(column)}")
                    self._record_truth(
                        site_id,
                        at,
                        at + timedelta(seconds=1),
                        "OUTLIER",
                        "unreliable_marker",
                        channel,
                    )
                # blank outside-air cells, as in the real export
                column = by_channel.get(f"{plant}.oat")
                if column is not None:
                    self.con.execute(
                        f"update raw_rows set {_sql_identifier(column)} = null "
                        "where ts >= $a and ts < $b",
                        {"a": midnight + timedelta(hours=1), "b": midnight + timedelta(hours=2)},
                    )

    def _row_at(self, moment: datetime) -> datetime | None:
        found = self.con.execute(
            "select min(ts) from raw_rows where ts >= $m", {"m": moment}
        ).fetchone()
        return found[0] if found else None

    def _set_cell(self, at: datetime, column: str, value_sql: str) -> None:
        self.con.execute(
            f"update raw_rows set {_sql_identifier(column)} = {value_sql} where ts = $at",
            {"at": at},
        )

    def _write_files(self, site: dict[str, object], interval_s: int) -> tuple[int, int]:
        """Slice the site's rows into overlapping files (30 min overlap) and write them."""
        site_id = str(site["site_id"])
        folder = self.out_dir / site_id
        folder.mkdir(parents=True, exist_ok=True)
        hours = 24 // self.files_per_day
        overlap = timedelta(minutes=30)
        metasys = site["demo_export_style"] == "metasys_imperial"
        files = rows = 0
        total = self.days * self.files_per_day
        for index in range(total):
            begin = self.start + timedelta(hours=hours * index)
            end = begin + timedelta(hours=hours) + (overlap if index + 1 < total else timedelta(0))
            path = folder / f"{site_id}_{begin:%Y%m%dT%H%M}Z.csv"
            header_row = metasys and index == total // 2
            if header_row:
                # Metasys repeats its header mid-file, with unit labels and no timestamp
                self._add_repeated_header(begin + timedelta(hours=hours / 2))
            count = self.con.execute(
                f"copy (select * exclude (ts, sort_key) from raw_rows where ts >= $b and ts < $e "
                f"order by ts, sort_key) to {_sql_string(str(path))} (header, delimiter ',')",
                {"b": begin, "e": end},
            ).fetchone()
            if header_row:
                self.con.execute("delete from raw_rows where sort_key = 1")
            files += 1
            rows += int(count[0]) if count else 0
        log.info("generated %s: %d files, %d rows", site_id, files, rows)
        return files, rows

    def _add_repeated_header(self, at: datetime) -> None:
        columns = [d[0] for d in self.con.execute("select * from raw_rows limit 0").description]
        values = ["$at", "1", "null"]  # ts, sort_key, empty timestamp cell
        values += [_sql_string(f"{name}.Trend - Present Value ()") for name in columns[3:]]
        self.con.execute(f"insert into raw_rows values ({', '.join(values)})", {"at": at})

    # -- malformed files ----------------------------------------------------------------

    def _write_malformed(self, site: dict[str, object]) -> int:
        folder = self.out_dir / str(site["site_id"])
        good = sorted(folder.glob("*.csv"))[0]
        lines = good.read_text(encoding="utf-8").splitlines()
        header, body = lines[0], lines[1:60]
        rng = random.Random(self.seed)
        (folder / "malformed_empty.csv").write_bytes(b"")
        (folder / "malformed_header_only.csv").write_text(header + "\n", encoding="utf-8")
        (folder / "malformed_binary.csv").write_bytes(
            bytes(rng.randrange(256) for _ in range(4096))
        )
        ragged = list(body)
        ragged[5] += ",1,2"  # too many cells
        ragged[20] = ragged[20].rsplit(",", 3)[0]  # too few cells
        (folder / "malformed_ragged_rows.csv").write_text(
            "\n".join([header, *ragged]) + "\n", encoding="utf-8"
        )
        (folder / "malformed_wrong_delimiter.csv").write_text(
            "\n".join(line.replace(",", ";") for line in [header, *body]) + "\n", encoding="utf-8"
        )
        return 5


def generate_demo_data(
    out_dir: Path, *, sites: int, days: int, seed: int, **options: object
) -> GeneratedBatch:
    generator = DemoGenerator(out_dir, sites=sites, days=days, seed=seed, **options)  # type: ignore[arg-type]
    try:
        return generator.generate()
    finally:
        generator.con.close()
