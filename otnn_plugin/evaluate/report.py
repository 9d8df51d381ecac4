"""Write a leaderboard's files: ``leaderboard.{md,csv,json,html}`` and ``figures/*.png``, each atomically."""
from __future__ import annotations

from pathlib import Path
from .._files import atomic_write_bytes, atomic_write_text
from .html import render_html
from .leaderboard import Leaderboard, to_csv, to_json, to_markdown
from .plots import explanation_figure, metric_bars
from .results import Results, load_examples

__all__ = ["write_report"]


def write_report(board: Leaderboard, results: list[Results], out: str | Path) -> list[Path]:
    """Write the leaderboard of ``results`` (built as ``board``) into ``out``; returns the files written.

    The explanation figure of a setting uses the ``examples.npz`` files next to its result files (a run split by
    model has one per model; the first file wins where they overlap).
    """
    out = Path(out)
    figures: dict[str, bytes | None] = {}
    for setting in board.settings:
        examples: dict = {}
        for result in reversed(results):
            if result.config_hash == setting.config_hash:
                examples.update(load_examples(result.folder))
        figures[f"{setting.name}/explanations"] = explanation_figure(setting, examples)
        for metric in setting.metrics:
            figures[f"{setting.name}/{metric.label}"] = metric_bars(setting, metric)
    written = []
    for key, png in figures.items():
        if png is not None:
            path = out / "figures" / (key.replace("/", "_") + ".png")
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, png)
            written.append(path)
    for suffix, text in (("md", to_markdown(board)), ("csv", to_csv(board)), ("json", to_json(board)),
                         ("html", render_html(board, figures))):
        path = out / f"leaderboard.{suffix}"
        atomic_write_text(path, text)
        written.append(path)
    return written
