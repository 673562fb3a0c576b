"""The capacity report on hand-built steps, and the page builder every report is made of."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from reports import page
from reports.capacity import (
    BRACKETED,
    CAPACITY_HTML,
    CAPACITY_MD,
    SEARCH_JSON,
    Conclusion,
    SearchRecord,
    read_search,
    render_capacity,
    write_search,
    write_steps,
)
from reports.manifest import LandscapeRecord, ManifestError, ScenarioRecord, SloSpec
from reports.render_cli import report_command
from reports.verdicts import BAD, GENERATOR_LIMITED, GOOD
from testbed.run.capacity import SearchPlan, StepOutcome, conclude

PLAN = SearchPlan(start_multiplier=2.0, resolution=0.1, max_steps=5)


def row(step: int, multiplier: float, outcome: str, **overrides: Any) -> dict[str, Any]:
    offered = 20.0 * multiplier
    base: dict[str, Any] = {
        "step": step,
        "multiplier": multiplier,
        "run_dir": f"step-{step:02d}",
        "offered_iterations_per_s": offered,
        "offered_requests_per_s": offered,
        "achieved_requests_per_s": offered * (0.99 if outcome == GOOD else 0.9),
        "requests": int(offered * 5),
        "errors": 0,
        "p50_ms": 3.0 * multiplier,
        "p90_ms": 8.0 * multiplier,
        "p99_ms": 20.0 * multiplier,
        "slo_passed": outcome == GOOD,
        "valid": outcome == GOOD,
        "outcome": outcome,
        "reason": "every SLO met on a valid run"
        if outcome == GOOD
        else "SLO failed: GET /a p90_ms 80.0 (limit 50)",
        "first_saturated_tier": "" if outcome == GOOD else "node",
        "saturation_evidence": ""
        if outcome == GOOD
        else "process CPU (psutil): node1 CPU p95 0.98 of 1 cores",
        "slo_missed": "" if outcome == GOOD else "GET /a p90_ms 80.0 (limit 50)",
        "problems": "",
    }
    return {**base, **overrides}


def write_search_dir(directory: Path, rows: list[dict[str, Any]], *, interrupted: bool = False) -> None:
    steps = [StepOutcome(r["step"], r["multiplier"], r["outcome"], r["reason"]) for r in rows]
    record = SearchRecord(
        search_id="search-1",
        started_at_s=1000.0,
        ended_at_s=1090.0,
        start_multiplier=PLAN.start_multiplier,
        growth=PLAN.growth,
        resolution=PLAN.resolution,
        max_steps=PLAN.max_steps,
        step_s=5.0,
        warm_up_s=2.0,
        pool="none",
        profile=LandscapeRecord(
            name="dev",
            nodes={"count": 1, "workers": 2, "threads": 4, "cpu_limit": None},
            database={"kind": "sqlite", "url": "postgresql://user:hunter2@db/x", "pool_size": 5},
        ),
        scenario=ScenarioRecord(
            name="smoke",
            source="scenarios/smoke.toml",
            slos=(SloSpec(route="/a", method="GET", percentiles_ms=((90.0, 50.0), (98.0, 100.0))),),
        ),
        conclusion=conclude(steps, PLAN, interrupted=interrupted),
        interrupted=interrupted,
    )
    write_steps(directory, rows)
    write_search(directory, record)


def test_a_bracketed_capacity_opens_the_report_with_its_tier_and_its_slo(tmp_path: Path) -> None:
    rows = [row(1, 2.0, GOOD), row(2, 4.0, BAD), row(3, 3.0, GOOD), row(4, 3.5, BAD), row(5, 3.25, GOOD)]
    write_search_dir(tmp_path, rows)
    report = render_capacity(tmp_path)

    assert report.conclusion.status == BRACKETED
    summary = (tmp_path / CAPACITY_MD).read_text(encoding="utf-8").splitlines()
    assert summary[0].startswith("Capacity: 64.3 requests/s at scenario multiplier 3.25 (smoke on dev): ")
    assert "step 5 (multiplier 3.25) held and step 4 (multiplier 3.5) did not: 7.7% apart" in summary[0]
    assert summary[1] == (
        "Limiting tier: node at step 4 (multiplier 3.5): process CPU (psutil): node1 CPU p95 0.98 of 1 "
        "cores  "
    )
    assert summary[2] == "Bounded by: the SLO at step 4: GET /a p90_ms 80.0 (limit 50)  "
    html = (tmp_path / CAPACITY_HTML).read_text(encoding="utf-8")
    assert 'data-chart="capacity-latency"' in html
    assert 'data-chart="capacity-throughput"' in html
    for series in ("p50", "p90", "p99", "achieved", "offered"):
        assert f'data-series="{series}" data-points="5"' in html
    assert 'data-limit="50 ms"' in html  # the scenario's SLO limits
    assert "http://" not in html
    assert "https://" not in html
    assert "hunter2" not in html + (tmp_path / SEARCH_JSON).read_text(encoding="utf-8")
    # The claim states its uncertainty and the landscape's every option.
    assert "Uncertainty: the capacity lies between multiplier 3.25" in html
    assert "nodes.workers" in html


def test_a_search_without_a_capacity_says_why(tmp_path: Path) -> None:
    limited = row(2, 4.0, GENERATOR_LIMITED, reason="the load generator could not drive it: x was CPU-bound")
    write_search_dir(tmp_path, [row(1, 2.0, GOOD), limited])
    report = render_capacity(tmp_path)

    capacity, tier, bound = report.headline()
    assert capacity.startswith("Capacity: none (smoke on dev): step 2 (multiplier 4): the load generator")
    assert tier == "Limiting tier: not named: no step showed what the system holds"
    assert bound == "Bounded by: nothing measured"
    assert math.isnan(report.capacity_requests_per_s)


def test_a_lower_bound_says_no_step_was_bad(tmp_path: Path) -> None:
    write_search_dir(tmp_path, [row(1, 2.0, GOOD), row(2, 4.0, GOOD)], interrupted=True)
    capacity, tier, bound = render_capacity(tmp_path).headline()

    assert capacity.startswith("Capacity: at least 79.2 requests/s at scenario multiplier 4 ")
    assert "(interrupted)" in capacity
    assert tier == "Limiting tier: not reached: no step was bad"
    assert bound.startswith("Bounded by: nothing yet")


def test_testbed_report_re_renders_a_search_and_refuses_another_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_search_dir(tmp_path, [row(1, 2.0, GOOD), row(2, 4.0, BAD), row(3, 3.0, GOOD)])
    assert report_command(tmp_path) == 0  # bracketed
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (tmp_path / CAPACITY_MD).read_text(encoding="utf-8").splitlines()[0].rstrip()
    data = json.loads((tmp_path / SEARCH_JSON).read_text(encoding="utf-8"))
    data["format_version"] = 99
    (tmp_path / SEARCH_JSON).write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ManifestError, match="format_version 99"):
        read_search(tmp_path)
    assert report_command(tmp_path) == 2


def test_the_search_record_reads_back_as_written(tmp_path: Path) -> None:
    write_search_dir(tmp_path, [row(1, 2.0, GOOD)])
    record = read_search(tmp_path)
    assert record.conclusion == Conclusion(
        "lower bound",
        record.conclusion.reason,
        capacity_multiplier=2.0,
        good_step=1,
    )
    assert record.scenario.slos[0].percentiles_ms == ((90.0, 50.0), (98.0, 100.0))
    assert record.profile.database["url"] == "postgresql://user:***@db/x"


# The page builder


def test_a_page_opens_with_its_headline_in_both_forms_and_keeps_html_only_blocks_out_of_markdown() -> None:
    built = page.Page(
        title="T",
        headlines=(
            page.Headline("First: yes", page.PASS, "first"),
            page.Headline("Second", page.FAIL, "second"),
        ),
        intro="Intro.",
        sections=(
            page.Section("Charts only", (page.Charts(['<figure class="chart">x</figure>']),)),
            page.Section(
                "Table",
                (
                    page.Table(("a", "b", "c"), [["1", "x|y", "3"]], groups=(("", 1), ("g", 2))),
                    page.Table(("a",), [], empty="Nothing here."),
                    page.Table(("a",), []),
                ),
            ),
        ),
        appendix=(page.Details("More", page.Table(("k", "v"), [["key", "value"]])),),
    )
    markdown = page.render_markdown(built).splitlines()
    assert markdown[:5] == ["First: yes  ", "Second  ", "", "# T", ""]
    assert "## Charts only" not in markdown
    assert "| a | g b | g c |" in markdown
    assert "| 1 | x\\|y | 3 |" in markdown
    assert "Nothing here." in markdown
    assert "More" not in "\n".join(markdown)
    html = page.render_html(built)
    assert '<p class="pass" id="first">First: yes</p>' in html
    assert '<th colspan="2">g</th>' in html
    assert "<p>Nothing here.</p>" in html
    assert "<details><summary>More</summary>" in html
    assert html.index("<h1>T</h1>") < html.index('id="first"') < html.index("Charts only")


def test_cells_read_as_people_read_them() -> None:
    assert page.number(1234567) == "1,234,567"
    assert page.number(3.14159, 2) == "3.14"
    assert page.number(float("nan")) == "-"
    assert page.number(None) == "-"
    assert page.number(True) == "yes"
    assert page.flat_rows({"a": {"b": 1}, "c": [{"d": 2}]}) == [["a.b", "1"], ["c[0].d", "2"]]
