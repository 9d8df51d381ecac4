"""Write a leaderboard's files: ``leaderboard.{md,csv,json,html}``, ``claims.md`` (the verdicts' summary) and
``figures/*.png``, each atomically."""
from __future__ import annotations

from pathlib import Path
from .._files import atomic_write_bytes, atomic_write_text
from .html import render_html
from .leaderboard import Leaderboard, claims_markdown, to_csv, to_json, to_markdown
from .plots import explanation_figure, metric_bars
from .results import Results, load_examples

__all__ = ["CLAIMS", "readme_block", "sync_readme", "write_report"]

#: The verdicts' summary, as the README shows it.
CLAIMS = "claims.md"


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
            if str(result.path) in setting.sources:
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
    files = {"leaderboard.md": to_markdown(board), "leaderboard.csv": to_csv(board), "leaderboard.json": to_json(board),
             "leaderboard.html": render_html(board, figures), CLAIMS: claims_markdown(board)}
    for name, text in files.items():
        atomic_write_text(out / name, text)
        written.append(out / name)
    return written


def readme_block(claims: Path) -> tuple[str, str]:
    """The markers that enclose the copy of a ``claims.md`` in a README."""
    return f"<!-- generated from {claims.as_posix()}: do not edit -->\n", f"<!-- end of {claims.as_posix()} -->"


def sync_readme(readme: str | Path, claims: str | Path) -> bool:
    """Copy ``claims`` (a path relative to the README's folder) between its markers in ``readme``; False when the
    README has no such block (nothing is written)."""
    readme, claims = Path(readme), Path(claims)
    text, (begin, end) = readme.read_text(), readme_block(claims)
    if begin not in text or end not in text:
        return False
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    atomic_write_text(readme, head + begin + (readme.parent / claims).read_text() + end + tail)
    return True
