"""The sweep report from a synthetic sweep directory: the recommendation first, the model, the
cells, the heat map, the links; the Markdown summary; `testbed report` on a sweep."""

from __future__ import annotations

from pathlib import Path

from reports.render_cli import report_command
from reports.sweep import SWEEP_HTML, SWEEP_MD, render_sweep
from reports.synthetic import write_synthetic_sweep


def test_the_sweep_report_opens_with_the_recommendation_and_holds_the_model_and_the_cells(
    tmp_path: Path,
) -> None:
    directory = write_synthetic_sweep(tmp_path / "sweep")
    report = render_sweep(directory)
    # 100 x 1.3 = 130 requests/s: 6 nodes (~136) is the cheapest measured cell that holds it.
    assert report.recommendation.chosen is not None
    assert report.recommendation.chosen.options["nodes.count"] == 6
    [fit] = report.fits
    assert fit.fitted, fit.refusal
    assert abs(fit.peak_value / 8.7 - 1) <= 0.2  # the true peak sqrt(0.92 / 0.012)
    html = (directory / SWEEP_HTML).read_text(encoding="utf-8")
    assert html.index('id="recommendation"') < html.index('id="sweep-curves"')
    assert "Recommended: cell-05 (nodes.count = 6)" in html
    assert 'data-chart="sweep-dimension-0"' in html
    assert 'id="sweep-heat-map"' in html
    assert 'href="cell-01/capacity.html"' in html
    assert "predicted, 95 %" in html  # 5, 7, 9 and 11 nodes were not measured
    summary = (directory / SWEEP_MD).read_text(encoding="utf-8")
    assert summary.splitlines()[0].startswith("Target: 100 requests/s with 30% headroom")
    assert "Recommended: cell-05" in summary


def test_a_sweep_that_did_not_pass_the_knee_says_so_and_draws_no_curve(tmp_path: Path) -> None:
    directory = write_synthetic_sweep(tmp_path / "sweep", counts=(1, 2, 3, 4))
    report = render_sweep(directory)
    [fit] = report.fits
    assert not fit.fitted
    html = (directory / SWEEP_HTML).read_text(encoding="utf-8")
    assert "(no model: see below)" in html
    assert 'data-series="USL fit"' not in html
    assert "No measured cell holds it" in html


def test_testbed_report_renders_a_sweep_again(tmp_path: Path, capsys: object) -> None:
    directory = write_synthetic_sweep(tmp_path / "sweep")
    (directory / SWEEP_HTML).unlink(missing_ok=True)
    assert report_command(directory) == 0
    assert (directory / SWEEP_HTML).is_file()


def test_the_sweep_appears_in_the_history_and_on_the_site(tmp_path: Path) -> None:
    from reports.history import scan
    from reports.site import render_site

    directory = write_synthetic_sweep(tmp_path / "20261205T120000Z-sweep-nodes-abcd")
    render_sweep(directory)
    history = scan(tmp_path)
    [entry] = history.of_kind("sweep")
    assert entry.report == SWEEP_HTML
    assert entry.verdicts == "8 of 8 cell(s)"
    assert entry.capacity.startswith("Recommended: cell-05 (nodes.count = 6)")
    site = render_site(history)
    assert 'id="sweep-table"' in site
    assert f'href="{directory.name}/{SWEEP_HTML}"' in site


def test_the_heat_map_figure_is_the_share_of_the_budget_the_kernel_counted(tmp_path: Path) -> None:
    from reports.sweep import budget_saturation
    from reports.synthetic import write_synthetic_run

    # The synthetic nodes spend about 99 % (stressed) or 30 % of their budget each second.
    stressed = budget_saturation(
        write_synthetic_run(tmp_path / "stressed", requests=2000, duration_s=20, stress="node")
    )
    calm = budget_saturation(write_synthetic_run(tmp_path / "calm", requests=2000, duration_s=20))
    assert set(stressed) == {"node"}
    assert 0.93 <= stressed["node"] <= 1.0
    assert 0.25 <= calm["node"] <= 0.4
    assert budget_saturation(tmp_path / "no-run") == {}


def test_a_sweep_with_a_broken_table_is_unreadable_in_the_history_not_a_traceback(tmp_path: Path) -> None:
    import pandas as pd

    from reports.history import scan
    from reports.sweep import SWEEP_TABLE

    directory = write_synthetic_sweep(tmp_path / "broken")
    pd.read_parquet(directory / SWEEP_TABLE).drop(columns=["cost"]).to_parquet(directory / SWEEP_TABLE)
    history = scan(tmp_path)
    assert history.of_kind("sweep") == []
    [line] = history.unreadable
    assert "missing column(s) cost" in line
    assert report_command(directory) == 2
