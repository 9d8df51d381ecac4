"""The performance table: markdown from a suite results file, and a console view of one benchmark's result.

Run: ``python -m benchmarks.report benchmarks/results/<machine>.json`` rewrites ``<machine>.md`` next to it (the
table the README shows); ``--out -`` prints it instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from otnn_plugin._files import atomic_write_text

from .schema import met, validate

__all__ = ["render_markdown", "print_result", "main"]

_MARK = {True: "yes", False: "**no**", None: "-"}


def _ratio_text(summary: dict[str, float]) -> str:
    return f"{summary['median']:.2f}x ({summary['q1']:.2f}-{summary['q3']:.2f})"


def _value_text(value: float | None) -> str:
    if value is None:
        return "not measured"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _row(result: dict[str, Any], row: dict[str, Any]) -> list[str]:
    case = result["cases"][row["case"]]
    measured = (_ratio_text(case["ratios"][row["figure"]]) if row["kind"] == "ratio"
                else _value_text(case.get("values", {}).get(row["figure"])))
    bound = "-" if row["op"] is None else f"{row['op']} {row['bound']:g}{'x' if row['kind'] == 'ratio' else ''}"
    return [row["what"], row["anchor"], bound, measured, _MARK[met(result, row)], f"`{result['command']}`"]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(cells) + " |" for cells in rows)]


def render_markdown(suite: dict[str, Any], source: str = "") -> str:
    """The table of every target row of ``suite``, then the conditions it was measured in."""
    validate(suite)
    env, load = suite["environment"], suite["load_average"]
    rows = [_row(result, row) for result in suite["benchmarks"].values() for row in result["targets"]]
    quick = " (quick mode: tiny sizes, not figures to quote)" if suite["quick"] else ""
    lines = [
        f"### Performance on `{suite['machine']}`{quick}",
        "",
        "Every figure is a ratio of two candidates timed interleaved in the same run: each round times every "
        "candidate once, back to back, and gives one ratio; the table shows the median of these per-round ratios "
        "and, in brackets, their quartiles.",
        "",
        *_table(["what", "anchor", "target", "measured: median (IQR)", "met", "command"], rows),
        "",
        f"Measured {suite['started']} in {suite['seconds'] / 60:.1f} min by `{suite['command']}`: torch "
        f"{env['torch']}, {env['threads']} thread(s) on {env['cpu']} ({env['cores']} cores), device "
        f"{env['device']}; load average (1, 5, 15 min) {_load(load['before'])} before, {_load(load['after'])} after.",
    ]
    if suite["errors"]:
        lines += ["", "Benchmarks that failed: " + "; ".join(f"`{k}`: {v}" for k, v in suite["errors"].items())]
    if source:
        lines += ["", f"Table rendered by `python -m benchmarks.report {source}`."]
    return "\n".join(lines) + "\n"


def _load(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def print_result(result: dict[str, Any]) -> None:
    """Medians of every candidate and every ratio of one benchmark result, on the console."""
    for case_name, case in result["cases"].items():
        print(f"\n{result['name']} / {case_name}")
        for name, stats in case["stats"].items():
            print(f"  {name:<44} median {stats['median_s'] * 1e3:10.2f} ms   IQR {stats['iqr_s'] * 1e3:8.2f} ms")
        for key, summary in case["ratios"].items():
            print(f"  {key:<44} {_ratio_text(summary)}")
        for key, value in case.get("values", {}).items():
            print(f"  {key:<44} {_value_text(value)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render the markdown performance table of a results file.")
    parser.add_argument("results", type=Path, help="benchmarks/results/<machine>.json")
    parser.add_argument("--out", help="markdown file (default: the results file with .md; '-' prints it)")
    args = parser.parse_args(argv)
    try:
        suite = json.loads(args.results.read_text())
        text = render_markdown(suite, source=str(args.results))
        if args.out == "-":
            sys.stdout.write(text)
        else:
            atomic_write_text(Path(args.out) if args.out else args.results.with_suffix(".md"), text)
    except (ValueError, KeyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
