"""Find the input files of a batch without following links out of the input folder."""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

_NOT_DATA = (".", "_")


def discover_files(input_dir: Path, pattern: str) -> list[tuple[Path, PurePosixPath]]:
    """Every regular file under ``input_dir`` whose relative path matches ``pattern``.

    Names starting with ``.`` or ``_`` are not data (the Hadoop/Spark convention: ``_SUCCESS``,
    ``_ground_truth.csv``, ``.staging``) and are skipped; folder links are not followed, so a
    link cannot pull files from outside the input folder into a batch. File links and other
    non-regular entries are returned too: the loader reads a link only when it resolves to a
    file inside the input folder and records every other one as rejected, with the reason
    (``refusal``), instead of dropping it silently. The order is sorted by relative path, so
    a rerun sees the files in the same order.
    """
    found: list[tuple[Path, PurePosixPath]] = []
    for folder, subfolders, files in os.walk(input_dir, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(_NOT_DATA))
        for name in sorted(files):
            if name.startswith(_NOT_DATA):
                continue
            path = Path(folder) / name
            relative = PurePosixPath(path.relative_to(input_dir).as_posix())
            if fnmatch.fnmatchcase(str(relative), pattern):
                found.append((path, relative))
    found.sort(key=lambda item: str(item[1]))
    return found


def refusal(path: Path, input_dir: Path, link_roots: Sequence[Path] = ()) -> str | None:
    """Why ``path`` (found under ``input_dir``) must not be read, or None when it may: a link
    may be read only if it resolves to a regular file inside the input folder, or inside one
    of ``link_roots`` (folders the configuration names as safe to link into)."""
    try:
        info = path.lstat()
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    if stat.S_ISLNK(info.st_mode):
        try:
            target = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:  # dangling, or a loop of links
            return f"a symbolic link that does not resolve to a file ({exc}): not read"
        roots = [input_dir.resolve(), *(r.resolve() for r in link_roots)]
        root = next((r for r in roots if target.is_relative_to(r)), None)
        if root is None:
            return (
                f"a symbolic link to {target}, outside the input folder {roots[0]}: not read "
                "(copy the file into the input folder, or name its folder in link_roots)"
            )
        if not target.is_file():
            return f"a symbolic link to {target}, which is not a regular file: not read"
        if any(part.startswith(_NOT_DATA) for part in target.relative_to(root).parts):
            return f"a symbolic link to {target}, a name that is not data (. or _): not read"
        return None
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a pipe, socket or device): not read"
    return None
