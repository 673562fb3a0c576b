"""The page every report is built from: headline boxes, sections of text, tables and charts.

A report computes its figures, then describes itself as a `Page` (pure data); `render_html`
writes it as one self-contained file (inline CSS and SVG, no external reference) and
`render_markdown` as its Markdown summary. Both open with the headline: the summary with one
line per box, so its first lines are the verdicts, the HTML page with the same boxes under its
title. Charts (`reports/charts.py`) and `Details` exist only in the HTML page; a section that
holds nothing else is left out of the summary.

The run report (`reports/render.py`) and the capacity report (`reports/capacity.py`) are both
pages; sweeps, comparisons and faults build theirs the same way. `html_table`, `markdown_table`
and `STYLE` serve a page written by other means.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PASS = "pass"  # noqa: S105 - a tone, not a password
FAIL = "fail"
INFO = "info"

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1600px}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}
.verdicts p{margin:4px 0;padding:6px 10px;border-radius:4px;font-weight:600}
.pass{background:#e6f4ea}.fail{background:#fce8e6}.info{background:#eef3fb}
table{border-collapse:collapse;margin:8px 0;font-variant-numeric:tabular-nums}
td,th{border:1px solid #ddd;padding:3px 7px;text-align:right;vertical-align:top}
td:nth-child(-n+2),th{text-align:left}
figure.chart{display:inline-block;margin:8px 16px 16px 0;vertical-align:top}
figcaption{font-weight:600;margin-bottom:4px}
svg text{font-size:11px;fill:#444}
.legend .key{margin-right:12px;font-size:12px}
.legend i{display:inline-block;width:12px;height:3px;margin-right:4px;vertical-align:middle}
details{margin-top:16px}
"""


@dataclass(frozen=True)
class Headline:
    """One verdict box: `tone` PASS (green), FAIL (red) or INFO (blue); `element_id` for tests."""

    text: str
    tone: str
    element_id: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Table:
    """A table of text cells; `groups` are (label, columns spanned) over the header."""

    header: Sequence[str]
    rows: Sequence[Sequence[str]]
    groups: Sequence[tuple[str, int]] = ()
    # Shown instead of a table without rows (nothing when empty).
    empty: str = ""


@dataclass(frozen=True)
class Charts:
    """Figures from `reports.charts` (HTML only)."""

    figures: Sequence[str]


@dataclass(frozen=True)
class Details:
    """A collapsed table (HTML only), e.g. the manifest."""

    summary: str
    table: Table


Block = Paragraph | Table | Charts | Details


@dataclass(frozen=True)
class Section:
    title: str
    blocks: Sequence[Block]
    element_id: str = ""


@dataclass(frozen=True)
class Page:
    """A report: title, headline boxes, an opening paragraph, then its sections in order."""

    title: str
    headlines: Sequence[Headline]
    intro: str
    sections: Sequence[Section]
    # Blocks after the last section (HTML only, e.g. the manifest).
    appendix: Sequence[Details] = ()


def number(value: Any, digits: int = 1) -> str:
    """Return a cell's text: `-` for missing, yes/no for booleans, thousands separators."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return f"{value:,}"
    if isinstance(value, float | np.floating):
        return f"{value:,.{digits}f}"
    return str(value)


def rows_of(frame: pd.DataFrame, columns: Sequence[str], digits: int = 1) -> list[list[str]]:
    """Return the cells of a table's columns, formatted by `number`."""
    return [[number(value, digits) for value in row] for row in frame[list(columns)].itertuples(index=False)]


def flat_rows(value: Any, prefix: str = "") -> list[list[str]]:
    """Return nested records (dataclasses, mappings, lists of mappings) as (dotted key, value) rows."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, Mapping):
        return [
            row
            for key, item in value.items()
            for row in flat_rows(item, f"{prefix}.{key}" if prefix else str(key))
        ]
    if isinstance(value, list | tuple) and value and isinstance(value[0], Mapping):
        return [row for index, item in enumerate(value) for row in flat_rows(item, f"{prefix}[{index}]")]
    return [[prefix, str(value)]]


# HTML


def render_html(page: Page) -> str:
    """Return the self-contained HTML page (inline CSS and SVG; no external reference)."""
    body = [f"<h1>{escape(page.title)}</h1>", '<section class="verdicts">']
    body += [
        f'<p class="{escape(box.tone)}" id="{escape(box.element_id)}">{escape(box.text)}</p>'
        for box in page.headlines
    ]
    body += ["</section>", f"<p>{escape(page.intro)}</p>"]
    for section in page.sections:
        element_id = f' id="{escape(section.element_id)}"' if section.element_id else ""
        body.append(f"<h2{element_id}>{escape(section.title)}</h2>")
        body += [_html_block(block) for block in section.blocks]
    body += [_html_block(block) for block in page.appendix]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(page.title)}</title><style>{STYLE}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )


def _html_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Charts):
        return "".join(block.figures)
    if isinstance(block, Details):
        return f"<details><summary>{escape(block.summary)}</summary>{_html_table(block.table)}</details>"
    return _html_table(block)


def _html_table(table: Table) -> str:
    if not table.rows:
        return f"<p>{escape(table.empty)}</p>" if table.empty else ""
    return html_table(table.header, table.rows, table.groups)


def html_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], groups: Sequence[tuple[str, int]] = ()
) -> str:
    """Return an HTML table of text cells; `groups` are (label, columns spanned) over the header."""
    head = ""
    if groups:
        head = (
            "<tr>" + "".join(f'<th colspan="{span}">{escape(name)}</th>' for name, span in groups) + "</tr>"
        )
    head += "<tr>" + "".join(f"<th>{escape(name)}</th>" for name in header) + "</tr>"
    body = "".join("<tr>" + "".join(f"<td>{escape(value)}</td>" for value in row) + "</tr>" for row in rows)
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


# Markdown


def render_markdown(page: Page) -> str:
    """Return the Markdown summary: the headline lines first, then the title and the sections."""
    lines = [*(f"{box.text}  " for box in page.headlines), "", f"# {page.title}", "", page.intro]
    for section in page.sections:
        blocks = [text for block in section.blocks if (text := _markdown_block(block))]
        if blocks:
            lines += ["", f"## {section.title}"]
            for text in blocks:
                lines += ["", *text]
    return "\n".join(lines) + "\n"


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Charts | Details):
        return []
    return _markdown_table(block)


def _markdown_table(table: Table) -> list[str]:
    if not table.rows:
        return [table.empty] if table.empty else []
    return markdown_table(table.header, table.rows, table.groups)


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], groups: Sequence[tuple[str, int]] = ()
) -> list[str]:
    """Return the lines of a Markdown table; a group's label goes before each of its columns' names
    (Markdown has one header row)."""
    names = list(header)
    if groups:
        labels = [name for name, span in groups for _ in range(span)]
        names = [f"{label} {name}".strip() for label, name in zip(labels, names, strict=False)]

    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| " + " | ".join(cell(name) for name in names) + " |", "|" + "---|" * len(names)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return lines


def write_page(page: Page, html_path: Path, markdown_path: Path) -> None:
    """Write a page as its HTML file and its Markdown summary."""
    html_path.write_text(render_html(page), encoding="utf-8")
    markdown_path.write_text(render_markdown(page), encoding="utf-8")
