"""The telemetry quality report: written after each committed batch, self-contained (no
network), and in headless Chromium it shows a channel plot per site with every flag the
dataset carries, the gaps, the daily heat map and the ledger of every input file."""

from __future__ import annotations

import json
import re

import duckdb

from batch_processor.cli import main
from batch_processor.config import load_telemetry_config
from batch_processor.reader import read_dataset
from batch_processor.telemetry.pipeline import run_telemetry
from batch_processor.telemetry.quality_report import REPORT_NAME

from .browser import offline_page

TEXTS = "els => els.map(e => e.textContent)"  # SVG text has no innerText


def _dataset_flags(output) -> set[str]:
    con = duckdb.connect()
    read_dataset(output, connection=con).create_view("d")
    rows = con.execute("select distinct f from d, unnest(quality_flags) as u(f)").fetchall()
    return {str(r[0]) for r in rows}


def test_the_report_is_written_after_a_batch_and_renders_offline(batch_copy, tmp_path):
    output = tmp_path / "out"
    config = load_telemetry_config(
        warehouse_path=tmp_path / "w.duckdb", memory_limit_mb=512, quality_report=True
    )
    result = run_telemetry(config, batch_copy, output)
    page_path = output / "reports" / REPORT_NAME
    assert result.quality_report_path == page_path and page_path.exists()
    text = page_path.read_text()
    # self-contained: no script, style or image comes from anywhere else
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)
    flags = _dataset_flags(output)
    assert flags == {
        "FROZEN",
        "HEAT_IMBALANCE",
        "AFFINITY_VIOLATION",
        "OUTLIER",
        "INSUFFICIENT_DATA",
    }  # fmt: skip  (the generator injects all five)
    report = json.loads(result.report_path.read_text())
    files = [f["relative_path"] for f in report["ledger"]["files"]]
    sites = sorted({g["site_id"] for g in report["gaps"]})
    with offline_page(height=1200) as page:
        page.goto(page_path.as_uri())
        page.wait_for_selector("section.site .main-svg", timeout=60_000)
        assert page.requested == []
        rendered_sites = page.eval_on_selector_all(
            "section.site", "els => els.map(e => e.dataset.site)"
        )
        assert len(rendered_sites) >= len(sites) and set(sites) <= set(rendered_sites)
        for site in rendered_sites:
            section = f'section.site[data-site="{site}"]'
            plots = page.locator(f"{section} .js-plotly-plot")
            assert plots.count() == 2  # the channels and the daily heat map
            legend = set(page.eval_on_selector_all(f"{section} .legendtext", TEXTS))
            assert legend <= flags
            heat = page.locator(f"{section} .js-plotly-plot").nth(1)
            assert heat.locator(".hm, image").count() >= 1  # the heat map is drawn
        all_legend = set(page.eval_on_selector_all(".legendtext", TEXTS))
        assert all_legend == flags  # every flag of the dataset is shown
        # gaps: the sites with a gap in the batch have grey bands (shapes) drawn
        assert page.locator(".shapelayer path").count() >= len(sites)
        ledger = page.locator("table").nth(1).inner_text()
        assert all(name in ledger for name in files)
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
    assert (tmp_path / "report.png").stat().st_size > 10_000


def test_the_report_command_rewrites_it_where_asked(batch_copy, tmp_path, capsys):
    output = tmp_path / "out"
    config = load_telemetry_config(
        warehouse_path=tmp_path / "w.duckdb", memory_limit_mb=512, quality_report=False
    )
    run_telemetry(config, batch_copy, output)
    assert not (output / "reports" / REPORT_NAME).exists()  # the setting turned it off
    target = tmp_path / "page.html"
    assert main(["telemetry", "report", "--output", str(output), "--to", str(target)]) == 0
    assert target.stat().st_size > 1_000_000  # plotly's JavaScript is inlined
    assert str(target) in capsys.readouterr().out
    assert main(["telemetry", "report", "--output", str(tmp_path / "nothing")]) == 1
