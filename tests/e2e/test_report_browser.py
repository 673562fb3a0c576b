"""The HTML report opened in headless Chromium (Debian packages chromium and chromium-driver).

The page must draw its charts from what is in the file alone: the DOM holds every chart with
its data series, the file names no http(s) address and loads no resource, and each chart's
region of a screenshot is not blank.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from reports.render import render_run
from reports.rundir import REPORT_HTML
from reports.synthetic import write_synthetic_run
from tests.helpers.services import unavailable

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
EXPECTED_CHARTS = {
    "throughput",
    "latency",
    "node",
    "db-pool",
    "db-wait",
    "events",
    "cpu",
    "cpu-budgets",
    "memory",
}


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = write_synthetic_run(tmp_path_factory.mktemp("run") / "browser", requests=20_000, duration_s=40)
    render_run(run_dir)
    return run_dir / REPORT_HTML


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        unavailable("chromium and chromedriver are not installed (Debian: chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
        "--hide-scrollbars",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_file_names_no_external_address(report_file: Path) -> None:
    text = report_file.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text  # charts are SVG; nothing runs or loads


@pytest.mark.slow
def test_chromium_shows_every_chart_with_its_data(report_file: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(report_file.as_uri())  # type: ignore[attr-defined]
    figures = driver.find_elements(By.CSS_SELECTOR, "figure.chart")  # type: ignore[attr-defined]
    assert {figure.get_attribute("data-chart") for figure in figures} == EXPECTED_CHARTS
    resources = driver.execute_script("return performance.getEntriesByType('resource').length")  # type: ignore[attr-defined]
    assert resources == 0
    for figure in figures:
        name = figure.get_attribute("data-chart")
        lines = figure.find_elements(By.CSS_SELECTOR, "svg polyline.series")
        assert lines, f"chart {name} has no series"
        for line in lines:
            points = line.get_attribute("points").split()
            assert int(line.get_attribute("data-points")) == len(points) >= 2, name
        box = driver.execute_script(  # type: ignore[attr-defined]
            "const r = arguments[0].querySelector('svg').getBoundingClientRect();return [r.width, r.height];",
            figure,
        )
        assert box[0] > 300, f"chart {name} is not laid out: {box}"
        assert box[1] > 150, f"chart {name} is not laid out: {box}"
        driver.execute_script("arguments[0].scrollIntoView()", figure)  # type: ignore[attr-defined]
        svg = figure.find_element(By.CSS_SELECTOR, "svg")
        shot = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
        variance = ImageStat.Stat(shot).var[0]
        assert variance > 50, f"chart {name} looks blank (pixel variance {variance:.1f})"
        # The data, not just the axes, must be drawn: hiding the series changes enough pixels.
        driver.execute_script(  # type: ignore[attr-defined]
            "arguments[0].querySelectorAll('polyline.series').forEach(p => p.style.visibility = 'hidden')",
            svg,
        )
        bare = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
        changed = sum(
            ImageChops.difference(shot, bare).point(lambda v: 255 if v > 40 else 0).histogram()[255:]
        )
        assert changed / (shot.width * shot.height) > 0.002, f"chart {name}: its series draw almost nothing"


@pytest.mark.slow
def test_the_verdicts_open_the_page(report_file: Path, browser: object) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(report_file.as_uri())  # type: ignore[attr-defined]
    texts = [
        driver.find_element(By.ID, key).text for key in ("slo-verdict", "validity-verdict", "first-saturated")
    ]  # type: ignore[attr-defined]
    assert texts[0].startswith("SLO: ")
    assert texts[1].startswith("Validity: ")
    assert texts[2].startswith("First saturated tier: ")
