"""Wall time of the README's main job, ``otnn evaluate evaluations/quick.yaml``, read from its results (no timing).

The evaluation records every session's start and the time of every unit it scored; the wall time is their span,
summed over sessions (see ``otnn_plugin.evaluate.leaderboard``). Nothing is measured here: run the evaluation
first; without its results the row reads "not measured".

Run: ``python -m benchmarks.bench_evaluate [RESULTS_FOLDER]``.
"""
from __future__ import annotations

import sys
from pathlib import Path

from otnn_plugin.evaluate.leaderboard import build_leaderboard
from otnn_plugin.evaluate.results import read_results

from .report import print_result
from .schema import target

COMMAND = "otnn evaluate evaluations/quick.yaml"
RESULTS = Path(__file__).resolve().parents[1] / "evaluations" / "results" / "quick"


def run(results: str | Path = RESULTS) -> dict:
    values: dict = {"wall_seconds": None}
    try:
        setting = build_leaderboard([read_results(results)]).settings[0]
    except (OSError, ValueError, KeyError, IndexError) as err:
        state, note = "no results", f"no usable results at {results}: {err}"
    else:
        state = "complete" if all(cell.status == "ok" for cell in setting.cells) else "incomplete"
        values = {"wall_seconds": setting.wall_seconds, "sessions": len(setting.sessions),
                  "cells": len(setting.cells)}
        started = ", ".join(session.started for session in setting.sessions)
        note = f"{results}: {state}; sessions started {started}"
    what = f"`otnn evaluate evaluations/quick.yaml` wall time, seconds (read from its results: {state})"
    return {"name": "evaluate_quick", "command": COMMAND, "params": {"results": str(results), "note": note},
            "cases": {"quick": {"stats": {}, "ratios": {}, "values": values}},
            "targets": [target("quick", "wall_seconds", what, kind="value")]}


if __name__ == "__main__":
    result = run(*sys.argv[1:2])
    print(result["params"]["note"])
    print_result(result)
