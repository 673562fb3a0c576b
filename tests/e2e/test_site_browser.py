"""`testbed site`'s page opened in headless Chromium: the history and a trend chart, from the file alone."""

from __future__ import annotations

import dataclasses
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from reports.manifest import read_manifest, write_manifest
from reports.render import render_run
from reports.synthetic import write_synthetic_run
from tests.e2e.test_report_browser import browser  # noqa: F401 - the Chromium fixture, shared

REPOSITORY = Path(__file__).resolve().parents[2]
RUNS = 3


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three runs of one scenario and profile a day apart, a comparison of two, and the page."""
    results = tmp_path_factory.mktemp("results")
    now = time.time()
    for number in range(RUNS):
        run_dir = write_synthetic_run(
            results / f"run-{number}", requests=6000, duration_s=20, seed=number + 1
        )
        manifest = read_manifest(run_dir)
        started = now - (RUNS - number) * 86_400
        write_manifest(run_dir, dataclasses.replace(manifest, started_at_s=started, ended_at_s=started + 20))
        render_run(run_dir)
    command = [sys.executable, "-m", "testbed.cli"]
    compared = subprocess.run(
        [*command, "compare", "run-0", "run-2", "--results", str(results)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert compared.returncode in (0, 1), compared.stderr
    written = subprocess.run(
        [*command, "site", "--results", str(results)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    )
    assert written.stdout.strip() == f"site: {results / 'index.html'}"
    return results / "index.html"


def test_the_page_names_no_external_address(site: Path) -> None:
    text = site.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text


@pytest.mark.slow
def test_chromium_shows_the_history_and_a_trend_chart(site: Path, browser: object) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(site.as_uri())  # type: ignore[attr-defined]
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0  # type: ignore[attr-defined]
    rows = driver.find_elements(By.CSS_SELECTOR, "#history-table tbody tr")  # type: ignore[attr-defined]
    kinds = [row.find_elements(By.TAG_NAME, "td")[1].text for row in rows]
    assert kinds.count("run") == RUNS
    assert kinds.count("comparison") == 1
    links = {
        link.get_attribute("href").rsplit("/", 2)[-2]
        for link in driver.find_elements(By.CSS_SELECTOR, "#history-table a")
    }  # type: ignore[attr-defined]
    assert {f"run-{number}" for number in range(RUNS)} <= links
    figure = driver.find_element(By.CSS_SELECTOR, 'figure.chart[data-chart="trend-1-p90_ms"]')  # type: ignore[attr-defined]
    lines = figure.find_elements(By.CSS_SELECTOR, "svg polyline.series")
    assert len(lines) == 10  # one per route
    for line in lines:
        assert int(line.get_attribute("data-points")) == len(line.get_attribute("points").split()) == RUNS
    driver.execute_script("arguments[0].scrollIntoView()", figure)  # type: ignore[attr-defined]
    svg = figure.find_element(By.CSS_SELECTOR, "svg")
    shot = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
    driver.execute_script(  # type: ignore[attr-defined]
        "arguments[0].querySelectorAll('polyline.series').forEach(p => p.style.visibility = 'hidden')", svg
    )
    bare = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
    changed = sum(ImageChops.difference(shot, bare).point(lambda v: 255 if v > 40 else 0).histogram()[255:])
    assert changed / (shot.width * shot.height) > 0.002, "the trend's lines draw almost nothing"
