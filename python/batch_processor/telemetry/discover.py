"""Find the input files of a batch without following links out of the input folder."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path, PurePosixPath

_NOT_DATA = (".", "_")


def discover_files(input_dir: Path, pattern: str) -> list[tuple[Path, PurePosixPath]]:
    """Every regular file under ``input_dir`` whose relative path matches ``pattern``.

    Names starting with ``.`` or ``_`` are not data (the Hadoop/Spark convention: ``_SUCCESS``,
    ``_ground_truth.csv``, ``.staging``) and are skipped; folder links are not followed, so a
    link cannot pull files from outside the input folder into a batch. The order is sorted by
    relative path, so a rerun sees the files in the same order.
    """
    found: list[tuple[Path, PurePosixPath]] = []
    for folder, subfolders, files in os.walk(input_dir, followlinks=False):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(_NOT_DATA))
        for name in sorted(files):
            if name.startswith(_NOT_DATA):
                continue
            path = Path(folder) / name
            relative = PurePosixPath(path.relative_to(input_dir).as_posix())
            if fnmatch.fnmatchcase(str(relative), pattern) and path.is_file():
                found.append((path, relative))
    found.sort(key=lambda item: str(item[1]))
    return found
