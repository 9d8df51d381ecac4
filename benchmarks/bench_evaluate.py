"""Evaluation costs: the wall time of the README's main job, and the per-stage times of a slice of each paper config.

:func:`run` reads the wall time of ``otnn evaluate evaluations/quick.yaml`` from its results (no timing): the
evaluation records every session's start and the time of every unit it scored; the wall time is their span,
summed over sessions (see ``otnn_plugin.evaluate.leaderboard``). Without its results the row reads "not measured".

:func:`run_slices` runs the first samples of ``evaluations/fashionmnist.yaml`` and ``celeba_mustache.yaml`` (both
models, the configs' pretrained weights and settings) through the real runner into a temporary folder, and reports
the explanation time of every explainer and the scoring time of every metric, summed over the models and batches
of the slice (from the ``explain_seconds`` and ``seconds`` of ``results.jsonl``), so that a slower stage shows in
the suite rather than in a 6-hour run. Compare its seconds between runs on the same machine only.

Run: ``python -m benchmarks.bench_evaluate [RESULTS_FOLDER]``; ``python -m benchmarks --only evaluate_slices``.
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from otnn_plugin.evaluate import load_config, prepare, run_evaluation
from otnn_plugin.evaluate.leaderboard import build_leaderboard
from otnn_plugin.evaluate.results import read_results

from .report import print_result
from .schema import target

COMMAND = "otnn evaluate evaluations/quick.yaml"
EVALUATIONS = Path(__file__).resolve().parents[1] / "evaluations"
RESULTS = EVALUATIONS / "results" / "quick"
#: Config -> samples of the slice (RISE, Robustness-Sr and Stability cost ~1, ~10 and ~6 s per Fashion-MNIST
#: sample and model on a CPU, ~8, ~70 and ~35 s per CelebA one).
SLICES = {"fashionmnist": 8, "celeba_mustache": 2}
#: ``--quick``: a smoke test of the machinery, two explainers and two metrics of the quick config on 2 samples.
QUICK_SLICE = {"samples": 2, "explainers": ("saliency", "rise"), "metrics": ("deletion_zero", "mufidelity_zero")}
#: The stages the table shows (every stage is in the JSON): the costliest of the paper runs.
SHOWN = ("explain/rise", "metric/mufidelity_uniform", "metric/mufidelity_zero", "metric/faithfulness_correlation",
         "metric/robustness_sr", "metric/stability_l2")


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


def stage_seconds(results_folder: str | Path) -> dict[str, float]:
    """``{"explain/<explainer>": s, "metric/<metric>": s}`` of an evaluation's results: each explanation counted
    once per model and batch (its metrics share it), each metric summed over its units."""
    seconds: dict[str, float] = {}
    explained = set()
    for record in read_results(results_folder).units.values():
        metric = f"metric/{record['metric']}"
        seconds[metric] = seconds.get(metric, 0.0) + record["seconds"]
        if (record["model"], record["explainer"], record["batch"]) not in explained:
            explained.add((record["model"], record["explainer"], record["batch"]))
            explainer = f"explain/{record['explainer']}"
            seconds[explainer] = seconds.get(explainer, 0.0) + record["explain_seconds"]
    return dict(sorted(seconds.items()))


def run_slices(quick: bool = False, device: str = "cpu") -> dict:
    """Per-stage seconds of the first samples of each paper config (:data:`SLICES`), through the real runner."""
    cases, targets, notes = {}, [], []
    for name, samples in ({"quick": QUICK_SLICE["samples"]} if quick else SLICES).items():
        config = load_config(EVALUATIONS / f"{name}.yaml", samples=samples, device=device)
        if quick:
            config = load_config(EVALUATIONS / f"{name}.yaml", samples=samples, device=device,
                                 explainers={e: config.explainers[e].content() for e in QUICK_SLICE["explainers"]},
                                 metrics={m: config.metrics[m].content() for m in QUICK_SLICE["metrics"]})
        began = time.perf_counter()
        prepared = prepare(config)
        prepare_seconds = time.perf_counter() - began
        with tempfile.TemporaryDirectory() as out:
            summary = run_evaluation(prepared, out, progress=False)
            values = {"prepare_seconds": prepare_seconds, "run_seconds": summary.seconds, **stage_seconds(out)}
        if summary.failed_cells:
            notes.append(f"{name}: {len(summary.failed_cells)} failed cell(s), e.g. {summary.failed_cells[0]}")
        cases[name] = {"stats": {}, "ratios": {}, "values": values}
        sliced = f"`evaluations/{name}.yaml`, first {samples} samples, {len(prepared.models)} models"
        targets.append(target(name, "run_seconds", f"{sliced}: run seconds", kind="value"))
        targets += [target(name, stage, f"{sliced}: {stage.replace('/', ' ')} seconds", kind="value")
                    for stage in SHOWN if stage in values]
    return {"name": "evaluate_slices", "command": "python -m benchmarks --only evaluate_slices",
            "params": {"slices": {"quick": QUICK_SLICE} if quick else SLICES, "device": device,
                       "note": "; ".join(notes) or "every cell scored"},
            "cases": cases, "targets": targets}


if __name__ == "__main__":
    result = run(*sys.argv[1:2])
    print(result["params"]["note"])
    print_result(result)
