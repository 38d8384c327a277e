"""File checksums, read in chunks so that no file is ever held whole in memory."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(path: Path, chunk_size: int = _CHUNK) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileScan:
    """What one pass over a file's bytes measured: its checksum and its physical lines,
    counted here rather than trusted from a CSV reader. A line ends in \n, \r\n or a lone
    \r (old Mac exports)."""

    sha256: str
    size_bytes: int
    lines: int  # physical lines: line endings, plus a last line without one
    blank_lines: int  # lines that are empty
    newlines: int  # \n bytes
    crlf_newlines: int  # of which preceded by \r
    lone_crs: int  # \r not followed by \n

    @property
    def line_endings(self) -> str:
        kinds = [
            name
            for name, count in (
                ("lf", self.newlines - self.crlf_newlines),
                ("crlf", self.crlf_newlines),
                ("cr", self.lone_crs),
            )
            if count
        ]
        if len(kinds) > 1:
            return "mixed"
        return kinds[0] if kinds else "none"

    @property
    def needs_normalizing(self) -> bool:
        """DuckDB's strict CSV parser refuses line endings that change inside a file, and
        lone \r endings; such a file is read from a copy with every ending made \n."""
        return self.line_endings in ("mixed", "cr")


def scan_file(path: Path, chunk_size: int = _CHUNK) -> FileScan:
    """sha256, size and line counts of ``path`` in one chunked pass (C-level counting, no
    per-line Python work)."""
    digest = hashlib.sha256()
    size = newlines = blank = crlf = crs = 0
    carry = b""  # the partial line at the end of the previous chunk (it holds no \n)
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
            size += len(chunk)
            crs += chunk.count(b"\r")
            buffer = carry + chunk
            parts = buffer.split(b"\n")
            carry = parts.pop()
            newlines += len(parts)
            blank += parts.count(b"") + parts.count(b"\r")
            crlf += buffer.count(b"\r\n")  # each \n is in one chunk only: counted once
    lone_crs = crs - crlf
    last_line = 1 if carry and not carry.endswith(b"\r") else 0  # a lone \r ended it
    return FileScan(
        sha256=digest.hexdigest(),
        size_bytes=size,
        lines=newlines + lone_crs + last_line,
        blank_lines=blank,
        newlines=newlines,
        crlf_newlines=crlf,
        lone_crs=lone_crs,
    )


def normalize_line_endings(source: Path, target: Path, chunk_size: int = _CHUNK) -> None:
    """Copy ``source`` to ``target`` with every \r\n and lone \r turned into \n (the lines,
    and so their numbers, stay the same)."""
    with source.open("rb") as reader, target.open("wb") as writer:
        pending_cr = b""
        while chunk := reader.read(chunk_size):
            buffer = pending_cr + chunk
            pending_cr = b"\r" if buffer.endswith(b"\r") else b""  # may start a \r\n
            if pending_cr:
                buffer = buffer[:-1]
            writer.write(buffer.replace(b"\r\n", b"\n").replace(b"\r", b"\n"))
        writer.write(b"\n" if pending_cr else b"")
