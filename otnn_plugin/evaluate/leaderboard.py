"""Leaderboards from evaluation results: mean ± standard error per cell, ranks, the paper's numbers beside ours.

:func:`build_leaderboard` turns one or more result sets into a plain dict (the JSON leaderboard). Result sets of
one config (same content hash) are merged; different configs become separate settings. A cell (model x
explainer x metric) is ``ok`` when every batch of samples was scored, ``failed`` when one raised, ``incomplete``
while some batches are missing. Ranks follow the paper's "Saliency Rk" (Table 1): for one model and one metric, the
explainers are ranked by mean score in the metric's direction, 1 = best, ties sharing the best rank. Cells are
ranked only while they have scored the same samples (an unfinished run goes batch by batch, so its cells do). The paper's
values (``evaluations/paper_numbers.yaml``, Tables 1-4 and 10-12 of arXiv:2206.06854) are matched by dataset (and
label), network family (``otnn`` / ``unconstrained``), metric label and explanation method.

:func:`metric_table` and :func:`setting_facts` lay out what the markdown, CSV and HTML pages show.
"""
from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._shipped import paper_numbers_path
from .._yaml import read_yaml
from .config import model_family
from .results import Results, weights_conflicts

__all__ = ["PAPER_NUMBERS", "PaperNumbers", "build_leaderboard", "competition_ranks", "load_paper_numbers",
           "metric_table", "setting_facts", "to_csv", "to_json", "to_markdown"]

#: The paper's numbers shipped with the package.
PAPER_NUMBERS = paper_numbers_path()
_CSV_COLUMNS = ("setting", "dataset", "split", "label", "samples", "metric", "metric_class", "direction", "model",
                "timm_model", "family", "explainer", "method", "status", "n", "n_nonfinite", "mean", "se", "rank",
                "seconds", "explain_seconds", "paper", "paper_rank", "paper_table", "error")


def competition_ranks(values: dict[str, float], direction: str) -> dict[str, int]:
    """Rank 1 for the best value in ``direction`` (``higher`` / ``lower``); ties share the best rank (1, 2, 2, 4)."""
    sign = -1.0 if direction == "higher" else 1.0
    return {key: 1 + sum(sign * other < sign * value for other in values.values()) for key, value in values.items()}


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's values by metric, dataset, network family and explanation method."""

    source: str
    explainers: dict[str, str]
    datasets: dict[str, dict[str, Any]]
    metrics: dict[str, dict[str, Any]]

    def row(self, metric: str, dataset: str, label: str | None, family: str | None) -> dict[str, float]:
        """``{method: value}`` for one network on one metric, empty where the paper has none."""
        entry, conditions = self.metrics.get(metric, {}), self.datasets.get(dataset)
        if conditions is None or family is None or conditions.get("label") != label:
            return {}
        values = entry.get(dataset, {}).get(family)
        return {} if values is None else {self.explainers[c]: v for c, v in zip(entry["columns"], values)}

    def reference(self, metric: str) -> dict[str, Any] | None:
        """The table number and title the paper gives a metric."""
        entry = self.metrics.get(metric)
        return None if entry is None else {"table": entry["table"], "title": entry["title"],
                                           "direction": entry["direction"]}


def load_paper_numbers(path: str | Path | None = None) -> PaperNumbers | None:
    """Read and check the paper's numbers; ``None`` when no path is given and the default file is absent."""
    if path is None and not PAPER_NUMBERS.is_file():
        return None
    path = Path(path or PAPER_NUMBERS)
    raw = read_yaml(path, "paper numbers file")
    explainers, datasets, metrics = raw["explainers"], raw["datasets"], raw["metrics"]
    for name, entry in metrics.items():
        if entry.get("direction") not in ("higher", "lower") or not set(entry["columns"]) <= set(explainers):
            raise ValueError(f"{path}: metrics.{name} needs direction higher/lower and columns among "
                             f"{', '.join(explainers)}")
        for dataset in datasets:
            for family, values in entry.get(dataset, {}).items():
                if len(values) != len(entry["columns"]):
                    raise ValueError(f"{path}: metrics.{name}.{dataset}.{family} has {len(values)} values for "
                                     f"{len(entry['columns'])} columns")
    return PaperNumbers(str(raw.get("source", path.name)), explainers, datasets, metrics)


def _merge(results: list[Results]) -> list[tuple[dict[str, Any], list[Results], dict]]:
    """Result sets grouped by config hash: (header, the sets, their units with later files winning)."""
    groups: dict[str, list[Results]] = defaultdict(list)
    for result in results:
        groups[result.config_hash].append(result)
    merged = []
    for group in groups.values():
        conflicts = weights_conflicts([result.header for result in group])
        if conflicts:
            raise ValueError(f"cannot merge {', '.join(str(r.path) for r in group)}: they scored other weights for "
                             f"{', '.join(conflicts)}; rerun one of them with the same weights")
        units: dict = {}
        for result in group:
            units.update(result.units)
        merged.append((group[0].header, group, units))
    return merged


def _cell(units: list[dict | None], n_expected: int) -> dict[str, Any]:
    """Status, statistics and times of one cell from its batches' unit lines (None: not computed yet)."""
    present = [u for u in units if u is not None]
    failed = [u for u in present if u["status"] == "failed"]
    scores = [] if failed else [s for u in present for s in u["scores"]]
    finite = np.array([s for s in scores if s is not None], dtype=np.float64)
    if failed:
        status = "failed"
    elif not present:
        status = "pending"
    else:
        status = "ok" if len(present) == len(units) else "incomplete"
    n = len(finite)
    return {
        "status": status,
        "n": n,
        "n_expected": n_expected,
        "n_nonfinite": len(scores) - n,
        "scored": len(scores),
        "mean": float(finite.mean()) if n else None,
        "se": float(finite.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
        "seconds": round(sum(u["seconds"] for u in present), 3),
        "explain_seconds": round(sum(u["explain_seconds"] for u in present), 3),
        "error": failed[0]["error"] if failed else None,
    }


def _sessions(group: list[Results]) -> list[dict[str, Any]]:
    last_time: dict[tuple[str, int], float] = {}
    for result in group:
        for unit in result.units.values():
            key = (str(result.path), unit["session"])
            last_time[key] = max(last_time.get(key, 0.0), unit["time"])
    sessions = []
    for result in group:
        for session in result.sessions:
            end = last_time.get((str(result.path), session["session"]), session["time"])
            sessions.append({"started": session["started"], "command": session["command"],
                             "environment": session["environment"],
                             "export_max_abs_difference": session["export_max_abs_difference"],
                             "wall_seconds": round(end - session["time"], 1)})
    return sessions


def _setting(header: dict[str, Any], group: list[Results], units: dict, paper: PaperNumbers | None,
             name: str) -> dict[str, Any]:
    config = header["config"]
    n_samples = len(header["indices"])
    explainers = config["explainers"]
    models = {label: {**spec, "family": model_family(spec["model"])} for label, spec in config["models"].items()}
    cells = []
    for metric, spec in config["metrics"].items():
        n_metric = min(spec.get("samples") or n_samples, n_samples)
        n_batches = math.ceil(n_metric / config["batch_size"])
        for model, model_spec in models.items():
            paper_row = paper.row(metric, config["dataset"], config["label"], model_spec["family"]) if paper else {}
            paper_ranks = competition_ranks(paper_row, spec["direction"]) if len(paper_row) > 1 else {}
            row = []
            for explainer, explainer_spec in explainers.items():
                if spec["explainers"] is not None and explainer not in spec["explainers"]:
                    continue
                batches = [units.get((model, explainer, metric, b)) for b in range(n_batches)]
                method = explainer_spec["method"]
                row.append({"metric": metric, "model": model, "explainer": explainer, "method": method,
                            **_cell(batches, n_metric), "rank": None, "paper": paper_row.get(method),
                            "paper_rank": paper_ranks.get(method)})
            scored = [c for c in row if c["status"] in ("ok", "incomplete") and c["n"]]
            same_samples = len({c["scored"] for c in scored}) == 1
            ranks = competition_ranks({c["explainer"]: c["mean"] for c in scored} if same_samples else {},
                                      spec["direction"])
            for cell in row:
                cell["rank"] = ranks.get(cell["explainer"])
            cells += row
    metrics = []
    for metric, spec in config["metrics"].items():
        params = {k: v for k, v in spec.items() if k not in ("metric", "direction", "explainers", "samples")}
        metrics.append({"label": metric, "metric": spec["metric"], "params": params, "direction": spec["direction"],
                        "samples": spec["samples"] if spec.get("samples", n_samples) < n_samples else None,
                        "explainers": spec["explainers"], "paper": paper.reference(metric) if paper else None})
    sessions = _sessions(group)
    return {
        "name": name, "config_name": header["name"], "description": header["description"],
        "config_hash": header["config_hash"], "sources": [str(r.path) for r in group],
        "dataset": config["dataset"], "split": config["split"], "label": config["label"], "samples": n_samples,
        "batch_size": config["batch_size"], "seed": config["seed"], "target_names": header["target_names"],
        "models": models,
        "explainers": explainers, "metrics": metrics, "sessions": sessions,
        "wall_seconds": round(sum(s["wall_seconds"] for s in sessions), 1), "cells": cells,
    }


def build_leaderboard(results: list[Results], paper: PaperNumbers | None = None, command: str = "") -> dict:
    """The leaderboard of ``results`` as plain data (see the module docstring)."""
    merged = _merge(results)
    names = [header["name"] for header, _, _ in merged]

    def unique(header: dict[str, Any]) -> str:  # two configs of one name: tell them apart by their hash
        return header["name"] if names.count(header["name"]) == 1 else f"{header['name']}-{header['config_hash'][:6]}"

    settings = [_setting(header, group, units, paper, unique(header)) for header, group, units in merged]
    return {"command": command, "paper_source": paper.source if paper else None, "settings": settings}


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _cell_text(cell: dict[str, Any]) -> str:
    if cell["status"] == "failed":
        error = cell["error"]
        return "failed: " + (error if len(error) <= 80 else error[:77] + "...")
    if cell["mean"] is None:
        return "—" if cell["status"] == "pending" else "no finite score"
    text = _number(cell["mean"]) + ("" if cell["se"] is None else f" ± {cell['se']:.2g}")
    if cell["status"] == "incomplete":
        text += f" ({cell['n']}/{cell['n_expected']} samples)"
    if cell["n_nonfinite"]:
        text += f" ({cell['n_nonfinite']} not finite)"
    return text


def metric_heading(metric: dict[str, Any]) -> str:
    """``label: Class(params), higher/lower is better[, first N samples]; paper Table N "title"``."""
    params = ", ".join(f"{k}={v!r}" for k, v in metric["params"].items())
    arrow = "↑" if metric["direction"] == "higher" else "↓"
    text = f"{metric['label']}: {metric['metric']}({params}), {metric['direction']} is better {arrow}"
    if metric.get("samples"):
        text += f", first {metric['samples']} samples"
    if metric["paper"]:
        text += f"; paper Table {metric['paper']['table']}, {metric['paper']['title']}"
    return text


def metric_table(setting: dict[str, Any], metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one metric's table: one row per explainer; per model its score, rank and paper value."""
    cells = [c for c in setting["cells"] if c["metric"] == metric]
    models = list(setting["models"])
    with_paper = any(c["paper"] is not None for c in cells)
    header = ["explainer"]
    for model in models:
        header += [model, "Rk"] + (["paper"] if with_paper else [])
    rows = []
    for explainer, spec in setting["explainers"].items():
        by_model = {c["model"]: c for c in cells if c["explainer"] == explainer}
        if not by_model:
            continue
        name = explainer if spec["method"] == explainer else f"{explainer} ({spec['method']})"
        row = [name]
        for model in models:
            cell = by_model[model]
            row += [_cell_text(cell), "" if cell["rank"] is None else str(cell["rank"])]
            if with_paper:
                paper = "" if cell["paper"] is None else _number(cell["paper"])
                row.append(paper + (f" (Rk{cell['paper_rank']})" if cell["paper_rank"] is not None else ""))
        rows.append(row)
    return header, rows


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def setting_facts(setting: dict[str, Any]) -> list[tuple[str, str]]:
    """What a setting is and how it was run, as (name, text) pairs."""
    models = []
    for label, spec in setting["models"].items():
        text = f"{label}: {spec['model']} ({spec['weights']} weights"
        text += f", args {spec['args']})" if spec["args"] else ")"
        models.append(text)
    explainers = [label + (f" ({', '.join(f'{k}={v!r}' for k, v in spec.items() if k != 'method')})"
                           if len(spec) > 1 else "") for label, spec in setting["explainers"].items()]
    facts = [
        ("config", f"{setting['config_name']} (content hash {setting['config_hash']})"),
        ("data", f"{setting['dataset']} {setting['split']} split, {setting['samples']} samples (seed "
                 f"{setting['seed']}, batches of {setting['batch_size']})"
                 + (f", explaining label {setting['label']}" if setting["label"] else ", each for its own class")),
        ("models", "; ".join(models)),
        ("explainers", "; ".join(explainers)),
    ]
    for number, session in enumerate(setting["sessions"], start=1):
        env = session["environment"]
        exported = ", ".join(f"{m} {d:.1e}" for m, d in session["export_max_abs_difference"].items())
        facts.append((f"run {number}", f"started {session['started']}, wall time {_duration(session['wall_seconds'])}, "
                                       f"{env['device']} ({env['device_name']}, {env['threads']} threads); "
                                       f"python {env['python']}, torch {env['torch']}, timm {env['timm']}, captum "
                                       f"{env['captum']}, quantus {env['quantus']}, deel-torchlip "
                                       f"{env['deel-torchlip']}, otnn-plugin {env['otnn-plugin']}"
                                       + (f"; OTNNs evaluated as export_vanilla (max |difference| {exported})"
                                          if exported else "")))
        facts.append((f"command {number}", session["command"] or "(not recorded)"))
    facts.append(("results", ", ".join(setting["sources"])))
    return facts


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def to_markdown(board: dict[str, Any]) -> str:
    lines = ["# Leaderboard: OTNNs and their unconstrained twins, side by side", ""]
    if board["command"]:
        lines += [f"Built by `{board['command']}`.", ""]
    lines += [
        "Each cell: mean ± standard error over the samples. Rk: rank of the explainer among those scored for that "
        "model and metric (1 = best, ties share the best rank), as the paper's \"Saliency Rk\" (Table 1). paper: "
        "the value the paper reports for the same network, metric and method, with its rank among the paper's "
        f"methods ({board['paper_source'] or 'no paper numbers loaded'}). The paper used full-size models, "
        "1000 samples and the settings of its appendix A.4: compare ranks and directions, not digits.", "",
    ]
    for setting in board["settings"]:
        lines += [f"## {setting['name']}: {setting['dataset']}, {setting['samples']} samples", ""]
        if setting["description"]:
            lines += [setting["description"], ""]
        lines += _markdown_table(["", ""], [[k, v] for k, v in setting_facts(setting)]) + [""]
        for metric in setting["metrics"]:
            lines += [f"### {metric_heading(metric)}", ""]
            lines += _markdown_table(*metric_table(setting, metric["label"])) + [""]
    return "\n".join(lines)


def to_csv(board: dict[str, Any]) -> str:
    """One row per cell, long format."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for setting in board["settings"]:
        metrics = {m["label"]: m for m in setting["metrics"]}
        for cell in setting["cells"]:
            metric, model = metrics[cell["metric"]], setting["models"][cell["model"]]
            writer.writerow({
                "setting": setting["name"], "dataset": setting["dataset"], "split": setting["split"],
                "label": setting["label"] or "", "samples": cell["n_expected"], "metric": cell["metric"],
                "metric_class": metric["metric"], "direction": metric["direction"], "model": cell["model"],
                "timm_model": model["model"], "family": model["family"] or "", "explainer": cell["explainer"],
                "method": cell["method"], "paper_table": metric["paper"]["table"] if metric["paper"] else "",
                **{k: "" if cell[k] is None else cell[k] for k in ("status", "n", "n_nonfinite", "mean", "se", "rank",
                                                                  "seconds", "explain_seconds", "paper",
                                                                  "paper_rank", "error")},
            })
    return buffer.getvalue()


def to_json(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=1, allow_nan=False) + "\n"
