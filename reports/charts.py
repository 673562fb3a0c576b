"""Line charts as inline SVG, so a report is one file that needs nothing else to show them.

Every chart is a `<figure class="chart" data-chart="ID">` holding an `<svg>` with one
`<polyline class="series" data-series="NAME" data-points="N">` per series; the browser test
looks for exactly these.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f")
MAX_POINTS = 600
WIDTH, HEIGHT = 760, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 12, 36


@dataclass(frozen=True)
class Line:
    """One series of a chart."""

    name: str
    x: np.ndarray
    y: np.ndarray


def thin(x: np.ndarray, y: np.ndarray, points: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Return at most about `points` points: the mean of equal runs of consecutive points."""
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) <= points:
        return x, y
    size = math.ceil(len(x) / points)
    usable = len(x) // size * size
    x_mean = x[:usable].reshape(-1, size).mean(axis=1)
    y_mean = y[:usable].reshape(-1, size).mean(axis=1)
    return x_mean, y_mean


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - step * 1e-9:
        ticks.append(start + len(ticks) * step)
    return ticks if len(ticks) > 1 else [start, start + step]


def _label(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:.4g}"


def line_chart(
    chart_id: str,
    title: str,
    lines: Sequence[Line],
    *,
    x_label: str = "seconds since start",
    y_label: str = "",
    limits: Mapping[str, float] | None = None,
    markers: bool | Collection[str] = False,
) -> str:
    """Return a figure with an SVG line chart (a note instead when no series has data).

    `markers`: a dot on every point, for charts of a few measured points (a search's steps); a
    collection of series names: only on those (a sweep's measured cells, not its fitted curve).
    """
    thinned = [(line.name, *thin(np.asarray(line.x, float), np.asarray(line.y, float))) for line in lines]
    thinned = [(name, x, y) for name, x, y in thinned if len(x)]
    head = f'<figure class="chart" data-chart="{escape(chart_id)}" id="chart-{escape(chart_id)}">'
    caption = f"<figcaption>{escape(title)}</figcaption>"
    if not thinned:
        return f'{head}{caption}<p class="no-data">no data in this run</p></figure>'
    limits = dict(limits or {})
    x_all = np.concatenate([x for _, x, _ in thinned])
    y_all = np.concatenate([y for _, _, y in thinned])
    x_low, x_high = float(x_all.min()), float(x_all.max())
    y_high = max(float(y_all.max()), *limits.values()) if limits else float(y_all.max())
    y_ticks = _ticks(0.0, y_high if y_high > 0 else 1.0)
    x_ticks = _ticks(x_low, x_high if x_high > x_low else x_low + 1)
    y_top = y_ticks[-1]
    x_span = (x_ticks[-1] - x_ticks[0]) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(value: float) -> float:
        return LEFT + (value - x_ticks[0]) / x_span * plot_w

    def sy(value: float) -> float:
        return TOP + plot_h - value / y_top * plot_h

    parts = [
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f'<rect class="plot" x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" '
        'fill="#fff" stroke="#ccc"/>',
    ]
    for tick in y_ticks:
        y = sy(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_label(tick)}</text>')
    for tick in x_ticks:
        x = sx(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">{_label(tick)}</text>'
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{HEIGHT - 4}" text-anchor="middle">{escape(x_label)}</text>'
    )
    parts.append(
        f'<text x="12" y="{TOP + plot_h / 2:.0f}" text-anchor="middle" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2:.0f})">{escape(y_label)}</text>'
    )
    for name, value in limits.items():
        y = sy(value)
        parts.append(
            f'<line class="limit" data-limit="{escape(name)}" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="#888" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" '
            f'fill="#666">{escape(name)}</text>'
        )
    legend = []
    for index, (name, xs, ys) in enumerate(thinned):
        colour = COLOURS[index % len(COLOURS)]
        points = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in zip(xs, ys, strict=True))
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" data-points="{len(xs)}" '
            f'fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
        )
        if markers is True or (not isinstance(markers, bool) and name in markers):
            parts += [
                f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="3" fill="{colour}"/>'
                for a, b in zip(xs, ys, strict=True)
            ]
        legend.append(f'<span class="key"><i style="background:{colour}"></i>{escape(name)}</span>')
    parts.append("</svg>")
    return f'{head}{caption}{"".join(parts)}<div class="legend">{"".join(legend)}</div></figure>'
