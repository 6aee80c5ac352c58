"""report.html opened in a real headless Chromium (tests/browser.py): renders, images load, no errors."""

import json
import re

from matplotlib.image import imread

from kseq.reporting import html_report
from tests.browser import open_page

CONTROL = """<!DOCTYPE html><html><head><title>control</title></head><body>
<img alt="missing" src="missing.png"><script>console.error("boom");</script></body></html>"""


def test_the_browser_check_sees_console_errors_and_broken_images(tmp_path):
    page = tmp_path / "control.html"
    page.write_text(CONTROL)
    seen = open_page(page, tmp_path / "control.png")
    assert any("boom" in e for e in seen["errors"])
    assert any("ERR_FILE_NOT_FOUND" in e for e in seen["errors"])
    assert seen["images"] == [{"complete": True, "width": 0, "alt": "missing"}]


def test_report_of_a_real_run_renders_in_chromium(tiny_run, tmp_path):
    page = tiny_run.directory / "report.html"
    text = page.read_text()
    metrics = json.loads((tiny_run.directory / "metrics.json").read_text())
    # Self-contained: nothing fetched from anywhere, no script.
    assert not re.search(r"""(src|href)=["'](?!data:)""", text) and "<script" not in text
    assert f"{metrics['macro_f1']:.4f}" in text and f"{metrics['decisions']['test']['macro_f1']:.4f}" in text
    assert f"{metrics['calibration']['test_ece_after']:.4f}" in text
    assert html_report.render(tiny_run.directory) == text  # rebuilt from the folder alone

    seen = open_page(page, tmp_path / "report.png")
    assert seen["errors"] == []
    plots = sorted(p.name for p in (tiny_run.directory / "plots").iterdir())
    assert len(seen["images"]) == len(plots) == 4
    assert all(image["complete"] and image["width"] > 100 for image in seen["images"])
    shot = imread(tmp_path / "report.png")
    assert shot.shape[0] > 2000 and shot.shape[1] > 1000  # the whole page: tables, four figures, config
    assert shot[..., :3].std() > 0.05  # not a blank page
