from pathlib import Path

import pytest

from batch_processor.telemetry.probe import ProbeRejection, probe_file, unique_names


def write(tmp_path: Path, name: str, content: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def probe(path: Path, delimiter: str = ",", ts: str = "timestamp"):
    return probe_file(path, delimiter=delimiter, timestamp_column=ts)


def test_good_file_finds_header_and_timestamp(tmp_path):
    path = write(tmp_path, "a.csv", b"\n\nx,timestamp,y\n1,2024-01-01 00:00:00,3\n")
    result = probe(path)
    assert result.header_line == 3
    assert result.column_names == ("x", "timestamp", "y")
    assert result.timestamp_index == 1


def test_bom_is_ignored(tmp_path):
    path = write(tmp_path, "a.csv", b"\xef\xbb\xbftimestamp,v\n2024-01-01,1\n")
    assert probe(path).column_names == ("timestamp", "v")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"timestamp,v\n\x00\x01\x02", "NUL byte at offset 12"),
        (b"timestamp,v\n2024,\xff\xfe\n", "not UTF-8: invalid byte 0xff on line 2"),
        (b"\n\n  \n", "no header line"),
        (b"timestamp,v\n", "header only"),
        (b"time,v\n1,2\n", "no timestamp column 'timestamp'"),
        (b"timestamp\n1\n", "no value columns"),
    ],
)
def test_rejections_say_what_is_wrong(tmp_path, content, reason):
    path = write(tmp_path, "bad.csv", content)
    with pytest.raises(ProbeRejection, match=reason):
        probe(path)


def test_wrong_delimiter_is_named(tmp_path):
    path = write(tmp_path, "semi.csv", b"timestamp;v;w\n2024-01-01;1;2\n")
    with pytest.raises(ProbeRejection, match="splits on ';' instead: wrong delimiter"):
        probe(path)


def test_empty_timestamp_column_means_first_column(tmp_path):
    path = write(tmp_path, "a.csv", b"when,v\n1,2\n")
    assert probe(path, ts="").timestamp_index == 0


def test_unique_names_follow_pandas():
    assert unique_names(["a", "a", "b", "a", " b "]) == ("a", "a.1", "b", "a.2", "b.1")
    # the real Metasys export carries both "x" and "x.1" already
    assert unique_names(["x", "x.1", "x"]) == ("x", "x.1", "x.2")
