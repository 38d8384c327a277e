"""Process exit codes, documented in every command's --help."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the run failed; nothing was committed
    USAGE = 2  # bad arguments or configuration
    COMPLETED_WITH_REJECTS = 3  # the run finished, but some input files or rows were set aside


EXIT_CODES_HELP = (
    "exit codes: 0 ok, nothing lost; 3 completed, but some input files or rows were rejected "
    "(or lines swallowed, or conflicting values discarded: see the inventory/report); "
    "1 failed, nothing committed; 2 usage or configuration error"
)
GENERATE_EXIT_CODES_HELP = (
    "exit codes: 0 written; 1 failed (e.g. the folder cannot be written); 2 usage error"
)
GROUP_EXIT_CODES_HELP = "exit codes: each command's --help lists its own; 2 usage error"
