"""Evaluation configs: which models, data, explainers and metrics to run side by side (``evaluations/*.yaml``).

A config is a YAML mapping::

    dataset: fashion_mnist          # otnn_plugin.data.list_datasets()
    split: test
    samples: 64                     # a seeded random subset of the split, in draw order
    label: Mustache                 # multilabel data only: each sample is explained for its side of it
    seed: 0
    batch_size: 32                  # samples per explanation and metric call
    device: auto                    # auto (CUDA when present), cpu, cuda, cuda:N
    models:                         # label -> timm name, or a mapping
      OTNN: {model: otnn_vgg_fashionmnist_small, weights: pretrained}   # pretrained | random | file.safetensors
    explainers:                     # label -> settings of an otnn_plugin.explain method (the label by default)
      saliency: {}
      rise_500: {method: rise, n_masks: 500}
    metrics:                        # label -> metric class (ours by name, Quantus's as quantus.Name) and parameters
      deletion_zero: {metric: Deletion, baseline: zero}
      sparseness: {metric: quantus.Sparseness, explainers: [saliency], direction: higher}
      robustness_sr: {metric: RobustnessSr, samples: 32}   # an expensive metric on the first 32 samples only

Unknown names (models, explainers, metrics, settings, parameters) are reported with the closest valid one. The
metric keys ``explainers`` (run only with these explainer labels), ``samples`` (score only the first N samples;
they are a random draw too, as samples are kept in draw order) and ``direction`` (``higher`` / ``lower``,
default: the class's ``score_direction``) are ours; ``reference`` gives :class:`ExplanationDistance` the
explainer to compare with (e.g. ``{method: smoothgrad}`` for the paper's Table 2). Every other key is a
constructor parameter of the metric class. Paper settings: appendix A.4 of arXiv:2206.06854.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .._names import unknown_name
from .._yaml import read_yaml

__all__ = [
    "EvalConfig", "ExplainerSpec", "MetricSpec", "ModelSpec", "load_config", "metric_class",
    "metric_names", "model_family",
]

QUANTUS_PREFIX = "quantus."
WEIGHTS = ("pretrained", "random")
DIRECTIONS = ("higher", "lower")
#: Set by the runner on every metric: one score per sample, quiet.
_RUNNER_PARAMETERS = {"return_aggregate": False, "display_progressbar": False}
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
_TOP_LEVEL = ("name", "description", "dataset", "dataset_args", "split", "samples", "label", "seed", "batch_size",
              "device", "models", "explainers", "metrics")


@dataclass(frozen=True)
class ModelSpec:
    """A timm model, its weights (``pretrained``: the hub, else ``registry/``; ``random``; or a safetensors file)
    and ``timm.create_model`` arguments."""

    label: str
    model: str
    weights: str = "pretrained"
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def family(self) -> str | None:
        return model_family(self.model)


def model_family(timm_name: str) -> str | None:
    """``otnn`` or ``unconstrained`` for the plugin's models (the paper's two networks), else None."""
    return next((f for f in ("otnn", "unconstrained") if timm_name.startswith(f + "_")), None)


@dataclass(frozen=True)
class ExplainerSpec:
    """An ``otnn_plugin.explain`` method and its settings."""

    label: str
    method: str
    settings: dict[str, Any] = field(default_factory=dict)

    def explain_kwargs(self) -> dict[str, Any]:
        """The ``explain_func_kwargs`` of a Quantus call."""
        return {"method": self.method, **self.settings}


@dataclass(frozen=True)
class MetricSpec:
    """A metric class by config name, its constructor parameters as written, the explainers it runs with (None:
    all) and its direction (``higher`` or ``lower`` is better)."""

    label: str
    metric: str
    params: dict[str, Any]
    direction: str
    explainers: tuple[str, ...] | None = None
    samples: int | None = None

    def applies_to(self, explainer: str) -> bool:
        return self.explainers is None or explainer in self.explainers

    def rows(self, batch: slice) -> slice:
        """The rows of ``batch`` this metric scores: all of them, or those among its first ``samples``."""
        return batch if self.samples is None else slice(batch.start, min(batch.stop, self.samples))

    def build(self, seed: int | None = None):
        """A fresh metric instance; ``seed`` goes to metrics that take one, unless the config sets it."""
        cls = metric_class(self.metric)
        params = dict(self.params)
        if "reference" in params:
            from ..explainers import explain

            reference = dict(params.pop("reference"))
            params.update(reference_func=explain, reference_func_kwargs=reference)
        accepted = metric_parameters(cls)
        if seed is not None and "seed" in accepted:
            params.setdefault("seed", seed)
        if "disable_warnings" in accepted:
            params.setdefault("disable_warnings", True)
        params.update({k: v for k, v in _RUNNER_PARAMETERS.items() if k in accepted})
        return cls(**params)


@dataclass(frozen=True)
class EvalConfig:
    """A validated evaluation config; :meth:`content_hash` identifies its results."""

    name: str
    dataset: str
    models: tuple[ModelSpec, ...]
    explainers: tuple[ExplainerSpec, ...]
    metrics: tuple[MetricSpec, ...]
    split: str = "test"
    samples: int = 1000
    label: str | None = None
    seed: int = 0
    batch_size: int = 32
    device: str = "auto"
    dataset_args: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    folder: Path = Path(".")

    def content(self) -> dict[str, Any]:
        """Everything that decides the scores, as plain data (not the name, description or folder)."""
        return {
            "dataset": self.dataset, "dataset_args": self.dataset_args, "split": self.split, "samples": self.samples,
            "label": self.label, "seed": self.seed, "batch_size": self.batch_size, "device": self.device,
            "models": {m.label: {"model": m.model, "weights": m.weights, "args": m.args} for m in self.models},
            "explainers": {e.label: {"method": e.method, **e.settings} for e in self.explainers},
            "metrics": {m.label: {"metric": m.metric, **m.params, "direction": m.direction,
                                  "explainers": list(m.explainers) if m.explainers is not None else None,
                                  **({"samples": m.samples} if m.samples is not None else {})}
                        for m in self.metrics},
        }

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`content`."""
        canonical = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def weights_path(self, model: ModelSpec) -> Path | None:
        """The safetensors file of a model whose weights are a file (relative paths: to the config's folder)."""
        return _weights_file(model.weights, self.folder)


def _weights_file(weights: str, folder: Path) -> Path | None:
    if weights in WEIGHTS:
        return None
    path = Path(weights).expanduser()
    return path if path.is_absolute() else folder / path


def metric_names() -> list[str]:
    """Every name a config may give as ``metric``: ours, then Quantus's ``quantus.<class name>``."""
    import quantus
    from quantus.metrics.base import Metric

    from ..metrics import list_metrics

    found = [n for n, v in vars(quantus).items() if isinstance(v, type) and issubclass(v, Metric) and v is not Metric]
    return [*list_metrics(), *sorted(QUANTUS_PREFIX + n for n in found)]


def metric_class(name: str) -> type:
    """The metric class a config names (``Deletion``, ``quantus.PixelFlipping``, ...)."""
    valid = metric_names()
    if name not in valid:
        raise unknown_name("metric", name, valid, listing=False)
    if name.startswith(QUANTUS_PREFIX):
        import quantus

        return getattr(quantus, name[len(QUANTUS_PREFIX):])
    from .. import metrics

    return getattr(metrics, name)


def metric_parameters(cls: type) -> tuple[str, ...]:
    """Constructor parameters of a metric class, following ``**kwargs`` up to Quantus's ``Metric`` base."""
    from quantus.metrics.base import Metric

    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = list(inspect.signature(klass.__init__).parameters.values())[1:]
        names += [p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if klass is Metric or not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return tuple(dict.fromkeys(names))


def explainer_settings(method: str) -> tuple[str, ...]:
    """The settings ``explain(..., method=method, **settings)`` accepts (its keyword-only parameters)."""
    function = getattr(importlib.import_module("otnn_plugin.explainers.explain"), method)
    return tuple(p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be a mapping, got {type(value).__name__}: {value!r}")
    return value


def _check_keys(raw: dict, valid: Iterable[str], kind: str, context: str) -> None:
    valid = list(valid)
    for key in raw:
        if key not in valid:
            raise unknown_name(kind, key, valid, context)


def _positive_int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def _labels(section: Any, what: str, context: str) -> dict:
    entries = _mapping(section, f"{context}{what}")
    if not entries:
        raise ValueError(f"{context}{what} is empty: list at least one")
    for label in entries:
        if not isinstance(label, str) or not _LABEL.match(label):
            raise ValueError(f"{context}{what}: label {label!r} must be letters, digits and _ . + - (it names files)")
    return entries


def _model(label: str, entry: Any, folder: Path, context: str, weights: str | None) -> ModelSpec:
    import timm

    import otnn_plugin  # noqa: F401  (registers the plugin's models with timm)

    entry = {"model": entry} if isinstance(entry, str) else _mapping(entry, f"{context}models.{label}")
    _check_keys(entry, ("model", "weights", "args"), "model setting", f"{context}models.{label}: ")
    if "model" not in entry:
        raise ValueError(f"{context}models.{label}: give the timm model name as model:")
    name, weights = entry["model"], weights or entry.get("weights", "pretrained")
    if not isinstance(name, str) or not timm.is_model(name):
        plugin = timm.list_models(["otnn_*", "unconstrained_*"])
        raise unknown_name("timm model", name, plugin + timm.list_models(), f"{context}models.{label}: ",
                           listing=False)
    if not isinstance(weights, str) or not (weights in WEIGHTS or weights.endswith(".safetensors")):
        raise ValueError(f"{context}models.{label}: weights must be pretrained, random or a .safetensors file, "
                         f"got {weights!r}")
    spec = ModelSpec(label, name, weights, dict(_mapping(entry.get("args"), f"{context}models.{label}.args")))
    path = _weights_file(weights, folder)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"{context}models.{label}: weights file {path} not found")
    return spec


def _explainer_settings(raw: dict, context: str) -> tuple[str, dict]:
    from ..explainers import EXPLAIN_METHODS

    settings = dict(raw)
    method = settings.pop("method", None)
    if method not in EXPLAIN_METHODS:
        raise unknown_name("explanation method", method, EXPLAIN_METHODS, context)
    _check_keys(settings, explainer_settings(method), f"setting of {method}", context)
    return method, settings


def _explainer(label: str, entry: Any, context: str) -> ExplainerSpec:
    raw = {"method": label, **_mapping(entry, f"{context}explainers.{label}")}
    method, settings = _explainer_settings(raw, f"{context}explainers.{label}: ")
    return ExplainerSpec(label, method, settings)


def _metric(label: str, entry: Any, explainers: list[str], samples: int, context: str) -> MetricSpec:
    """A validated metric entry; its ``samples`` is capped at the config's (None when it covers them all)."""
    where = f"{context}metrics.{label}: "
    params = dict(_mapping(entry, f"{context}metrics.{label}"))
    name = params.pop("metric", None)
    if name is None:
        raise ValueError(f"{where}give the metric class as metric: (e.g. Deletion or quantus.PixelFlipping)")
    try:
        cls = metric_class(name)
    except ValueError as err:
        raise ValueError(f"{where}{err}") from None
    only = params.pop("explainers", None)
    if only is not None:
        if not isinstance(only, list) or not only:
            raise ValueError(f"{where}explainers must be a non-empty list of explainer labels, got {only!r}")
        for explainer in only:
            if explainer not in explainers:
                raise unknown_name("explainer", explainer, explainers, where)
    own_samples = params.pop("samples", None)
    if own_samples is not None:
        own_samples = _positive_int(own_samples, f"{where}samples")
        own_samples = own_samples if own_samples < samples else None
    accepted = metric_parameters(cls)
    _check_keys(params, [*accepted, "direction", *(["reference"] if name == "ExplanationDistance" else [])],
                f"parameter of {name}", where)
    for key in ("reference_func", "reference_func_kwargs"):
        if key in params:
            raise ValueError(f"{where}give the reference explainer as reference: {{method: ..., settings}}, not {key}")
    if name == "ExplanationDistance":
        if "reference" not in params:
            raise ValueError(f"{where}ExplanationDistance needs reference: {{method: smoothgrad, ...}} (the "
                             "explainer to compare with)")
        method, settings = _explainer_settings(_mapping(params["reference"], f"{where}reference"),
                                               f"{where}reference: ")
        params["reference"] = {"method": method, **settings}
    if params.get("return_aggregate"):
        raise ValueError(f"{where}return_aggregate must stay false: the leaderboard needs one score per sample")
    direction = params.pop("direction", None) or _class_direction(cls)
    if direction not in DIRECTIONS:
        raise ValueError(f"{where}{name} does not say whether higher or lower scores are better (got "
                         f"{direction!r}): add direction: higher or direction: lower")
    spec = MetricSpec(label, name, params, direction, tuple(only) if only is not None else None, own_samples)
    try:
        spec.build(seed=0)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}{name}: {err}") from None
    return spec


def _class_direction(cls: type) -> str | None:
    value = getattr(getattr(cls, "score_direction", None), "value", None)
    return value if value in DIRECTIONS else None


def _read_yaml(path: Path) -> dict:
    raw = read_yaml(path, "evaluation config")
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must be a mapping of settings, got {type(raw).__name__}")
    return raw


def load_config(path: str | Path, **overrides: Any) -> EvalConfig:
    """Read and validate an evaluation config; ``overrides`` (``None`` values ignored) replace its top-level
    settings, e.g. ``samples=8`` for a smoke test or ``weights="random"`` for every model."""
    path = Path(path)
    raw = _read_yaml(path)
    context = f"{path}: "
    weights = overrides.pop("weights", None)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    _check_keys(raw, _TOP_LEVEL, "setting", context)
    missing = [key for key in ("dataset", "models", "explainers", "metrics") if key not in raw]
    if missing:
        raise ValueError(f"{context}missing setting(s) {', '.join(missing)}")

    from ..data import SPLITS, label_names, list_datasets

    dataset, split, label = raw["dataset"], raw.get("split", "test"), raw.get("label")
    if dataset not in list_datasets():
        raise unknown_name("dataset", dataset, list_datasets(), context)
    if split not in SPLITS:
        raise unknown_name("split", split, SPLITS, context)
    dataset_args = dict(_mapping(raw.get("dataset_args"), f"{context}dataset_args"))
    if label is not None:
        names = label_names(dataset, **dataset_args)
        if label not in names:
            raise unknown_name("label", label, names, f"{context}{dataset}: ")
    explainer_entries = _labels(raw["explainers"], "explainers", context)
    explainers = tuple(_explainer(k, v, context) for k, v in explainer_entries.items())
    models = tuple(_model(k, v, path.parent, context, weights)
                   for k, v in _labels(raw["models"], "models", context).items())
    samples = _positive_int(raw.get("samples", 1000), f"{context}samples")
    metrics = tuple(_metric(k, v, list(explainer_entries), samples, context)
                    for k, v in _labels(raw["metrics"], "metrics", context).items())
    device = raw.get("device", "auto")
    if not isinstance(device, str):
        raise ValueError(f"{context}device must be auto, cpu, cuda or cuda:N, got {device!r}")
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{context}seed must be a non-negative integer, got {seed!r}")
    return EvalConfig(
        name=str(raw.get("name", path.stem)), dataset=dataset, models=models, explainers=explainers,
        metrics=metrics, split=split, samples=samples,
        label=label, seed=seed, batch_size=_positive_int(raw.get("batch_size", 32), f"{context}batch_size"),
        device=device, dataset_args=dataset_args, description=str(raw.get("description", "")), folder=path.parent,
    )
