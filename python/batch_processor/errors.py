"""Errors the CLI turns into a clear message and an exit code instead of a traceback."""


class BatchProcessorError(Exception):
    """Base class for expected, user-facing failures."""


class ConfigError(BatchProcessorError):
    """Bad configuration or arguments (exit code 2)."""


class RunFailedError(BatchProcessorError):
    """The run failed and nothing was committed (exit code 1)."""
