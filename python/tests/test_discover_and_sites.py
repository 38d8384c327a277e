from pathlib import PurePosixPath

from batch_processor.paths import TELEMETRY_SITES_SEED
from batch_processor.telemetry.discover import discover_files
from batch_processor.telemetry.sites import SiteRegistry


def test_discovery_skips_hidden_and_underscore_names_and_sorts(tmp_path):
    for name in [
        "b/2.csv",
        "a/1.csv",
        "_meta/x.csv",
        ".staging/y.csv",
        "a/_SUCCESS.csv",
        "a/n.txt",
    ]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = [str(rel) for _, rel in discover_files(tmp_path, "*.csv")]
    assert found == ["a/1.csv", "b/2.csv"]


def test_discovery_does_not_follow_folder_links_out_of_the_input(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x")
    batch = tmp_path / "batch"
    batch.mkdir()
    (batch / "link").symlink_to(outside, target_is_directory=True)
    assert discover_files(batch, "*.csv") == []


def test_site_from_folder_then_file_name_pattern():
    registry = SiteRegistry.from_seed(TELEMETRY_SITES_SEED)
    assert registry.resolve(PurePosixPath("CGMH-TY/2024/a.csv")).site_id == "CGMH-TY"
    assert registry.resolve(PurePosixPath("drop/ESB Chiller 1.csv")).site_id == "ESB-CH1"
    assert registry.resolve(PurePosixPath("nobody/file.csv")) is None
    assert registry.resolve(PurePosixPath("../CGMH-TY.csv")).site_id == "CGMH-TY"
