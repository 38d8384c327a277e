"""Look at the start of one file, cheaply, before DuckDB reads it.

The probe rejects what would make a read fail as a whole (empty, binary, undecodable header,
no timestamp column) with a reason a person can act on, and finds the header line and column
names so the read itself needs no CSV sniffing (which costs ~55 ms a file).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

PROBE_BYTES = 64 * 1024
_CANDIDATE_DELIMITERS = (",", ";", "\t", "|")
_UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class ProbeResult:
    """A file that can be read: where its header is and what its columns are called."""

    header_line: int  # 1-based physical line of the header
    preamble_blank_lines: int  # empty lines before the header (the rest is whitespace)
    column_names: tuple[str, ...]  # de-duplicated the pandas way: "x", "x.1", ...
    timestamp_index: int  # position of the site's timestamp column


class ProbeRejection(Exception):
    """The file cannot be read; the message says why."""


def unique_names(names: list[str]) -> tuple[str, ...]:
    """Make repeated header names unique as pandas does (``Output Power (kW)``, ``….1``).

    The real Metasys export was written by pandas this way, so the point map can name them.
    """
    seen: dict[str, int] = {}
    result: list[str] = []
    for raw in names:
        name = raw.strip()
        if name in seen:
            seen[name] += 1
            candidate = f"{name}.{seen[name]}"
            while candidate in seen:
                seen[name] += 1
                candidate = f"{name}.{seen[name]}"
            seen[candidate] = 0
            result.append(candidate)
        else:
            seen[name] = 0
            result.append(name)
    return tuple(result)


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter, quotechar='"'), [])


def probe_file(path: Path, *, delimiter: str, timestamp_column: str) -> ProbeResult:
    """Check ``path`` and describe its header, or raise ``ProbeRejection`` with the reason.

    An empty ``timestamp_column`` means the first column holds the timestamp.
    """
    size = path.stat().st_size
    if size == 0:
        raise ProbeRejection("empty file (0 bytes)")
    with path.open("rb") as handle:
        head = handle.read(PROBE_BYTES)
    nul = head.find(b"\x00")
    if nul >= 0:
        raise ProbeRejection(f"binary content: NUL byte at offset {nul}; not a text CSV")
    if head.startswith(_UTF8_BOM):
        head = head[len(_UTF8_BOM) :]
    if len(head) < size and b"\n" in head:
        head = head[: head.rindex(b"\n") + 1]  # do not decode a character cut in half
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise ProbeRejection(
            f"not UTF-8: invalid byte 0x{head[exc.start]:02x} on line {line} "
            f"(offset {exc.start}); re-export the file as UTF-8"
        ) from None
    lines = text.splitlines()
    header_index = next((i for i, line in enumerate(lines) if line.strip()), None)
    if header_index is None:
        raise ProbeRejection("no header line: the file holds only blank lines")
    header = lines[header_index]
    names = unique_names(_split(header, delimiter))
    if not timestamp_column:  # the site says: the first column holds the timestamp
        timestamp_column = names[0]
    if timestamp_column not in names:
        hint = ""
        for other in _CANDIDATE_DELIMITERS:
            if other != delimiter and timestamp_column in unique_names(_split(header, other)):
                hint = f"; the header splits on {other!r} instead: wrong delimiter for this site"
                break
        shown = ", ".join(repr(_clip(n)) for n in names[:8]) + (" …" if len(names) > 8 else "")
        raise ProbeRejection(
            f"no timestamp column {timestamp_column!r} in the header "
            f"(split on {delimiter!r}: {shown}){hint}"
        )
    if len(names) < 2:
        better = max(_CANDIDATE_DELIMITERS, key=lambda d: len(_split(header, d)))
        parts = len(_split(header, better))
        hint = f"; it splits into {parts} on {better!r}: wrong delimiter" if parts > 1 else ""
        raise ProbeRejection(
            f"no value columns: the header splits into a single column on {delimiter!r}{hint}"
        )
    has_data = any(line.strip() for line in lines[header_index + 1 :]) or len(head) < size
    if not has_data:
        raise ProbeRejection("header only: the file has no data rows")
    return ProbeResult(
        header_line=header_index + 1,
        preamble_blank_lines=sum(1 for line in lines[:header_index] if not line),
        column_names=names,
        timestamp_index=names.index(timestamp_column),
    )
