"""Batch ETL on DuckDB and dbt: Python moves files and runs dbt; SQL does the data work."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("batch-processor")  # pyproject.toml's version: its one definition
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
