"""Where the project's own files live. Every path the code needs is derived here, once."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SEEDS_DIR = PROJECT_ROOT / "seeds"
MACROS_DIR = PROJECT_ROOT / "macros"
TELEMETRY_SITES_SEED = SEEDS_DIR / "telemetry_sites.csv"
TELEMETRY_POINT_MAP_SEED = SEEDS_DIR / "telemetry_point_map.csv"
TELEMETRY_POINTS_SEED = SEEDS_DIR / "telemetry_points.csv"
TELEMETRY_DEVICES_SEED = SEEDS_DIR / "telemetry_devices.csv"
UNIT_CONVERSIONS_SEED = SEEDS_DIR / "unit_conversions.csv"
DEFAULT_WAREHOUSE = PROJECT_ROOT / "warehouse" / "batch_processor.duckdb"
