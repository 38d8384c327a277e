"""How the project runs dbt: one saved parse per warehouse, each batch's own vars and artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from batch_processor import dbt_runner
from batch_processor.config import STAGING_DIR_ENV
from batch_processor.db import WAREHOUSE_CATALOG
from batch_processor.dbt_runner import run_dbt, target_dir
from batch_processor.paths import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _log(folder: Path) -> str:
    return (folder / "logs" / "dbt.log").read_text(encoding="utf-8")


def test_later_batches_reuse_the_parse_and_render_their_own_vars(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run parses the project; the next one in the same process does not parse at
    all, nor does one in a new process (it loads the manifest the parse saved), and after the
    project changed a new process parses incrementally from the saved parse, although every
    run has its own warehouse, --vars, memory limit and staging folder (a file named after
    one of the project's schemas among them); each run's SQL shows its own values. Each
    run's artifacts land in its own folder and a later run never overwrites them."""
    monkeypatch.setattr(dbt_runner, "_PARSED", {})  # as in a new process
    monkeypatch.setattr(dbt_runner, "parse_dir", lambda: tmp_path / "parse")
    monkeypatch.setenv("BATCH_PROCESSOR_DUCKDB_PATH", str(tmp_path / "elsewhere.duckdb"))
    state = dbt_runner.project_state()
    runs = {}
    for number, name in enumerate(("first", "second", "third", "fourth")):
        if name in {"third", "fourth"}:
            monkeypatch.setattr(dbt_runner, "_PARSED", {})
        if name == "fourth":  # as if a model had been edited
            monkeypatch.setattr(dbt_runner, "project_state", lambda: "e" * 64)
        runs[name] = run_dbt(
            ["compile", "--select", "papers"],
            warehouse=tmp_path / ("crm.duckdb" if name == "second" else f"{name}.duckdb"),
            target_path=tmp_path / name,
            dbt_vars={"papers_trace_id": f"trace-of-the-{name}-batch"},
            dbt_env={STAGING_DIR_ENV: str(tmp_path / f"staging-{name}")},
            memory_limit_mb=500 + number,
        )
        assert runs[name].success, runs[name].error
    assert "Unable to do partial parsing because saved manifest not found" in _log(
        tmp_path / "first"
    )
    assert "parsing" not in _log(tmp_path / "second").lower()
    assert "parsing" not in _log(tmp_path / "third").lower()
    # the fourth parsed (its state's manifest was saved, below), incrementally
    assert "Unable to do partial parsing" not in _log(tmp_path / "fourth")
    for name, run in runs.items():
        (papers,) = [n for n in run.nodes if n.unique_id == "model.batch_processor.papers"]
        assert f"'trace-of-the-{name}-batch' as trace_id" in (papers.compiled_code or "")
        results = json.loads((tmp_path / name / "run_results.json").read_text())
        assert results["metadata"]["invocation_id"] == run.invocation_id
        assert (tmp_path / name / "manifest.json").exists()
    assert len({run.invocation_id for run in runs.values()}) == 4
    assert (tmp_path / "parse" / "partial_parse.msgpack").exists()
    saved = sorted(p.name for p in (tmp_path / "parse").glob("manifest-*"))
    assert saved == ["manifest-eeeeeeeeeeeeeeee.json", "manifest-eeeeeeeeeeeeeeee.pickle"], (
        f"one saved manifest, of the latest state (was {state[:16]})"
    )
    assert not (target_dir(tmp_path / "first.duckdb") / "partial_parse.msgpack").exists()
    assert not (tmp_path / "elsewhere.duckdb").exists()


def test_the_profile_attaches_the_warehouse_under_the_catalog_python_uses() -> None:
    """dbt's relations and the Python side's connections name one catalog."""
    profile = yaml.safe_load((PROJECT_ROOT / "profiles.yml").read_text())
    target = profile["batch_processor"]["outputs"]["dev"]
    assert target["database"] == WAREHOUSE_CATALOG
    assert [a["alias"] for a in target["attach"]] == [WAREHOUSE_CATALOG]
    assert target["settings"]["search_path"] == f"{WAREHOUSE_CATALOG}.main"


def test_a_run_that_fails_before_writing_results_shows_none_of_the_previous_run(
    tmp_path: Path,
) -> None:
    """dbt's working folder is shared by a warehouse's runs: a run that writes no
    run_results.json (here a selector that names nothing dbt can parse) must not hand the
    previous run's results to its caller."""
    warehouse = tmp_path / "w.duckdb"
    ok = run_dbt(["compile", "--select", "papers"], warehouse=warehouse, target_path=tmp_path / "a")
    assert ok.success
    broken = run_dbt(
        ["compile", "--select", "papers", "--vars", "{not yaml"],
        warehouse=warehouse,
        target_path=tmp_path / "b",
    )
    assert not broken.success
    assert broken.invocation_id != ok.invocation_id
    assert not (tmp_path / "b" / "run_results.json").exists()


def test_a_failed_partial_parse_is_retried_from_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dbt's partial parse can fail on an edit that a full parse takes (a model renamed
    together with its unit test, on dbt 1.11): the saved parse is dropped and the project is
    parsed once more; a project that fails that too is an error that names dbt's message."""
    parse = tmp_path / "parse"
    parse.mkdir()
    monkeypatch.setattr(dbt_runner, "_PARSED", {})
    monkeypatch.setattr(dbt_runner, "parse_dir", lambda: parse)
    monkeypatch.setattr(dbt_runner, "_write_manifest_file", lambda *args: None)
    monkeypatch.setattr(dbt_runner, "_save_manifest", lambda *args: None)
    calls: list[bool] = []

    class Result:
        def __init__(self, success: bool) -> None:
            self.success = success
            self.result = "the manifest" if success else None
            self.exception = None if success else RuntimeError("Unable to find model 'x'")

    def invoke(command: list[str], **_: object) -> Result:
        saved = (parse / dbt_runner.PARTIAL_PARSE_FILE).exists()
        calls.append(saved)
        return Result(success=not saved)  # only the parse from scratch succeeds

    monkeypatch.setattr(dbt_runner, "_invoke", invoke)
    (parse / dbt_runner.PARTIAL_PARSE_FILE).write_bytes(b"a saved parse")
    assert dbt_runner._parsed_project() == "the manifest"
    assert calls == [True, False], "the partial parse, then one from scratch"

    monkeypatch.setattr(dbt_runner, "_PARSED", {})
    monkeypatch.setattr(dbt_runner, "_invoke", lambda *a, **k: Result(success=False))
    with pytest.raises(dbt_runner.RunFailedError, match="Unable to find model"):
        dbt_runner._parsed_project()
