"""Do two runs of one evaluation config agree (say, on a CPU and on a GPU)? Verdicts and cell means, side by side.

The runs differ in their random draws (a CUDA generator is not a CPU one) and in rounding, so per-sample scores
differ; what must agree are the conclusions: every verdict of the paper's claims, and each cell's mean within the
two runs' standard errors (``|z| = |mean_a - mean_b| / sqrt(se_a^2 + se_b^2)``).

Run: ``python -m benchmarks.compare_leaderboards A/leaderboard.json B/leaderboard.json``.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

#: Cells whose means differ by less than this are equal whatever their standard errors (those of a linear model's
#: distances are about 1e-7 on both sides).
NEGLIGIBLE = 1e-5


def _setting(path: Path) -> dict:
    """The one setting of a ``leaderboard.json``; ``ValueError`` in one line for anything else."""
    try:
        (setting,) = json.loads(path.read_text())["settings"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not the leaderboard.json of one config written by otnn leaderboard "
                         f"({type(err).__name__}: {err})") from None
    return setting


def compare(a: dict, b: dict) -> dict:
    """Verdicts that differ, and each shared cell's ``|z|``."""
    verdicts = [{(v["claim"], v["metric"], v["explainer"]): v["verdict"] for v in s["verdicts"]} for s in (a, b)]
    differing = sorted(k for k in verdicts[0].keys() | verdicts[1].keys() if verdicts[0].get(k) != verdicts[1].get(k))
    cells = [{(c["model"], c["explainer"], c["metric"]): c for c in s["cells"]} for s in (a, b)]
    z = {}
    for key, one in cells[0].items():
        other = cells[1].get(key)
        if other is None or one["mean"] is None or other["mean"] is None or not one["se"] or not other["se"]:
            continue
        gap = abs(one["mean"] - other["mean"])
        z[key] = 0.0 if gap < NEGLIGIBLE else gap / math.hypot(one["se"], other["se"])
    return {"verdicts": len(verdicts[0]), "differing_verdicts": differing, "cells": len(z),
            "cells_beyond_1.96": sorted((round(v, 2), k) for k, v in z.items() if v > 1.96),
            "largest_z": round(max(z.values(), default=0.0), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    args = parser.parse_args(argv)
    try:
        a, b = _setting(args.a), _setting(args.b)
    except ValueError as err:
        parser.error(str(err))
    if a["config_name"] != b["config_name"]:
        parser.error(f"{args.a} is of config {a['config_name']!r}, {args.b} of {b['config_name']!r}")
    print(json.dumps(compare(a, b), indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
