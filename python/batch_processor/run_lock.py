"""One writer at a time: a run holds the output folder's lock and its warehouse's lock from
start to commit (two outputs could otherwise share one warehouse through --warehouse)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from batch_processor.errors import RunFailedError


class LockedError(RunFailedError):
    """Another run holds the resource."""


@contextmanager
def exclusive(lock_path: Path, what: str, timeout_s: float) -> Iterator[None]:
    """Hold ``lock_path``, waiting up to ``timeout_s`` (0 = fail at once)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path))
    holder = lock_path.with_name(lock_path.name + ".holder")
    try:
        lock.acquire(timeout=timeout_s)
    except Timeout:
        who = "another run"
        try:
            info = json.loads(holder.read_text())
            who = f"pid {info['pid']} on {info['host']} since {info['since']}"
        except (OSError, ValueError, KeyError):
            pass
        raise LockedError(
            f"{what} is being written by {who}; wait for it to finish or pass "
            f"--lock-timeout SECONDS to wait (waited {timeout_s:g} s)"
        ) from None
    try:
        holder.write_text(
            json.dumps(
                {
                    "pid": os.getpid(),
                    "host": socket.gethostname(),
                    "since": datetime.now(UTC).isoformat(timespec="seconds"),
                }
            )
        )
        yield
    finally:
        holder.unlink(missing_ok=True)
        lock.release()


def warehouse_lock(warehouse: Path, timeout_s: float) -> AbstractContextManager[None]:
    """The warehouse's own lock (DuckDB has a single writer; this makes writers queue)."""
    return exclusive(warehouse.with_name(warehouse.name + ".lock"), str(warehouse), timeout_s)


@contextmanager
def run_locks(output_dir: Path, warehouse: Path, timeout_s: float) -> Iterator[None]:
    with (
        exclusive(output_dir / ".lock", str(output_dir), timeout_s),
        warehouse_lock(warehouse, timeout_s),
    ):
        yield
