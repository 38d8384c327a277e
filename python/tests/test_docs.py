"""dbt docs as a reader sees them: rendered in headless Chromium (offline), the landing page is
ours, the lineage graph reaches every exposure, and state a model's hooks write hangs off that
model (arrows from writer to written), never as its input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from batch_processor.paths import PROJECT_ROOT

from .browser import offline_page

DBT = str(Path(sys.executable).with_name("dbt"))
CY = "document.querySelector('.__________cytoscape_container')"  # cytoscape's own class


def _docs(tmp_path: Path) -> Path:
    target = tmp_path / "docs"
    env = {**os.environ, "BATCH_PROCESSOR_DUCKDB_PATH": str(tmp_path / "w.duckdb")}
    common = ["--project-dir", str(PROJECT_ROOT), "--profiles-dir", str(PROJECT_ROOT),
              "--target-path", str(target), "--log-path", str(tmp_path / "logs")]  # fmt: skip
    subprocess.run([DBT, "parse", *common], env=env, check=True, capture_output=True)
    subprocess.run(
        [DBT, "docs", "generate", "--static", "--no-compile", *common],
        env=env,
        check=True,
        capture_output=True,
    )
    return target


def test_docs_overview_exposures_and_lineage_direction(tmp_path):
    target = _docs(tmp_path)
    manifest = json.loads((target / "manifest.json").read_text())
    exposures = set(manifest["exposures"])
    assert {e.split(".")[-1] for e in exposures} >= {
        "telemetry_parquet_dataset", "products_parquet_snapshot", "products_sync_state",
        "papers_parquet_dataset", "papers_dynamodb_table", "crm_completion_events",
    }  # fmt: skip
    for exposure in manifest["exposures"].values():
        assert exposure["owner"]["email"] and exposure["description"]
    page_url = (target / "static_index.html").as_uri()
    with offline_page() as page:
        page.goto(page_url + "#!/overview")
        page.wait_for_selector("text=four pipelines, one dbt project", timeout=60_000)
        assert page.locator("text=Reading the lineage graph").count() == 1
        page.goto(page_url + "#!/overview?g_v=1")
        page.wait_for_function(
            f"() => {{ const c = {CY}; return c && c._cyreg && c._cyreg.cy.nodes().length > 0 }}",
            timeout=60_000,
        )
        nodes = set(page.evaluate(f"() => {CY}._cyreg.cy.nodes().map(n => n.id())"))
        edges = page.evaluate(
            f"() => {CY}._cyreg.cy.edges().map(e => [e.source().id(), e.target().id()])"
        )
        assert page.requested == []
    assert exposures <= nodes  # the graph reaches every exposure
    into = {target_id: {s for s, t in edges if t == target_id} for _, target_id in edges}
    # the products model's hooks write the change log, watermark and synced rows; the papers
    # model's post-hook the outbox: none of them is drawn as an input of its writer
    assert not {s for s in into["model.batch_processor.products"] if s.startswith("source.")}
    assert not {s for s in into["model.batch_processor.papers"] if s.startswith("source.")}
    assert "model.batch_processor.products" in into["exposure.batch_processor.products_sync_state"]
    assert (
        "model.batch_processor.fct_telemetry_readings"
        in into["exposure.batch_processor.telemetry_parquet_dataset"]
    )
    # colours per layer, owners per group
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    colours = {n["fqn"][2]: n["docs"]["node_color"] for n in models}
    assert len(set(colours.values())) == 3 and set(colours) == {
        "staging", "intermediate", "marts",
    }  # fmt: skip
    assert all(n["group"] and n["meta"]["owner"] for n in models)
    assert {g["owner"]["email"] for g in manifest["groups"].values()} == {
        m["meta"]["owner"] for m in models
    }
