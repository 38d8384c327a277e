"""Errors the CLI turns into a clear message and an exit code instead of a traceback."""


class BatchProcessorError(Exception):
    """Base class for expected, user-facing failures."""


class ConfigError(BatchProcessorError):
    """Bad configuration or arguments (exit code 2)."""


class RunFailedError(BatchProcessorError):
    """The run failed and nothing was committed (exit code 1)."""


class DatasetStateError(BatchProcessorError):
    """The published output folder is not in a state a run may build on (a missing, unreadable
    or tampered current.json with data present, a listed file that is gone): the run stops
    before it changes anything (exit code 1); ``batch-processor repair`` is the way out."""
