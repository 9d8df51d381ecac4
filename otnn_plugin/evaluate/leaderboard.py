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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._shipped import paper_numbers_path
from .._yaml import read_yaml
from .claims import Evidence, PaperClaims, Verdict, judge
from .config import EvalConfig, Unit, comparison_hash
from .results import Results, weights_conflicts
from .uncertainty import paired_difference, rank_frequencies

__all__ = ["PAPER_NUMBERS", "Cell", "Leaderboard", "PaperNumbers", "Setting", "build_leaderboard", "competition_ranks", "load_paper_numbers",
           "metric_table", "setting_facts", "to_csv", "to_json", "to_markdown"]

#: The paper's numbers shipped with the package.
PAPER_NUMBERS = paper_numbers_path()
DIAGNOSTIC_NOTE = ("On the first evaluated samples (at most 256): accuracy on their targets (for a label: its head's "
                   "sensitivity and specificity) and the transport-regime figures of `otnn diagnose` (an OTNN at "
                   "the optimum has mean ‖∇f‖ 1 and Prop. 2 ratio 0; a linear model has Taylor error 0 and gradient "
                   "cosine 1).")
CLAIMS_NOTE = ("Verdicts from evaluations/paper_claims.yaml: confirmed only beyond the 95 % bootstrap interval over the "
               "samples, on an OTNN in the transport regime, and when the linear control (if any) does not "
               "reproduce it just as well (the OTNN also beats it beyond the interval); contradicted when the result "
               "opposes the claim beyond its interval on an OTNN in the regime; otherwise inconclusive, with the "
               "reason.")
_CSV_COLUMNS = ("setting", "dataset", "split", "label", "samples", "metric", "metric_class", "direction", "model",
                "timm_model", "family", "explainer", "method", "status", "n", "n_nonfinite", "mean", "se", "rank",
                "rank_frequency", "seconds", "explain_seconds", "paper", "paper_rank", "paper_table", "error")


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


@dataclass
class Cell:
    """One model x explainer x metric: its status, statistics over the samples, times, rank and the paper's value."""

    metric: str
    model: str
    explainer: str
    method: str
    status: str
    n: int
    n_expected: int
    n_nonfinite: int
    scored: int
    mean: float | None
    se: float | None
    seconds: float
    explain_seconds: float
    error: str | None
    rank: int | None = None
    rank_frequency: float | None = None
    paper: float | None = None
    paper_rank: int | None = None


@dataclass
class Comparison:
    """``model - versus`` on one metric and explainer: mean paired difference and its bootstrap 95 % interval."""

    metric: str
    explainer: str
    model: str
    versus: str
    n: int
    mean: float
    low: float
    high: float


@dataclass
class ModelEntry:
    model: str
    weights: str
    args: dict[str, Any]
    family: str | None


@dataclass
class MetricEntry:
    label: str
    metric: str
    params: dict[str, Any]
    direction: str
    samples: int | None
    explainers: list[str] | None
    paper: dict[str, Any] | None


@dataclass
class Session:
    started: str
    command: str
    environment: dict[str, Any]
    export_max_abs_difference: dict[str, float]
    wall_seconds: float


@dataclass
class Setting:
    """One config's results: what ran, how, and every cell."""

    name: str
    config_name: str
    description: str
    config_hash: str
    sources: list[str]
    dataset: str
    split: str
    label: str | None
    samples: int
    batch_size: int
    seed: int
    target_names: list[str]
    models: dict[str, ModelEntry]
    explainers: dict[str, dict[str, Any]]
    metrics: list[MetricEntry]
    sessions: list[Session]
    wall_seconds: float
    cells: list[Cell]
    diagnostics: dict[str, dict[str, Any]]
    comparisons: list[Comparison]
    verdicts: list[Verdict]

    @property
    def samples_text(self) -> str:
        """``1000 samples``, or ``1000 samples (900-925 scored)`` while cells over all samples are incomplete."""
        partial = [c.n for c in self.cells if c.status == "incomplete" and c.n_expected == self.samples]
        if not partial:
            return f"{self.samples} samples"
        low, high = min(partial), max(partial)
        return f"{self.samples} samples ({low}{'' if low == high else f'-{high}'} scored)"


@dataclass
class Leaderboard:
    command: str
    paper_source: str | None
    settings: list[Setting]


def _scope(result: Results) -> tuple[set[str], set[int]]:
    """The model labels and batch indices a result set covers (a shard covers every N-th batch)."""
    config = result.header["config"]
    batches = range(math.ceil(config["samples"] / config["batch_size"]))
    shard = result.header.get("shard")
    models = set(result.header.get("weights") or {unit[0] for unit in result.units})  # older files: what they scored
    return models, {b for b in batches if shard is None or b % shard[1] == shard[0]}


def _check_disjoint(group: list[Results]) -> None:
    """Refuse two result sets of one config that cover the same model on the same samples."""
    for i, first in enumerate(group):
        for second in group[i + 1:]:
            (models_a, batches_a), (models_b, batches_b) = _scope(first), _scope(second)
            if models_a & models_b and batches_a & batches_b:
                raise ValueError(f"cannot merge {first.path} and {second.path}: both scored "
                                 f"{', '.join(sorted(models_a & models_b))} on the same samples (overlapping "
                                 "shards or a repeated run); pass each part once")


def _merged_header(group: list[Results]) -> dict[str, Any]:
    """The first header of ``group`` with every set's models: sets of one comparison may list different models
    (a control added to the config later), but one label must name one model, on the same samples."""
    header = dict(group[0].header)
    models: dict[str, Any] = {}
    for result in group:
        if any(result.header[key] != header[key] for key in ("indices", "targets")):
            raise ValueError(f"cannot merge {group[0].path} and {result.path}: they scored other samples or targets")
        for label, spec in result.header["config"]["models"].items():
            if models.setdefault(label, spec) != spec:
                raise ValueError(f"cannot merge {', '.join(str(r.path) for r in group)}: their configs give "
                                 f"{label} two models ({models[label]} and {spec}); rename one")
    header["config"] = {**header["config"], "models": models}
    header["config_hash"] = ", ".join(dict.fromkeys(result.config_hash for result in group))
    return header


def _merge(results: list[Results]) -> list[tuple[dict[str, Any], list[Results], dict]]:
    """Result sets grouped by comparison (:func:`~.config.comparison_hash`: the same config but for its models and
    device): (merged header, the sets, their units). A folder given twice counts once; parts of one run (split by
    model or by shard) must not overlap."""
    groups: dict[str, list[Results]] = defaultdict(list)
    for result in {result.path.resolve(): result for result in results}.values():
        groups[comparison_hash(result.header["config"])].append(result)
    merged = []
    for group in groups.values():
        conflicts = weights_conflicts([result.header for result in group])
        if conflicts:
            raise ValueError(f"cannot merge {', '.join(str(r.path) for r in group)}: they scored other weights for "
                             f"{', '.join(conflicts)}; rerun one of them with the same weights")
        header = _merged_header(group)
        _check_disjoint(group)
        units: dict = {}
        for result in group:
            units.update(result.units)
        merged.append((header, group, units))
    return merged


def _cell(metric: str, model: str, explainer: str, method: str, units: list[dict | None], n_expected: int) -> Cell:
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
    return Cell(
        metric, model, explainer, method, status=status, n=n, n_expected=n_expected, n_nonfinite=len(scores) - n,
        scored=len(scores), mean=float(finite.mean()) if n else None,
        se=float(finite.std(ddof=1) / math.sqrt(n)) if n > 1 else None,
        seconds=round(sum(u["seconds"] for u in present), 3),
        explain_seconds=round(sum(u["explain_seconds"] for u in present), 3),
        error=failed[0]["error"] if failed else None,
    )


def _sessions(group: list[Results]) -> list[Session]:
    last_time: dict[tuple[str, int], float] = {}
    for result in group:
        for unit in result.units.values():
            key = (str(result.path), unit["session"])
            last_time[key] = max(last_time.get(key, 0.0), unit["time"])
    sessions = []
    for result in group:
        for session in result.sessions:
            end = last_time.get((str(result.path), session["session"]), session["time"])
            sessions.append(Session(session["started"], session["command"], session["environment"],
                                    session["export_max_abs_difference"], round(end - session["time"], 1)))
    return sessions


def _sample_scores(planned: list[Unit], found: list[dict | None]) -> np.ndarray:
    """A cell's per-sample scores in sample order, NaN where not finite or not computed yet (an unfinished run or
    a missing shard), so that pairs and ranks use exactly the samples both sides scored."""
    parts = [np.full(unit.rows.stop - unit.rows.start, np.nan) if record is None
             else np.array([np.nan if v is None else v for v in record["scores"]], dtype=np.float64)
             for unit, record in zip(planned, found)]
    return np.concatenate(parts)


def _rank_frequencies(row: list[Cell], scores: dict, direction: str) -> None:
    """Set each ranked cell's ``rank_frequency``: how often it holds its rank over bootstrap resamples."""
    ranked = [c for c in row if c.rank is not None and (c.model, c.explainer, c.metric) in scores]
    if len(ranked) < 2 or len(ranked) != len([c for c in row if c.rank is not None]):
        return
    frequencies = rank_frequencies({c.explainer: scores[(c.model, c.explainer, c.metric)] for c in ranked},
                                   direction)
    for cell in ranked:
        if cell.explainer in frequencies:
            cell.rank_frequency = round(float(frequencies[cell.explainer][cell.rank - 1]), 3)


def _comparisons(config: EvalConfig, scores: dict, claims: PaperClaims | None) -> list[Comparison]:
    """The OTNN against every other model, per metric the paper lets networks be compared on, per explainer."""
    otnn = next((label for label, m in config.models.items() if m.family == "otnn"), None)
    found = []
    for metric in config.metrics:
        if otnn is None or (claims is not None and not claims.comparable(metric)):
            continue
        for explainer in config.explainers:
            for versus in (label for label in config.models if label != otnn):
                pair = [scores.get((m, explainer, metric)) for m in (otnn, versus)]
                interval = None if any(p is None for p in pair) else paired_difference(*pair)
                if interval is not None:
                    found.append(Comparison(metric, explainer, otnn, versus, interval.n, round(interval.mean, 6),
                                            round(interval.low, 6), round(interval.high, 6)))
    return found


def _setting(header: dict[str, Any], group: list[Results], units: dict, paper: PaperNumbers | None,
             claims: PaperClaims | None, name: str) -> Setting:
    """The setting of one config's merged results; which units each cell expects comes from the config's plan."""
    config = EvalConfig.from_content(header["config"], name=header["name"])
    planned: dict[tuple[str, str, str], list] = defaultdict(list)
    for unit in config.units():
        planned[unit.cell].append(unit)
    cells, scores = [], {}
    for metric_label, metric in config.metrics.items():
        for model_label, model in config.models.items():
            paper_row = paper.row(metric_label, config.dataset, config.label, model.family) if paper else {}
            paper_ranks = competition_ranks(paper_row, metric.direction) if len(paper_row) > 1 else {}
            row = []
            for explainer_label, explainer in config.explainers.items():
                cell_units = planned[(model_label, explainer_label, metric_label)]
                if not cell_units:
                    continue
                found = [units.get(unit.key) for unit in cell_units]
                cell = _cell(metric_label, model_label, explainer_label, explainer.method, found,
                             sum(unit.rows.stop - unit.rows.start for unit in cell_units))
                cell.paper, cell.paper_rank = paper_row.get(explainer.method), paper_ranks.get(explainer.method)
                if cell.status in ("ok", "incomplete"):
                    scores[(model_label, explainer_label, metric_label)] = _sample_scores(cell_units, found)
                row.append(cell)
            scored = [c for c in row if c.status in ("ok", "incomplete") and c.n]
            same_samples = len({c.scored for c in scored}) == 1
            ranks = competition_ranks({c.explainer: c.mean for c in scored} if same_samples else {},
                                      metric.direction)
            for cell in row:
                cell.rank = ranks.get(cell.explainer)
            _rank_frequencies(row, scores, metric.direction)
            cells += row
    metrics = [MetricEntry(label, m.metric, dict(m.params), m.direction, m.samples,
                           list(m.explainers) if m.explainers is not None else None,
                           paper.reference(label) if paper else None) for label, m in config.metrics.items()]
    sessions = _sessions(group)
    # Each results file records the diagnostics of the models it ran (``--models``): the merged setting has them all.
    diagnostics = {label: d for result in group for label, d in result.header.get("diagnostics", {}).items()}
    evidence = Evidence(scores, {label: m.family for label, m in config.models.items()}, diagnostics,
                        {label: m.direction for label, m in config.metrics.items()},
                        {label: e.method for label, e in config.explainers.items()}, paper, config.dataset,
                        config.label)
    return Setting(
        name=name, config_name=header["name"], description=header["description"],
        config_hash=header["config_hash"], sources=[str(r.path) for r in group], dataset=config.dataset,
        split=config.split, label=config.label, samples=config.samples, batch_size=config.batch_size,
        seed=config.seed, target_names=header["target_names"],
        models={label: ModelEntry(m.model, m.weights, m.args, m.family) for label, m in config.models.items()},
        explainers={label: e.content() for label, e in config.explainers.items()}, metrics=metrics,
        sessions=sessions, wall_seconds=round(sum(s.wall_seconds for s in sessions), 1), cells=cells,
        diagnostics=diagnostics, comparisons=_comparisons(config, scores, claims),
        verdicts=judge(claims, evidence) if claims is not None else [],
    )


def build_leaderboard(results: list[Results], paper: PaperNumbers | None = None, command: str = "",
                      claims: PaperClaims | None = None) -> Leaderboard:
    """The leaderboard of ``results`` (see the module docstring); with ``claims``, the paired comparisons between
    networks and the verdict of each claim."""
    merged = _merge(results)
    names = [header["name"] for header, _, _ in merged]

    def unique(header: dict[str, Any]) -> str:  # two configs of one name: tell them apart by their hash
        return (header["name"] if names.count(header["name"]) == 1
                else f"{header['name']}-{comparison_hash(header['config'])[:6]}")

    settings = [_setting(header, group, units, paper, claims, unique(header)) for header, group, units in merged]
    return Leaderboard(command, paper.source if paper else None, settings)


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


def _cell_text(cell: Cell) -> str:
    if cell.status == "failed":
        return "failed: " + (cell.error if len(cell.error) <= 80 else cell.error[:77] + "...")
    if cell.mean is None:
        return "—" if cell.status == "pending" else "no finite score"
    text = _number(cell.mean) + ("" if cell.se is None else f" ± {cell.se:.2g}")
    if cell.status == "incomplete":
        text += f" ({cell.n}/{cell.n_expected} samples)"
    if cell.n_nonfinite:
        text += f" ({cell.n_nonfinite} not finite)"
    return text


def metric_heading(metric: MetricEntry) -> str:
    """``label: Class(params), higher/lower is better[, first N samples]; paper Table N "title"``."""
    params = ", ".join(f"{k}={v!r}" for k, v in metric.params.items())
    arrow = "↑" if metric.direction == "higher" else "↓"
    text = f"{metric.label}: {metric.metric}({params}), {metric.direction} is better {arrow}"
    if metric.samples:
        text += f", first {metric.samples} samples"
    if metric.paper:
        text += f"; paper Table {metric.paper['table']}, {metric.paper['title']}"
    return text


def metric_table(setting: Setting, metric: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of one metric's table: one row per explainer; per model its score, rank and paper value."""
    cells = [c for c in setting.cells if c.metric == metric]
    models = list(setting.models)
    with_paper = any(c.paper is not None for c in cells)
    comparisons = [c for c in setting.comparisons if c.metric == metric]
    pairs = list(dict.fromkeys((c.model, c.versus) for c in comparisons))
    header = ["explainer"]
    for model in models:
        header += [model, "Rk"] + (["paper"] if with_paper else [])
    header += [f"{model} − {versus} [95 % CI]" for model, versus in pairs]
    rows = []
    for explainer, spec in setting.explainers.items():
        by_model = {c.model: c for c in cells if c.explainer == explainer}
        if not by_model:
            continue
        name = explainer if spec["method"] == explainer else f"{explainer} ({spec['method']})"
        row = [name]
        for model in models:
            cell = by_model[model]
            row += [_cell_text(cell), _rank_text(cell)]
            if with_paper:
                paper = "" if cell.paper is None else _number(cell.paper)
                row.append(paper + (f" (Rk{cell.paper_rank})" if cell.paper_rank is not None else ""))
        for model, versus in pairs:
            found = next((c for c in comparisons if (c.model, c.versus, c.explainer) == (model, versus, explainer)),
                         None)
            row.append("" if found is None else f"{found.mean:+.3g} [{found.low:+.3g}, {found.high:+.3g}]")
        rows.append(row)
    return header, rows


def _rank_text(cell: Cell) -> str:
    """The rank, and how often it holds over bootstrap resamples of the samples."""
    if cell.rank is None:
        return ""
    return str(cell.rank) + ("" if cell.rank_frequency is None else f" ({cell.rank_frequency:.0%})")


#: The transport-regime and accuracy figures shown per model, and their headings.
DIAGNOSTICS = {"accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity",
               "mean_grad_norm": "mean ‖∇f‖", "prop2_ratio": "Prop. 2 ratio", "taylor_error": "Taylor error",
               "gradient_cosine": "gradient cosine"}


def diagnostics_table(setting: Setting) -> tuple[list[str], list[list[str]]] | None:
    """One row per model: how it behaves on the evaluated samples (is it in the transport regime, or close to
    linear?); ``None`` for results that recorded no diagnostics."""
    if not setting.diagnostics:
        return None
    keys = [k for k in DIAGNOSTICS if any(k in d for d in setting.diagnostics.values())]
    rows = [[model, *("—" if d.get(k) is None else f"{d[k]:.3g}" for k in keys)]
            for model, d in setting.diagnostics.items()]
    return ["model", *(DIAGNOSTICS[k] for k in keys)], rows


def verdict_table(setting: Setting) -> tuple[list[str], list[list[str]]]:
    """One row per claim, metric and explainer: the paper's value, ours, the verdict and why."""
    rows = [[f"{v.text} ({v.where})", v.metric, v.explainer, v.paper, v.ours, v.verdict, v.reason]
            for v in setting.verdicts]
    return ["claim", "metric", "explainer", "paper", "ours", "verdict", "reason"], rows


def _duration(seconds: float) -> str:
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes else f"{rest} s"


def setting_facts(setting: Setting) -> list[tuple[str, str]]:
    """What a setting is and how it was run, as (name, text) pairs."""
    models = []
    for label, spec in setting.models.items():
        text = f"{label}: {spec.model} ({spec.weights} weights"
        text += f", args {spec.args})" if spec.args else ")"
        models.append(text)
    explainers = [label + (f" ({', '.join(f'{k}={v!r}' for k, v in spec.items() if k != 'method')})"
                           if len(spec) > 1 else "") for label, spec in setting.explainers.items()]
    facts = [
        ("config", f"{setting.config_name} (content hash{'es' if ', ' in setting.config_hash else ''} "
                   f"{setting.config_hash})"),
        ("data", f"{setting.dataset} {setting.split} split, {setting.samples_text} (seed "
                 f"{setting.seed}, batches of {setting.batch_size})"
                 + (f", explaining label {setting.label}" if setting.label else ", each for its own class")),
        ("models", "; ".join(models)),
        ("explainers", "; ".join(explainers)),
    ]
    for number, session in enumerate(setting.sessions, start=1):
        env = session.environment
        exported = ", ".join(f"{m} {d:.1e}" for m, d in session.export_max_abs_difference.items())
        facts.append((f"run {number}", f"started {session.started}, wall time {_duration(session.wall_seconds)}, "
                                       f"{env['device']} ({env['device_name']}, {env['threads']} threads); "
                                       f"python {env['python']}, torch {env['torch']}, timm {env['timm']}, captum "
                                       f"{env['captum']}, quantus {env['quantus']}, deel-torchlip "
                                       f"{env['deel-torchlip']}, otnn-plugin {env['otnn-plugin']}"
                                       + (f"; OTNNs evaluated as export_vanilla (max |difference| {exported})"
                                          if exported else "")))
        facts.append((f"command {number}", session.command or "(not recorded)"))
    facts.append(("results", ", ".join(setting.sources)))
    return facts


def _markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def to_markdown(board: Leaderboard) -> str:
    lines = ["# Leaderboard: OTNNs and their unconstrained twins, side by side", ""]
    if board.command:
        lines += [f"Built by `{board.command}`.", ""]
    lines += [
        "Each cell: mean ± standard error over the samples. Rk: rank of the explainer among those scored for that "
        "model and metric (1 = best, ties share the best rank), as the paper's \"Saliency Rk\" (Table 1), with how "
        "often it holds over 2000 bootstrap resamples of the samples. A − B: the paired difference between two "
        "networks on the same samples, with its bootstrap 95 % interval (only for metrics the paper lets networks "
        "be compared on). paper: "
        "the value the paper reports for the same network, metric and method, with its rank among the paper's "
        f"methods ({board.paper_source or 'no paper numbers loaded'}). The paper used full-size models, "
        "1000 samples and the settings of its appendix A.4: compare ranks and directions, not digits.", "",
    ]
    for setting in board.settings:
        lines += [f"## {setting.name}: {setting.dataset}, {setting.samples_text}", ""]
        if setting.description:
            lines += [setting.description, ""]
        lines += _markdown_table(["", ""], [[k, v] for k, v in setting_facts(setting)]) + [""]
        diagnostics = diagnostics_table(setting)
        if diagnostics is not None:
            lines += ["### The models on the evaluated samples", "", DIAGNOSTIC_NOTE, ""]
            lines += _markdown_table(*diagnostics) + [""]
        if setting.verdicts:
            lines += ["### The paper's claims, judged from these results", "", CLAIMS_NOTE, ""]
            lines += _markdown_table(*verdict_table(setting)) + [""]
        for metric in setting.metrics:
            lines += [f"### {metric_heading(metric)}", ""]
            lines += _markdown_table(*metric_table(setting, metric.label)) + [""]
    return "\n".join(lines)


def claims_markdown(board: Leaderboard) -> str:
    """A summary of the verdicts, one row per claim and metric, for each setting with verdicts: what the README
    shows (the full table, per explainer, is in the leaderboard)."""
    lines = []
    for setting in (s for s in board.settings if s.verdicts):
        lines += [f"**{setting.name}** ({setting.dataset}"
                  + (f", label {setting.label}" if setting.label else "") + f", {setting.samples_text}): "
                  + "; ".join(_model_summary(model, d) for model, d in setting.diagnostics.items())
                  + ("" if setting.diagnostics else "no model diagnostics recorded") + ".", ""]
        rows = []
        for (claim, metric), verdicts in _grouped(setting.verdicts).items():
            counts = {v: sum(x.verdict == v for x in verdicts) for v in dict.fromkeys(x.verdict for x in verdicts)}
            shown = next((v for v in verdicts if v.explainer in ("saliency", "")), verdicts[0])
            rows.append([f"{verdicts[0].text} ({verdicts[0].where})", metric,
                         ", ".join(f"{v} ×{n}" if len(verdicts) > 1 else v for v, n in counts.items()),
                         f"{shown.explainer}: {shown.ours}" if shown.explainer else shown.ours, shown.paper,
                         shown.reason])
        lines += _markdown_table(["claim", "metric", "verdicts", "ours", "paper", "reason"], rows) + [""]
    return "\n".join(lines) or "No verdicts: no claims were loaded, or no setting scored a claimed metric.\n"


def _grouped(verdicts: list[Verdict]) -> dict[tuple[str, str], list[Verdict]]:
    groups: dict[tuple[str, str], list[Verdict]] = {}
    for verdict in verdicts:
        groups.setdefault((verdict.claim, verdict.metric), []).append(verdict)
    return groups


def _model_summary(model: str, diagnostics: dict[str, Any]) -> str:
    shown = [f"{DIAGNOSTICS[k]} {diagnostics[k]:.2f}" for k in ("accuracy", "sensitivity", "mean_grad_norm")
             if diagnostics.get(k) is not None]
    return f"{model} " + ", ".join(shown)


def to_csv(board: Leaderboard) -> str:
    """One row per cell, long format."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for setting in board.settings:
        metrics = {m.label: m for m in setting.metrics}
        for cell in setting.cells:
            metric, model = metrics[cell.metric], setting.models[cell.model]
            values = asdict(cell)
            writer.writerow({
                "setting": setting.name, "dataset": setting.dataset, "split": setting.split,
                "label": setting.label or "", "samples": cell.n_expected, "metric": cell.metric,
                "metric_class": metric.metric, "direction": metric.direction, "model": cell.model,
                "timm_model": model.model, "family": model.family or "", "explainer": cell.explainer,
                "method": cell.method, "paper_table": metric.paper["table"] if metric.paper else "",
                **{k: "" if values[k] is None else values[k] for k in (
                    "status", "n", "n_nonfinite", "mean", "se", "rank", "rank_frequency", "seconds", "explain_seconds",
                    "paper", "paper_rank", "error")},
            })
    return buffer.getvalue()


def to_json(board: Leaderboard) -> str:
    return json.dumps(asdict(board), indent=1, allow_nan=False) + "\n"
