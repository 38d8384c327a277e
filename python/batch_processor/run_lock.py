"""One writer per output folder: a run holds ``<output>/.lock`` from start to commit."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout

from batch_processor.errors import RunFailedError


class LockedError(RunFailedError):
    """Another run holds the output folder."""


@contextmanager
def output_lock(output_dir: Path, timeout_s: float) -> Iterator[None]:
    """Hold the output folder's lock, waiting up to ``timeout_s`` (0 = fail at once)."""
    output_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(output_dir / ".lock"))
    holder = output_dir / ".lock.holder"
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
            f"{output_dir} is being written by {who}; wait for it to finish or pass "
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
