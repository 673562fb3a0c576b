"""The sweep report opened in headless Chromium: the recommendation first, the capacity curve with
the fitted model and its band, the table of cells and the heat map, drawn from the file alone."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from reports.sweep import SWEEP_HTML, render_sweep
from reports.synthetic import write_synthetic_sweep
from tests.e2e.test_report_browser import browser  # noqa: F401 - the Chromium fixture, shared


@pytest.fixture(scope="module")
def sweep_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = write_synthetic_sweep(tmp_path_factory.mktemp("sweep") / "synthetic-sweep")
    render_sweep(directory)
    return directory / SWEEP_HTML


def test_the_file_names_no_external_address(sweep_file: Path) -> None:
    text = sweep_file.read_text(encoding="utf-8")
    assert "http://" not in text
    assert "https://" not in text
    assert "<script" not in text


@pytest.mark.slow
def test_chromium_shows_the_recommendation_the_curve_and_the_table(
    sweep_file: Path,
    browser: object,  # noqa: F811 - the fixture imported above
) -> None:
    from selenium.webdriver.common.by import By

    driver = browser
    driver.get(sweep_file.as_uri())  # type: ignore[attr-defined]
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0  # type: ignore[attr-defined]
    boxes = driver.find_elements(By.CSS_SELECTOR, ".verdicts p")  # type: ignore[attr-defined]
    assert boxes[0].get_attribute("id") == "target"
    assert boxes[1].get_attribute("id") == "recommendation"
    assert boxes[1].text.startswith("Recommended: cell-05 (nodes.count = 6)")
    figure = driver.find_element(By.CSS_SELECTOR, 'figure[data-chart="sweep-dimension-0"]')  # type: ignore[attr-defined]
    series = {
        line.get_attribute("data-series") for line in figure.find_elements(By.CSS_SELECTOR, "polyline.series")
    }
    assert series == {"measured", "USL fit", "95 % band, low", "95 % band, high"}
    svg = figure.find_element(By.CSS_SELECTOR, "svg")
    box = driver.execute_script(  # type: ignore[attr-defined]
        "const r = arguments[0].getBoundingClientRect();return [r.width, r.height];", svg
    )
    assert box[0] > 300
    assert box[1] > 150
    driver.execute_script("arguments[0].scrollIntoView()", figure)  # type: ignore[attr-defined]
    shot = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
    assert ImageStat.Stat(shot).var[0] > 50, "the curve's chart looks blank"
    driver.execute_script(  # type: ignore[attr-defined]
        "arguments[0].querySelectorAll('polyline.series').forEach(p => p.style.visibility = 'hidden')", svg
    )
    bare = Image.open(io.BytesIO(svg.screenshot_as_png)).convert("L")
    changed = sum(ImageChops.difference(shot, bare).point(lambda v: 255 if v > 40 else 0).histogram()[255:])
    assert changed / (shot.width * shot.height) > 0.002, "the curve and its band draw almost nothing"
    rows = driver.find_elements(By.CSS_SELECTOR, "h2#sweep-cells + table tbody tr")  # type: ignore[attr-defined]
    assert len(rows) == 8 + 4  # 8 measured cells, 4 predicted (5, 7, 9, 11 nodes)
    assert rows[0].find_elements(By.TAG_NAME, "td")[0].text == "cell-01"
    heat = driver.find_elements(By.CSS_SELECTOR, "#sweep-heat-map td.heat")  # type: ignore[attr-defined]
    assert len(heat) == 8 * 3
    links = driver.find_elements(By.CSS_SELECTOR, "#sweep-cell-links a")  # type: ignore[attr-defined]
    assert [link.text for link in links][:2] == ["cell-01", "cell-02"]
    assert links[0].get_attribute("href").endswith("/cell-01/capacity.html")
