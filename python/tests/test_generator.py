import csv
import hashlib

import pytest

from batch_processor.errors import ConfigError
from batch_processor.telemetry.generator import generate_demo_data


def digest(folder):
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = generate_demo_data(tmp_path / "a", sites=2, days=1, seed=5)
    b = generate_demo_data(tmp_path / "b", sites=2, days=1, seed=5)
    c = generate_demo_data(tmp_path / "c", sites=2, days=1, seed=6)
    assert digest(a.out_dir) == digest(b.out_dir)
    assert digest(a.out_dir) != digest(c.out_dir)


def test_files_overlap_and_truth_covers_every_flag(generated):
    site_files = sorted((generated.out_dir / "CGMH-TY").glob("CGMH-TY_*.csv"))
    assert len(site_files) == 4
    first = {row["timestamp"] for row in csv.DictReader(site_files[0].open())}
    second = {row["timestamp"] for row in csv.DictReader(site_files[1].open())}
    assert len(first & second) == 30  # 30 one-minute readings delivered twice
    with generated.ground_truth.open() as handle:
        flags = {row["expected_flag"] for row in csv.DictReader(handle)}
    assert flags == {
        "FROZEN",
        "HEAT_IMBALANCE",
        "AFFINITY_VIOLATION",
        "OUTLIER",
        "INSUFFICIENT_DATA",
    }


def test_metasys_style_carries_its_quirks(generated):
    text = "".join(p.read_text() for p in (generated.out_dir / "ESB-CH1").glob("*.csv"))
    assert "??? " in text
    assert "-05:00," in text
    assert ".Trend - Present Value ()" in text  # the repeated header row


def test_too_many_sites_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match=r"--sites must be between 1 and \d+"):
        generate_demo_data(tmp_path, sites=9, days=1, seed=1)
