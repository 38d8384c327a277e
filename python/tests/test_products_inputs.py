"""Products export reader, redeliveries, a watermark that only moves forward, late rows,
value checks and the change log's values: each behaviour on files with known faults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from batch_processor.products.sync import sync_products

CLI = str(Path(sys.executable).parent / "batch-processor")
STAGING = "products_raw.products_staging"
WATERMARK = "select last_src_updated_at, last_id from products.etl_watermark"
HEADER = "id,brand_code,sku,name,price,currency,attributes,src_updated_at\n"


def sync(folder: Path, tmp: Path, **kwargs):
    result = sync_products(folder, tmp / "w.duckdb", tmp / "out", **kwargs)
    assert result.error is None, result.error
    return result


def query(tmp: Path, sql: str, params: list[object] | None = None) -> list[tuple]:
    con = duckdb.connect(str(tmp / "w.duckdb"), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def logged_changes(tmp: Path, sku: str, change_type: str) -> list[tuple]:
    """(field, path, old_value, new_value) of the change log's one entry for this sku and
    change type."""
    (changes,) = query(
        tmp,
        "select changes from products.product_change_log where sku = ? and change_type = ?",
        [sku, change_type],
    )[0]
    return [(c["field"], c["path"], c["old_value"], c["new_value"]) for c in changes]


def rejected(result, name: str) -> dict[int, str]:
    """line → reason of every row of file ``name`` the sync rejected or could not batch."""
    rows = [r for b in result.batches for r in b.rejected_rows] + result.rows_without_cursor_detail
    return {r["line"]: r["reason"] for r in rows if Path(r["file"]).name == name}


def test_a_messy_csv_keeps_every_good_row_and_rejects_each_bad_line_with_its_reason(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    lines = [
        HEADER,
        '1,ab,X1,"Red\nshoe, size 42",12.50,usd,"{""color"": ""red""}",2026-01-01T00:00:00Z\n',
        "2,AB,X2,too few fields\n",  # line 3: the quoted break stays in record 2
        "3,AB,X3,too many,1,USD,{},2026-01-01T00:00:03Z,surplus\n",
        '4,AB,X4,"broken "quote",1,USD,{},2026-01-01T00:00:04Z\n',
        "5,AB,X5,euro without price,,EURO,{},2026-01-01T00:00:05Z\n",
        "6,AB,X6,rounded,1.23456,USD,{},2026-01-01T00:00:06Z\n",
        "7,AB,X7,too big,123456789012345678,USD,{},2026-01-01T00:00:07Z\n",
        '8,AB,X8,repeated key,1,USD,"{""a"": 1, ""b"": {""c"": 1, ""c"": 2}}",'
        "2026-01-01T00:00:08Z\n",
        "9,AB,X9,price without currency,3,,{},2026-01-01T00:00:09Z\n",
        "10,AB,X10,trailing zeros are exact,2.500000,EUR,{},2026-01-01T00:00:10Z\n",
        '11,AB,X11,"the last one, fine",1,USD,{},2026-01-01T00:00:11Z\n',
    ]
    (folder / "day1.csv").write_text("".join(lines), encoding="utf-8")
    (folder / "day1.jsonl").write_text(
        '{"id": 20, "brand_code": "JS", "sku": "J1", "price": 5, "currency": "EUR", '
        '"attributes": {"k": [1, 2]}, "src_updated_at": "2026-01-02T00:00:00Z"}\n'
        "\n"
        "not json at all\n"
        "[1, 2, 3]\n"
        '{"id": 21, "brand_code": "JS", "sku": "J2", "attributes": "{\\"k\\": 1}", '
        '"src_updated_at": "2026-01-02T00:00:01Z"}\n',
        encoding="utf-8",
    )
    result = sync(folder, tmp_path)

    files = {Path(f.path).name: f for f in result.files}
    assert files["day1.csv"].status == "partial" and files["day1.csv"].rejected_lines == 3
    assert files["day1.jsonl"].status == "partial" and files["day1.jsonl"].rejected_lines == 2
    assert files["day1.csv"].rows == 11 and files["day1.jsonl"].rows == 4  # nothing dropped

    stored = dict(query(tmp_path, "select sku, name from products.products"))
    assert stored == {
        "X1": "Red shoe, size 42",  # the quoted line break is data (whitespace collapsed)
        "X10": "trailing zeros are exact",
        "X11": "the last one, fine",
        "J1": None,
        "J2": None,
    }
    csv_reasons = rejected(result, "day1.csv")
    assert sorted(csv_reasons) == list(range(3, 11))
    assert "Expected Number of Columns: 8 Found: 4" in csv_reasons[3]
    assert "Expected Number of Columns: 8 Found: 9" in csv_reasons[4]
    assert "unterminated quote" in csv_reasons[5]
    assert csv_reasons[6] == "currency is not a 3-letter code: EURO"
    assert csv_reasons[7] == "price has more than 4 decimal places (it would be rounded): 1.23456"
    assert csv_reasons[8] == "price is out of range for decimal(18,4): 123456789012345678"
    assert csv_reasons[9] == "attributes holds a key more than once: $.b.c"
    assert csv_reasons[10] == "price has no currency"
    # the good rows after the bad ones keep their own line numbers
    lines_of = dict(
        query(tmp_path, f"select id::int, source_line from {STAGING} where id is not null")
    )
    assert lines_of[1] == 2 and lines_of[10] == 11 and lines_of[11] == 12
    assert lines_of[20] == 1 and lines_of[21] == 5
    json_reasons = rejected(result, "day1.jsonl")
    assert json_reasons[3] == "the line could not be read: line is not valid JSON: not json at all"
    assert json_reasons[4] == "the line could not be read: line is a JSON array, not an object"
    assert query(tmp_path, "select attributes::varchar from products.products where sku = 'J2'")[
        0
    ] == ('{"k":1}',)


def _write(folder: Path, name: str, rows: list[tuple]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    body = "".join(
        f'{i},AB,S{sku},Name {sku},{price},USD,"{attrs}",{at}\n'
        for i, sku, price, attrs, at in rows
    )
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_redeliveries_late_rows_and_a_watermark_that_never_moves_back(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    day1 = [(i, i, 10 + i, "{}", f"2026-01-01T00:00:{i:02d}Z") for i in range(1, 7)]
    day2 = [(i, i, 20 + i, "{}", f"2026-01-02T00:00:{i:02d}Z") for i in range(1, 7)]
    _write(folder, "day1.csv", day1)
    _write(folder, "day1_redelivered.csv", day1)  # the same export, sent again
    first = sync(folder, tmp_path, limit=4)
    assert first.total("rows") == 6 and first.total("redelivered") == 6
    assert first.total("inserted") == 6 and first.total("rejected") == 0
    assert not first.has_rejects  # a redelivery is a counted no-op, not a failure
    again = sync(folder, tmp_path, limit=4)  # later syncs do not trip over it either
    assert again.batches == [] and again.unsynced_rows == 0

    # a day-2 export moves the watermark; a --no-resume replay of day 1 must not move it back
    _write(folder, "day2.csv", day2)
    sync(folder, tmp_path, limit=4)
    mark = query(tmp_path, WATERMARK)
    replay_folder = tmp_path / "replay"
    _write(replay_folder, "day1.csv", day1)
    replay = sync(replay_folder, tmp_path, limit=4, resume=False)
    assert replay.total("rows") == 6 and replay.total("stale") == 6  # walked in full
    assert query(tmp_path, WATERMARK) == mark

    # a row that arrives late (timestamp before the watermark) is reported, not skipped silently
    _write(folder, "late.csv", [(99, 99, 5, '{""size"": {""eu"": 42}}', "2026-01-01T12:00:00Z")])
    late = sync(folder, tmp_path, limit=4)
    assert late.batches == [] and late.unsynced_rows == 1 and late.has_rejects
    assert late.unsynced_detail[0]["id"] == 99
    report = json.loads(Path(str(late.report_path)).read_text())
    assert report["unsynced_rows"] == 1 and report["status"] == "completed_with_rejects"
    # the CLI's --since takes it in; then nothing is behind the watermark any more
    cli = subprocess.run(
        [CLI, "products", "sync", "--input", str(folder),
         "--warehouse", str(tmp_path / "w.duckdb"), "--output", str(tmp_path / "out"),
         "--since", "2026-01-01T12:00:00Z"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert cli.returncode == 0, cli.stdout + cli.stderr
    assert "1 inserted" in cli.stdout, cli.stdout
    assert query(tmp_path, "select count(*) from products.products") == [(7,)]
    assert query(tmp_path, WATERMARK) == mark
    assert sync(folder, tmp_path).unsynced_rows == 0
    assert logged_changes(tmp_path, "S99", "insert") == [
        ("brand_code", "brand_code", None, '"AB"'),
        ("currency", "currency", None, '"USD"'),
        ("name", "name", None, '"Name 99"'),
        ("price", "price", None, "5.0000"),
        ("sku", "sku", None, '"S99"'),
        ("attributes", "$", None, '{"size":{"eu":42}}'),
    ]

    # a changed row: the change log has each field and attribute path with old and new values
    _write(folder, "day3.csv", [(99, 99, 6, '{""size"": {""eu"": 43}, ""fit"": ""slim""}',
                                 "2026-01-03T00:00:00Z")])  # fmt: skip
    sync(folder, tmp_path)
    assert logged_changes(tmp_path, "S99", "update") == [
        ("price", "price", "5.0000", "6.0000"),
        ("attributes", "$.fit", None, '"slim"'),
        ("attributes", "$.size.eu", "42", "43"),
    ]

    # a cursor delivered twice with different contents is rejected with both places
    _write(folder, "conflict_a.csv", [(50, 50, 1, "{}", "2026-01-04T00:00:00Z")])
    _write(folder, "conflict_b.csv", [(50, 50, 2, "{}", "2026-01-04T00:00:00Z")])
    conflict = sync(folder, tmp_path)
    (reason,) = [r["reason"] for b in conflict.batches for r in b.rejected_rows]
    assert "is delivered 2 times with 2 different contents" in reason
    assert "conflict_a.csv:2" in reason and "conflict_b.csv:2" in reason

    # a row synced before, now delivered again with another price: a resume says so
    _write(folder, "day1_corrected.csv", [(1, 1, 99, "{}", "2026-01-01T00:00:01Z")])
    corrected = sync(folder, tmp_path)
    assert corrected.unsynced_rows == 1 and corrected.has_rejects
    assert corrected.unsynced_detail[0]["id"] == 1
    assert corrected.unsynced_detail[0]["reason"].startswith("synced before, now delivered")
    (tmp_path / "in" / "day1_corrected.csv").unlink()

    # brand_code is inside the published files as well as in their folder names
    current = json.loads((tmp_path / "out" / "manifests" / "current.json").read_text())
    for listed in current["dataset_files"]:
        path = tmp_path / "out" / "data" / listed["path"]
        assert path.parent.name == "brand_code=AB"
        assert pq.read_table(path).column("brand_code").unique().to_pylist() == ["AB"]


def test_bad_bytes_shifted_values_and_repeated_keys_are_rejected_lines_not_lost_files(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    at = "2026-01-01T00:00:00Z"
    (folder / "latin1.csv").write_bytes(
        HEADER.encode()
        + f"40,AB,F1,Caf\xe9,1,USD,{{}},{at}\n".encode("latin-1")  # not UTF-8, on line 2
        + f"41,AB,F2,good,1,USD,{{}},{at}\n".encode()
        + b"42,AB,F3,six fields,1,USD\n"
        + f"43,AB,F4,many digits,1.0000000000000000000001,USD,{{}},{at}\n".encode()
        + f"44,AB,F5,not a number,NaN,USD,{{}},{at}\n".encode()
    )
    # two copies of one cursor whose values sit in different columns (a shifted export)
    (folder / "shift_a.csv").write_text(HEADER + f"50,AB,S1,USD,,,{{}},{at}\n")
    (folder / "shift_b.csv").write_text(HEADER + f"50,AB,S1,,,USD,{{}},{at}\n")
    (folder / "lines.jsonl").write_bytes(
        b'{"id": 60, "brand_code": "AB", "sku": "J1", "src_updated_at": "' + at.encode() + b'"}\n'
        b'{"id": 61, "brand_code": "AB", "sku": "J\x1f2", "src_updated_at": "x"}\n'
        b'{"id": 62, "id": 620, "brand_code": "AB", "sku": "J3", "src_updated_at": "x"}\n'
        b'{"id": 63, "brand_code": "AB", "sku": "J4", "src_updated_at": "' + at.encode() + b'"}\n'
    )
    result = sync(folder, tmp_path)
    files = {Path(f.path).name: f for f in result.files}
    assert {name: (f.status, f.rows, f.rejected_lines) for name, f in files.items()} == {
        "latin1.csv": ("partial", 5, 2),
        "shift_a.csv": ("loaded", 1, 0),
        "shift_b.csv": ("loaded", 1, 0),
        "lines.jsonl": ("partial", 4, 2),
    }
    assert files["latin1.csv"].reason.startswith("line 2: Invalid unicode")
    csv_reasons = rejected(result, "latin1.csv")
    assert csv_reasons[4] == "the line could not be read: Expected Number of Columns: 8 Found: 6"
    assert csv_reasons[5].startswith("price has more than 4 decimal places")
    assert csv_reasons[6] == "price is not a decimal: NaN"
    json_reasons = rejected(result, "lines.jsonl")
    assert "Found: 2" in json_reasons[2]  # a raw 0x1F splits the line: rejected, not the file
    assert json_reasons[3] == "the line could not be read: line holds a key more than once: id"
    (shifted,) = rejected(result, "shift_a.csv").values()
    assert "is delivered 2 times with 2 different contents" in shifted
    stored = {sku for (sku,) in query(tmp_path, "select sku from products.products")}
    assert stored == {"F2", "J1", "J4"}


def test_a_warehouse_made_before_the_new_state_is_brought_up_to_date(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    _write(folder, "day1.csv", [(1, 1, 10, "{}", "2026-01-01T00:00:01Z")])
    sync(folder, tmp_path)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:  # what a warehouse of the previous version lacks
        con.execute("drop table products.synced_rows")
        con.execute(f"alter table {STAGING} drop column load_error")
        con.execute("alter table products.product_change_log drop column changes")
    finally:
        con.close()
    _write(folder, "day2.csv", [(2, 2, 20, "{}", "2026-01-02T00:00:01Z")])
    later = sync(folder, tmp_path)
    assert later.total("inserted") == 1
    assert query(tmp_path, "select count(*) from products.synced_rows") == [(1,)]
