"""A self-contained HTML page of a leaderboard: the same tables as the markdown, figures embedded as base64 PNG."""
from __future__ import annotations

import base64
from html import escape
from .leaderboard import (
    CLAIMS_NOTE, DIAGNOSTIC_NOTE, Leaderboard, diagnostics_table, metric_heading, metric_table, setting_facts,
    verdict_table,
)

__all__ = ["render_html"]

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.failed { color: #a00; }
td.rank1 { font-weight: bold; }
img { max-width: 100%; display: block; margin: 0.5em 0 1.5em; }
code { background: #f5f5f5; padding: 0 0.2em; }
"""


def _table(header: list[str] | None, rows: list[list[str]], css_class: str = "") -> str:
    """A table; without ``header``, the first column holds the row names."""
    head = "" if header is None else "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr></thead>"
    body = []
    for row in rows:
        cells = []
        for index, text in enumerate(row):
            classes = ["failed"] if text.startswith("failed:") else []
            if header is not None and header[index] == "Rk" and text.split(" ")[0] == "1":
                classes.append("rank1")
            attribute = f' class="{" ".join(classes)}"' if classes else ""
            tag = "th" if header is None and index == 0 else "td"
            cells.append(f"<{tag}{attribute}>{escape(text)}</{tag}>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    attribute = f' class="{css_class}"' if css_class else ""
    return f"<table{attribute}>{head}<tbody>{''.join(body)}</tbody></table>"


def _image(png: bytes | None, alt: str) -> str:
    if png is None:
        return ""
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'


def render_html(board: Leaderboard, figures: dict[str, bytes | None]) -> str:
    """The page; ``figures`` maps ``<setting>/explanations`` and ``<setting>/<metric>`` to PNG bytes (or None)."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>OTNN leaderboard</title>", f"<style>{_STYLE}</style></head><body>",
             "<h1>Leaderboard: OTNNs and their unconstrained twins, side by side</h1>"]
    if board.command:
        parts.append(f"<p>Built by <code>{escape(board.command)}</code>.</p>")
    parts.append(
        "<p>Each cell: mean ± standard error over the samples. Rk: rank of the explainer for that model and metric "
        "(1 = best, in bold), as the paper's “Saliency Rk” (Table 1). paper: the paper's value for the same network, "
        f"metric and method, with its rank among the paper's methods ({escape(board.paper_source or 'none')}). "
        "Compare ranks and directions with the paper, not digits: its models, samples and settings differ.</p>")
    for setting in board.settings:
        name = setting.name
        parts.append(f'<section id="{escape(name)}"><h2>{escape(name)}: {escape(setting.dataset)}, '
                     f'{setting.samples_text}</h2>')
        if setting.description:
            parts.append(f"<p>{escape(setting.description)}</p>")
        parts.append(_table(None, [[k, v] for k, v in setting_facts(setting)], "facts"))
        diagnostics = diagnostics_table(setting)
        if diagnostics is not None:
            parts += ["<h3>The models on the evaluated samples</h3>", f"<p>{escape(DIAGNOSTIC_NOTE)}</p>",
                      _table(*diagnostics, "diagnostics")]
        if setting.verdicts:
            parts += ["<h3>The paper's claims, judged from these results</h3>", f"<p>{escape(CLAIMS_NOTE)}</p>",
                      _table(*verdict_table(setting), "claims")]
        parts.append(_image(figures.get(f"{name}/explanations"), f"{name}: explanations of the same inputs"))
        for metric in setting.metrics:
            parts.append(f'<h3 id="{escape(name)}-{escape(metric.label)}">{escape(metric_heading(metric))}</h3>')
            parts.append(_table(*metric_table(setting, metric.label), "metric"))
            parts.append(_image(figures.get(f"{name}/{metric.label}"), f"{name}: {metric.label}"))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
