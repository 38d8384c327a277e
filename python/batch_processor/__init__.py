"""Batch ETL on DuckDB and dbt: Python moves files and runs dbt; SQL does the data work."""

__version__ = "0.1.0"
