"""Durable file operations for the commit protocol: fsync files and folders, write a file
so that it either appears whole or not at all."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def fsync_file(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(target: Path, data: bytes) -> Path:
    """``data`` in a temporary file next to ``target``. A failed write (a full disk) removes
    the partial file and raises an OSError that names ``target``, not the temporary name."""
    temp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with temp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as exc:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
    return temp


def create_exclusive(target: Path, data: bytes) -> None:
    """Write ``target`` whole, refusing to replace an existing file (link(2) is atomic and
    fails if the name exists): a commit can never silently overwrite another."""
    temp = _write_temp(target, data)
    try:
        os.link(temp, target)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(target.parent)


def replace_atomic(target: Path, data: bytes) -> None:
    """Write ``target`` whole and swap it in with rename(2): readers see the old or the new."""
    temp = _write_temp(target, data)
    try:
        temp.replace(target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise
    fsync_dir(target.parent)
