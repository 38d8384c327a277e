"""What a batch leaves out of its dbt build is exactly what it means to: skipping the seeds
drops the seeds and the tests that read only seeds (a relationship from a model to a seed
stays), and a products batch after the first drops the models over the whole export and
only the tests that read nothing else. A new test with a source parent, or one that mixes
a left-out model with a batch's model, would make these sets differ."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from batch_processor import dbt_runner
from batch_processor.dbt_runner import batch_build
from batch_processor.products.sync import WHOLE_EXPORT_MODELS

pytestmark = pytest.mark.slow


def listed(command: list[str], manifest: Any, folder: Path) -> set[str]:
    """The unique ids ``dbt ls`` selects with the build's selection arguments."""
    assert command[0] == "build"
    result = dbt_runner._invoke(
        ["ls", *command[1:], "--output", "json", "--output-keys", "unique_id"],
        warehouse=None,
        target_path=folder,
        manifest=manifest,
    )
    assert result.success, result.exception
    return {json.loads(line)["unique_id"] for line in result.result}


def checks_reading_only(nodes: set[str], selected: set[str], manifest: Any) -> set[str]:
    return {
        uid
        for uid in selected
        if uid.startswith("test.") and set(manifest.nodes[uid].depends_on.nodes) <= nodes
    }


def test_the_batch_selections_leave_out_exactly_what_they_mean_to(tmp_path: Path) -> None:
    manifest = dbt_runner.parse_project()

    full = listed(batch_build("tag:telemetry"), manifest, tmp_path)
    skipped = listed(batch_build("tag:telemetry", skip_seeds=True), manifest, tmp_path)
    seeds = {uid for uid in full if uid.startswith("seed.")}
    seed_only = checks_reading_only(seeds, full, manifest)
    assert len(seeds) == 6 and len(seed_only) > 30
    assert skipped == full - seeds - seed_only
    assert any("relationships_fct_telemetry_readings_site_id" in uid for uid in skipped)

    full = listed(batch_build("tag:products"), manifest, tmp_path)
    later = listed(batch_build("tag:products", exclude=WHOLE_EXPORT_MODELS), manifest, tmp_path)
    whole = {
        uid
        for uid in full
        if uid.startswith("model.") and uid.split(".")[-1] in WHOLE_EXPORT_MODELS
    }
    assert len(whole) == len(WHOLE_EXPORT_MODELS)
    assert later == full - whole - checks_reading_only(whole, full, manifest)
