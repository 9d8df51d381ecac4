"""The side-by-side runner: every model x explainer x metric of a config, per sample, resumable.

For each model, each explainer explains one batch of samples once (``otnn_plugin.explain``, the Quantus
``explain_func``), and every metric scores that batch from the same attributions (``a_batch``); a metric with its
own ``samples`` scores the first rows only. Metrics that explain again around the inputs (Stability, Quantus's
robustness metrics) get ``explain_func`` too, which remembers what it explained within the batch: two Stability
metrics given one ``seed`` draw the same neighbours and explain them once; Quantus's own metrics get the model with its
gradient-free forwards remembered within the batch, so that perturbations drawn from a metric's seed alone are
forwarded once for every explainer. OTNNs are evaluated as
``export_vanilla(otnn)``: the same function with plain layers (checked on the first batch), at the cost of its
unconstrained twin. Work goes batch by batch, and each (model, explainer, metric, batch) is one line of
``results.jsonl``, written as soon as it is done: a killed run has scored the same first samples in every cell
(the leaderboard ranks them), and resumes at the next unit; every unit is seeded from the config's seed and its
own name, so a resumed run gives the scores an uninterrupted one gives. A unit that raises is recorded as failed with its error,
the rest of its cell is skipped, and the run goes on. Runs restricted to some of the models (``models=``) write
their own folders, which ``otnn leaderboard`` merges: one machine per model.
"""
from __future__ import annotations

import hashlib
import math
import random
from itertools import groupby
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .._environment import environment
from .._finite import check_finite, check_model_outputs
from .._fingerprint import weights_fingerprint
from .._names import unknown_name
from .._progress import progress_bar
from ..devices import resolve_device
from .config import QUANTUS_PREFIX, EvalConfig, MetricSpec, ModelSpec, Shard, Unit, unit_seed
from .label_sides import LabelSides, side_names
from ..metrics.perturbation import shared_forwards
from .results import Results, append_record, load_examples, open_results, save_example

__all__ = ["EvaluationSetup", "RunSummary", "prepare", "run_evaluation"]

#: Samples of the first batch kept for the explanation figure.
EXAMPLES_SHOWN = 4
#: Samples the models' diagnostics are measured on (the first ones, a random draw of the split).
DIAGNOSTIC_SAMPLES = 256
#: Largest difference allowed between an OTNN and its export, relative to its largest output (at least 1).
EXPORT_TOLERANCE = 1e-4
@dataclass
class EvaluationSetup:
    """A config made ready: the device, the samples (numpy, as Quantus takes them) and the models to evaluate; the
    samples' human importance maps when the dataset has them (Quantus's ``s_batch``, for ``HumanAlignment``)."""

    config: EvalConfig
    device: torch.device
    indices: list[int]
    x: np.ndarray
    y: np.ndarray
    target_names: list[str]
    models: dict[str, nn.Module]
    export_differences: dict[str, float]
    diagnostics: dict[str, dict[str, Any]]
    human_maps: np.ndarray | None = None
    #: label -> :func:`weights_fingerprint` of the weights as loaded, before any export (whose QR-built kernels
    #: differ in the last bits with the thread count).
    fingerprints: dict[str, str] = field(default_factory=dict)


@dataclass
class RunSummary:
    results: Results
    computed: int
    skipped: int
    failed_cells: list[tuple[str, str, str]]
    seconds: float


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator (Quantus draws from it) and ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _samples(config: EvalConfig, data_dir: str | Path | None
             ) -> tuple[list[int], np.ndarray, np.ndarray, list[str], np.ndarray | None]:
    """A seeded random subset of the split in draw order (so its first rows are a random subset too), its targets,
    the names of the dataset's outputs and the samples' human maps (None without). Targets: each sample's class, or
    for multilabel data its side of ``config.label`` (0: without, 1: with; see :class:`LabelSides`)."""
    from ..data import human_maps, label_names, load_dataset, to_tensors

    dataset = load_dataset(config.dataset, config.split, data_dir, **config.dataset_args)
    if config.samples > len(dataset):
        raise ValueError(f"samples: {config.samples} asked for, but the {config.split} split of {config.dataset} has "
                         f"{len(dataset)} rows")
    generator = torch.Generator().manual_seed(config.seed)
    indices = torch.randperm(len(dataset), generator=generator)[:config.samples].tolist()
    rows = dataset.select(indices)
    x, labels = to_tensors(rows)
    maps = human_maps(rows)
    names = list(label_names(config.dataset, data_dir, **config.dataset_args))
    if labels.ndim == 2:
        if config.label is None:
            raise ValueError(f"{config.dataset} is multilabel: set label: to the output to explain "
                             f"(one of {', '.join(names)})")
        y = (labels[:, names.index(config.label)] > 0.5).numpy().astype(np.int64)
    else:
        if config.label is not None:
            raise ValueError(f"{config.dataset} has one class per sample, explained for its own class: "
                             f"remove label: {config.label}")
        y = labels.numpy().astype(np.int64)
    return indices, x.numpy(), y, names, None if maps is None else maps.numpy()


def _load_model(spec: ModelSpec, config: EvalConfig) -> nn.Module:
    import timm

    import otnn_plugin  # noqa: F401  (registers the plugin's models with timm)

    torch.manual_seed(unit_seed(config.seed, "init", spec.label))
    if spec.weights == "pretrained":
        return timm.create_model(spec.model, pretrained=True, **spec.args)
    model = timm.create_model(spec.model, **spec.args)
    path = config.weights_path(spec)
    if path is not None:
        try:
            timm.models.load_checkpoint(model, str(path), strict=True)
        except RuntimeError as err:
            raise ValueError(f"models.{spec.label}: {path} does not hold weights of {spec.model}"
                             f"{' with args ' + str(spec.args) if spec.args else ''}: "
                             f"{str(err).splitlines()[0]}") from None
    return model


def _checked_outputs(spec: ModelSpec, model: nn.Module, x: torch.Tensor, n_outputs: int,
                     indices: list[int]) -> torch.Tensor:
    """The model's outputs on the first batch ``x`` (dataset rows ``indices``), checked: shape and finite values."""
    try:
        with torch.no_grad():
            outputs = model(x)
    except RuntimeError as err:
        raise ValueError(f"models.{spec.label} ({spec.model}) cannot take the dataset's images of shape "
                         f"{tuple(x.shape[1:])}: {str(err).splitlines()[0]}; set its input size in args:") from None
    if outputs.ndim != 2 or outputs.shape[1] != n_outputs:
        raise ValueError(f"models.{spec.label} ({spec.model}) returns outputs of shape {tuple(outputs.shape)}, but "
                         f"the dataset has {n_outputs} classes or labels")
    check_model_outputs(outputs, indices, f"the outputs of models.{spec.label} ({spec.model})")
    return outputs


def prepare(config: EvalConfig, data_dir: str | Path | None = None, models: list[str] | None = None) -> EvaluationSetup:
    """Load the samples and the models (``models``: only these labels), check them, and export OTNNs (for multilabel
    data, as :class:`LabelSides` of ``config.label``); nothing is written."""
    from ..lipschitz import is_otnn
    from ..models import export_vanilla

    labels = list(config.models)
    for label in models or ():
        if label not in labels:
            raise unknown_name("model label", label, labels, f"{config.name}: ")
    device = resolve_device(config.device)
    indices, x, y, names, maps = _samples(config, data_dir)
    check_finite(torch.from_numpy(x), f"the {config.dataset} {config.split} samples", "repair the dataset", indices)
    first = torch.as_tensor(x[:config.batch_size], device=device)
    side_of = None if config.label is None else names.index(config.label)
    loaded, differences, fingerprints = {}, {}, {}
    for spec in config.models.values():
        if models and spec.label not in models:
            continue
        model = _load_model(spec, config).to(device).eval()
        fingerprints[spec.label] = weights_fingerprint(model)
        outputs = _checked_outputs(spec, model, first, len(names), indices)
        if is_otnn(model):
            model = export_vanilla(model)
            with torch.no_grad():
                difference = (model(first) - outputs).abs().max().item()
            if not difference <= EXPORT_TOLERANCE * max(1.0, outputs.abs().max().item()):
                raise ValueError(f"models.{spec.label}: export_vanilla changed the outputs by {difference:.2e}: "
                                 "the export is broken for this model")
            differences[spec.label] = difference
        loaded[spec.label] = model if side_of is None else LabelSides(model, side_of)
    target_names = names if side_of is None else side_names(config.label)
    diagnostics = {label: model_diagnostics(model, x, y, device) for label, model in loaded.items()}
    return EvaluationSetup(config, device, indices, x, y, target_names, loaded, differences, diagnostics, maps,
                           fingerprints)


def model_diagnostics(model: nn.Module, x: np.ndarray, y: np.ndarray, device: torch.device) -> dict[str, Any]:
    """How each evaluated model behaves on the first :data:`DIAGNOSTIC_SAMPLES` samples: its accuracy on their
    targets (for a label: sensitivity and specificity of its head) and the transport-regime figures of
    :func:`otnn_plugin.diagnostics.transport_diagnostics` (is it an OTNN at the optimum, or close to linear?)."""
    from ..diagnostics import transport_diagnostics

    inputs = torch.as_tensor(x[:DIAGNOSTIC_SAMPLES], device=device)
    targets = torch.as_tensor(y[:DIAGNOSTIC_SAMPLES], device=device)
    with torch.no_grad():
        predicted = model(inputs).argmax(1)

    def rate(hits: torch.Tensor) -> float | None:
        return round(hits.double().mean().item(), 4) if len(hits) else None

    scores = {"accuracy": rate(predicted == targets)}
    if isinstance(model, LabelSides):  # side 1: with the label; its head fires when f > 0
        scores.update(sensitivity=rate(predicted[targets == 1] == 1), specificity=rate(predicted[targets == 0] == 0))
    measured = transport_diagnostics(model, inputs, targets, "multiclass")  # NaN where undefined (no class pair)
    return {**scores, **{k: (round(v, 4) if math.isfinite(v) else None) if isinstance(v, float) else v
                         for k, v in measured.items()}}


def _digest(value: Any) -> tuple:
    array = np.ascontiguousarray(value.detach().cpu().numpy() if torch.is_tensor(value) else np.asarray(value))
    return array.dtype.str, array.shape, hashlib.blake2b(array.tobytes(), digest_size=16).digest()


class _RememberingModel(nn.Module):
    """``model`` as Quantus's own metrics get it within one batch: its forwards without gradients are remembered by
    the bytes of their inputs, so that a metric whose perturbations depend only on its seed forwards them once for
    every explainer (``quantus.FaithfulnessCorrelation``: plan 2 seeds each explainer's call alike, so all draw the
    same subsets). The outputs are the ones the model gives, bit for bit; forwards with gradients are not kept."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.outputs = model, {}
        self.training = model.training  # Quantus refuses a model in training mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return self.model(x)
        key = _digest(x)
        if key not in self.outputs:
            self.outputs[key] = self.model(x)
        return self.outputs[key].clone()


class _RememberingExplain:
    """``explain`` for one model, explainer and batch, remembering what it explained (by the bytes of the inputs
    and targets and by the settings), so that metrics explaining the same points share the work. It explains the
    model itself when a Quantus metric hands it the :class:`_RememberingModel` around it."""

    def __init__(self, explain: Callable[..., np.ndarray]):
        self.explain, self.results = explain, {}

    def __call__(self, model: nn.Module, inputs: Any, targets: Any, **settings) -> np.ndarray:
        model = model.model if isinstance(model, _RememberingModel) else model
        key = (_digest(inputs), _digest(targets), repr(sorted(settings.items())))
        if key not in self.results:
            self.results[key] = self.explain(model, inputs, targets, **settings)
        return self.results[key].copy()


def _per_sample(scores: Any, n: int) -> list[float | None]:
    """One float per sample (None where not finite) from a metric's return value."""
    if len(scores) != n:
        raise ValueError(f"the metric returned {len(scores)} scores for {n} samples")
    values = []
    for score in scores:
        array = np.asarray(score, dtype=np.float64)
        if array.size != 1:
            raise ValueError(f"the metric returned {array.size} values per sample, not one score: configure it to "
                             "return one (e.g. return_auc_per_sample: true for quantus.PixelFlipping)")
        value = float(array.reshape(()))
        values.append(value if math.isfinite(value) else None)
    return values


def _error(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip().splitlines()[0]
    return text[:500]


def _header(prepared: EvaluationSetup, shard: Shard | None) -> dict[str, Any]:
    config = prepared.config
    return {
        "name": config.name, "description": config.description, "config_hash": config.content_hash(),
        "config": config.content(), "indices": prepared.indices, "targets": prepared.y.tolist(),
        "target_names": prepared.target_names,
        "weights": prepared.fingerprints,
        "diagnostics": prepared.diagnostics,
        **({"shard": [shard.index, shard.count]} if shard is not None else {}),
    }


def _score(metric: MetricSpec, model: nn.Module, x: np.ndarray, y: np.ndarray, attributions: np.ndarray,
           explain_func: Callable, explain_kwargs: dict[str, Any], device: torch.device, seed: int,
           human_maps: np.ndarray | None = None) -> dict[str, Any]:
    """One metric on one batch: ``{"status": "ok", "scores": [...]}``, or ``"failed"`` with the error. The human
    maps, if any, go to every metric as ``s_batch``."""
    seed_everything(seed)
    try:
        scores = metric.build(seed=seed)(  # copies: a metric may perturb its arrays in place
            model=model, x_batch=x.copy(), y_batch=y.copy(), a_batch=attributions.copy(), explain_func=explain_func,
            explain_func_kwargs=explain_kwargs, device=str(device), batch_size=len(x), softmax=False,
            channel_first=True, s_batch=None if human_maps is None else human_maps.copy(),
        )
        return {"status": "ok", "scores": _per_sample(scores, len(x))}
    except Exception as err:  # a failing cell is recorded, and the run goes on
        return {"status": "failed", "error": _error(err)}


@dataclass
class _Pass:
    """One session's work on a results file: what is done or failed, and the progress bar."""

    prepared: EvaluationSetup
    out: Path
    results: Results
    session: int
    plan: list[Unit]
    done: set
    failed: set
    bar: Any
    examples_done: set

    def explain_and_score(self, units: list[Unit], remembered: _RememberingModel) -> int:
        """Explain one batch for one model and explainer, then score it with every metric of ``units``; Quantus's
        own metrics get ``remembered``, the batch's model with its forwards remembered across explainers."""
        from ..explainers import explain

        first, config = units[0], self.prepared.config
        model, rows = self.prepared.models[first.model], config.batches()[first.batch]
        self.bar.set_description(f"{config.name} batch {first.batch + 1}/{len(config.batches())}: {first.model} "
                                 f"{first.explainer}")
        x, y = self.prepared.x[rows], self.prepared.y[rows]
        maps = None if self.prepared.human_maps is None else self.prepared.human_maps[rows]
        explain_kwargs = config.explainers[first.explainer].explain_kwargs(seed=first.explain_seed)
        seed_everything(first.explain_seed)
        began = time.perf_counter()
        try:
            attributions, explain_error = explain(model, x, y, **explain_kwargs), None
        except Exception as err:  # recorded with every metric of the batch; the run goes on
            attributions, explain_error = None, f"explanation failed: {_error(err)}"
        explain_seconds = round(time.perf_counter() - began, 4)
        key = f"{first.model}/{first.explainer}"
        if first.batch == 0 and attributions is not None and key not in self.examples_done:
            shown = slice(0, EXAMPLES_SHOWN)
            save_example(self.out, key, attributions[shown], {
                "inputs": x[shown], "indices": np.asarray(self.prepared.indices[shown]), "targets": y[shown]})
            self.examples_done.add(key)
        remembering = _RememberingExplain(explain)
        for unit in units:
            self.bar.set_postfix_str(unit.metric)
            began = time.perf_counter()
            n = unit.rows.stop - unit.rows.start
            spec = config.metrics[unit.metric]
            scored_model = remembered if spec.metric.startswith(QUANTUS_PREFIX) else model
            outcome = {"status": "failed", "error": explain_error} if explain_error else _score(
                spec, scored_model, x[:n], y[:n], attributions[:n], remembering, explain_kwargs,
                self.prepared.device, unit.seed, None if maps is None else maps[:n])
            append_record(self.results, {
                "event": "unit", "session": self.session, "model": unit.model, "explainer": unit.explainer,
                "metric": unit.metric, "batch": unit.batch, **outcome,
                "seconds": round(time.perf_counter() - began, 4), "explain_seconds": explain_seconds,
                "time": time.time()})
            self.bar.update(1)
            if outcome["status"] == "failed":  # the rest of the cell is skipped
                self.failed.add(unit.cell)
                self.bar.total -= sum(1 for later in self.plan if later.cell == unit.cell
                                      and later.batch > unit.batch and later.key not in self.done)
        return len(units)


def run_evaluation(
    prepared: EvaluationSetup,
    out: str | Path,
    progress: bool = True,
    command: str = "",
    retry_failed: bool = False,
    shard: Shard | None = None,
) -> RunSummary:
    """Compute every unit of ``prepared`` (of ``shard`` only, if given) not yet in ``out/results.jsonl`` and append it
    there.

    ``retry_failed`` computes the failed cells again; otherwise a failed cell counts as done. The shards of a run
    write their own folders, which ``otnn leaderboard`` merges. Within a batch and model, perturbed inputs that do
    not depend on the explanation are forwarded once for all explainers (:func:`shared_forwards` for ours, a
    remembering model for Quantus's).
    """
    config, out = prepared.config, Path(out)
    results = open_results(out, _header(prepared, shard))
    session, started = len(results.sessions), time.time()
    append_record(results, {
        "event": "session", "session": session, "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "time": started, "command": command, "environment": environment(prepared.device),
        "export_max_abs_difference": prepared.export_differences,
    })
    done = {unit for unit, record in results.units.items() if record["status"] == "ok" or not retry_failed}
    failed = set() if retry_failed else {u[:3] for u, r in results.units.items() if r["status"] == "failed"}
    plan = list(config.units(list(prepared.models), shard))
    skipped = sum(1 for unit in plan if unit.key in done or unit.cell in failed)
    bar = progress_bar(total=len(plan), initial=skipped, desc=config.name, unit="unit", enabled=progress,
                       dynamic_ncols=True)
    work = _Pass(prepared, out, results, session, plan, done, failed, bar, set(load_examples(out)))
    computed = 0
    for (_, model), explained in groupby(plan, key=lambda u: (u.batch, u.model)):
        remembered = _RememberingModel(prepared.models[model])
        with shared_forwards():
            for _, group in groupby(explained, key=lambda u: u.explainer):
                todo = [unit for unit in group if unit.key not in done and unit.cell not in failed]
                computed += work.explain_and_score(todo, remembered) if todo else 0
    bar.close()
    failed_cells = sorted({unit[:3] for unit, record in results.units.items() if record["status"] == "failed"})
    return RunSummary(results, computed, skipped, failed_cells, time.time() - started)
