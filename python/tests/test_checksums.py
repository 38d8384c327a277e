"""The loader's own line count, the one the line ledger trusts instead of the CSV reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_processor.checksums import normalize_line_endings, scan_file, sha256_file

CASES = [
    (b"a\nb\n", 2, "lf", 0),
    (b"a\r\nb\r\n", 2, "crlf", 0),
    (b"a\rb", 2, "cr", 0),
    (b"10\r\n20\n30\r", 3, "mixed", 0),  # DuckDB's test/mixed_line_endings.csv
    (b"", 0, "none", 0),
    (b"x", 1, "none", 0),
    (b"a\n\nb\r\n\r\nc", 5, "mixed", 2),
]


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 1 << 20])
@pytest.mark.parametrize(("data", "lines", "endings", "blank"), CASES)
def test_lines_are_counted_whatever_the_chunk_boundaries(
    tmp_path: Path, data: bytes, lines: int, endings: str, blank: int, chunk_size: int
) -> None:
    source = tmp_path / "f.csv"
    source.write_bytes(data)
    scan = scan_file(source, chunk_size=chunk_size)
    assert (scan.lines, scan.line_endings, scan.blank_lines) == (lines, endings, blank)
    assert scan.sha256 == sha256_file(source) and scan.size_bytes == len(data)
    assert scan.needs_normalizing == (endings in ("mixed", "cr"))
    target = tmp_path / "g.csv"
    normalize_line_endings(source, target, chunk_size=chunk_size)
    normalized = target.read_bytes()
    assert b"\r" not in normalized
    assert scan_file(target).lines == lines, "normalizing keeps every line"
    assert normalized.replace(b"\n", b"") == data.replace(b"\r", b"").replace(b"\n", b"")
