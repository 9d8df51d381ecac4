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

:class:`EvalConfig` is a pydantic model: building one in Python runs the same checks as loading the YAML, and
``otnn schema evaluation`` prints its JSON Schema. :meth:`EvalConfig.units` is the plan: every unit of work, in
run order, with its seeds; the runner runs it and the leaderboard reads it.
"""
from __future__ import annotations

import hashlib
import importlib
import inspect
import json
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Iterator, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from .._names import unknown_name
from .._validation import DatasetName, NonNegativeInt, PositiveInt, Settings, check_keys, one_of, validated
from .._yaml import read_yaml

__all__ = [
    "EvalConfig", "ExplainerSpec", "MetricSpec", "ModelSpec", "Shard", "Unit", "load_config", "metric_class",
    "metric_names", "model_family", "unit_seed",
]

QUANTUS_PREFIX = "quantus."
WEIGHTS = ("pretrained", "random")
#: Set by the runner on every metric: one score per sample, quiet.
_RUNNER_PARAMETERS = {"return_aggregate": False, "display_progressbar": False}
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


#: The parts of a config's content that decide no other model's scores: its models (each model's scores depend on
#: its own spec alone) and the device (which draws the explainers' random numbers). Result sets that differ only
#: there belong to one comparison, which the leaderboard merges.
PER_RESULT_SET = ("models", "device")


def content_digest(content: dict[str, Any]) -> str:
    """SHA-256 (first 16 hex digits) of the canonical JSON of a config's content."""
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def comparison_hash(content: dict[str, Any]) -> str:
    """The digest of ``content`` without :data:`PER_RESULT_SET`: the same samples, seeds, explainers and metrics,
    whichever models a result set scored and on which device."""
    return content_digest({key: value for key, value in content.items() if key not in PER_RESULT_SET})


def unit_seed(seed: int, *parts: object) -> int:
    """A seed for one piece of work, from the config's seed and the work's names (stable across runs)."""
    return zlib.crc32("/".join(map(str, (seed, *parts))).encode())


def model_family(timm_name: str) -> str | None:
    """``otnn`` or ``unconstrained`` for the plugin's models (the paper's two networks), ``linear`` for the linear
    controls, else None."""
    return next((f for f in ("otnn", "unconstrained", "linear") if timm_name.startswith(f + "_")), None)


class ModelSpec(Settings):
    """A timm model, its weights and its ``timm.create_model`` arguments; a bare string is the model name."""

    label: SkipJsonSchema[str] = ""
    model: str = Field(description="timm model name, e.g. otnn_vgg_fashionmnist_small")
    weights: str = Field("pretrained", description="pretrained (the hub, else the registry), random, or a "
                                                   ".safetensors file (relative to the config's folder)")
    args: dict[str, Any] = Field(default_factory=dict, description="timm.create_model arguments")

    @model_validator(mode="before")
    @classmethod
    def _entry(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"model": data}
        if isinstance(data, dict):
            check_keys(data, cls.model_fields, "model setting")
        return data

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        import timm

        import otnn_plugin  # noqa: F401  (registers the plugin's models with timm)

        if not timm.is_model(name):
            plugin = timm.list_models(["otnn_*", "unconstrained_*"])
            raise unknown_name("timm model", name, plugin + timm.list_models(), listing=False)
        return name

    @field_validator("weights")
    @classmethod
    def _weights(cls, weights: str) -> str:
        if weights not in WEIGHTS and not weights.endswith(".safetensors"):
            raise ValueError(f"weights must be pretrained, random or a .safetensors file, got {weights!r}")
        return weights

    @property
    def family(self) -> str | None:
        return model_family(self.model)

    def content(self) -> dict[str, Any]:
        return {"model": self.model, "weights": self.weights, "args": self.args}


def explainer_settings(method: str) -> tuple[str, ...]:
    """The settings ``explain(..., method=method, **settings)`` accepts (its keyword-only parameters)."""
    from ..explainers import EXPLAIN_METHODS

    function = EXPLAIN_METHODS.get(method)
    return tuple(p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY)


def _open_entry(schema: dict[str, Any]) -> None:
    """An explainer's schema: its settings sit beside ``method``, which defaults to the explainer's label."""
    schema["additionalProperties"] = True
    schema.pop("required", None)


class ExplainerSpec(Settings):
    """An ``otnn_plugin.explain`` method (by default, the label) and its settings, written beside ``method``."""

    model_config = Settings.model_config | {"json_schema_extra": _open_entry}

    label: SkipJsonSchema[str] = ""
    method: str = Field(description="an otnn_plugin.explain method; default: the explainer's label")
    settings: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _entry(cls, data: Any) -> Any:
        """``{method: rise, n_masks: 500}`` as written in a config, or ``method=..., settings={...}`` in Python."""
        data = {} if data is None else data
        if not isinstance(data, dict) or "settings" in data:
            return data
        settings = dict(data)
        label = settings.pop("label", "")
        return {"label": label, "method": settings.pop("method", label or None), "settings": settings}

    @model_validator(mode="after")
    def _known(self) -> ExplainerSpec:
        from ..explainers import EXPLAIN_METHODS

        if self.method not in EXPLAIN_METHODS:
            raise unknown_name("explanation method", self.method, EXPLAIN_METHODS)
        check_keys(self.settings, explainer_settings(self.method), f"setting of {self.method}")
        return self

    def content(self) -> dict[str, Any]:
        return {"method": self.method, **self.settings}

    def explain_kwargs(self, seed: int | None = None) -> dict[str, Any]:
        """The ``explain_func_kwargs`` of a Quantus call; ``seed`` goes to seeded methods whose settings set none."""
        seeded = seed is not None and "seed" in explainer_settings(self.method) and "seed" not in self.settings
        return {**self.content(), **({"seed": seed} if seeded else {})}


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


def _class_direction(cls: type) -> str | None:
    value = getattr(getattr(cls, "score_direction", None), "value", None)
    return value if value in ("higher", "lower") else None


class MetricSpec(Settings):
    """A metric class by config name, its constructor parameters (written beside ``metric``), the explainers it
    runs with (None: all), its direction and how many of the first samples it scores (None: all)."""

    model_config = Settings.model_config | {"json_schema_extra": {"additionalProperties": True}}

    label: SkipJsonSchema[str] = ""
    metric: str = Field(description="ours by name (Deletion, MuFidelity, ...), Quantus's as quantus.<Class>")
    params: SkipJsonSchema[dict[str, Any]] = Field(default_factory=dict)
    direction: Literal["higher", "lower"] | None = Field(None, validate_default=True,
                                  description="higher or lower is better; default: the class's")
    explainers: tuple[str, ...] | None = Field(None, min_length=1, description="run only with these explainers")
    samples: PositiveInt | None = Field(None, description="score only the first N samples")

    @model_validator(mode="before")
    @classmethod
    def _entry(cls, data: Any) -> Any:
        """``{metric: Deletion, baseline: zero, ...}`` as written in a config, or ``params={...}`` in Python."""
        if not isinstance(data, dict) or "params" in data:
            return data
        own = ("label", "metric", "direction", "explainers", "samples")
        return {**{k: data[k] for k in own if k in data}, "params": {k: v for k, v in data.items() if k not in own}}

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, name: str) -> str:
        metric_class(name)
        return name

    @field_validator("params")
    @classmethod
    def _known_params(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        name = info.data.get("metric")
        if name is None:  # the metric itself is wrong: reported as such
            return params
        check_keys(params, [*metric_parameters(metric_class(name)),
                            *(["reference"] if name == "ExplanationDistance" else [])], f"parameter of {name}")
        for key in ("reference_func", "reference_func_kwargs"):
            if key in params:
                raise ValueError(f"give the reference explainer as reference: {{method: ..., settings}}, not {key}")
        if params.get("return_aggregate"):
            raise ValueError("return_aggregate must stay false: the leaderboard needs one score per sample")
        if name != "ExplanationDistance":
            return params
        if "reference" not in params:
            raise ValueError("ExplanationDistance needs reference: {method: smoothgrad, ...} (the explainer to "
                             "compare with)")
        return {**params, "reference": ExplainerSpec.model_validate(params["reference"]).content()}

    @field_validator("direction")
    @classmethod
    def _direction(cls, direction: str | None, info: ValidationInfo) -> str | None:
        name = info.data.get("metric")
        direction = direction or (_class_direction(metric_class(name)) if name else None)
        if name and direction not in ("higher", "lower"):
            raise ValueError(f"{name} does not say whether higher or lower scores are better (got {direction!r}): "
                             "add direction: higher or direction: lower")
        return direction

    @model_validator(mode="after")
    def _builds(self) -> MetricSpec:
        try:
            self.build(seed=0)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{self.metric}: {err}") from None
        return self

    def applies_to(self, explainer: str) -> bool:
        return self.explainers is None or explainer in self.explainers

    def rows(self, batch: slice) -> slice:
        """The rows of ``batch`` this metric scores: all of them, or those among its first ``samples``."""
        return batch if self.samples is None else slice(batch.start, min(batch.stop, self.samples))

    def content(self) -> dict[str, Any]:
        return {"metric": self.metric, **self.params, "direction": self.direction,
                "explainers": list(self.explainers) if self.explainers is not None else None,
                **({"samples": self.samples} if self.samples is not None else {})}

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
class Shard:
    """Shard ``index/count`` of a run: every ``count``-th batch from batch ``index`` (0-based).

    Whole batches, so that a sharded run computes exactly the units, with exactly the seeds, of an unsharded one.
    """

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"shard {self.index}/{self.count}: give I/N with 0 <= I < N, e.g. 0/2 and 1/2")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"``, e.g. ``"0/2"``."""
        index, _, count = str(text).partition("/")
        if not (index.isdigit() and count.isdigit()):
            raise ValueError(f"shard {text!r}: give I/N with 0 <= I < N, e.g. 0/2 and 1/2")
        return cls(int(index), int(count))

    def holds(self, batch: int) -> bool:
        return batch % self.count == self.index

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Unit:
    """One unit of work: ``metric`` scores the ``rows`` of batch ``batch`` explained by ``explainer`` on ``model``.

    ``explain_seed`` seeds the explanation of the batch (shared by the unit's metrics), ``seed`` the metric.
    """

    model: str
    explainer: str
    metric: str
    batch: int
    rows: slice
    explain_seed: int
    seed: int

    @property
    def key(self) -> tuple[str, str, str, int]:
        """How ``results.jsonl`` names the unit."""
        return self.model, self.explainer, self.metric, self.batch

    @property
    def cell(self) -> tuple[str, str, str]:
        return self.model, self.explainer, self.metric


def _labelled(section: Any, what: str) -> Any:
    """A ``label -> entry`` section with each label checked and passed to its entry."""
    if not isinstance(section, dict):
        return section
    if not section:
        raise ValueError(f"{what} is empty: list at least one")
    for label in section:
        if not isinstance(label, str) or not _LABEL.match(label):
            raise ValueError(f"{what}: label {label!r} must be letters, digits and _ . + - (it names files)")
    return {label: (entry if isinstance(entry, (str, Settings)) else {**(entry or {}), "label": label})
            for label, entry in section.items()}


def _file_schema(schema: dict[str, Any]) -> None:
    """The config file's schema: a model may be given by its name alone."""
    models = schema["properties"]["models"]
    models["additionalProperties"] = {"anyOf": [{"type": "string"}, models["additionalProperties"]]}


class EvalConfig(Settings):
    """A validated evaluation config; :meth:`content_hash` identifies its results, :meth:`units` is its plan."""

    model_config = Settings.model_config | {"json_schema_extra": _file_schema}

    name: str = Field("evaluation", description="default: the file's name")
    description: str = ""
    dataset: DatasetName
    dataset_args: dict[str, Any] = Field(default_factory=dict, description="options of the dataset's loader")
    split: Annotated[str, one_of("split", lambda: importlib.import_module("otnn_plugin.data").SPLITS)] = "test"
    samples: PositiveInt = Field(1000, description="a seeded random subset of the split, in draw order")
    label: str | None = Field(None, description="multilabel data only: the output explained")
    seed: NonNegativeInt = 0
    batch_size: PositiveInt = Field(32, description="samples per explanation and metric call")
    device: str = Field("auto", description="auto (CUDA when present), cpu, cuda, cuda:N")
    plan: Literal[1, 2] = Field(2, description=(
        "how units are seeded: 2 draws each metric's randomness (baselines, subsets, neighbours) and each "
        "explainer's (noise, masks) once per batch, the same for every model and explainer, so comparisons are "
        "paired and shared perturbations are forwarded once; 1 drew them per model and explainer (the results "
        "committed before plan 2)"))
    models: dict[str, ModelSpec]
    explainers: dict[str, ExplainerSpec]
    metrics: dict[str, MetricSpec]
    folder: SkipJsonSchema[Path] = Path(".")

    @model_validator(mode="before")
    @classmethod
    def _sections(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_keys(data, cls.model_fields)
            missing = [key for key in ("dataset", "models", "explainers", "metrics") if key not in data]
            if missing:
                raise ValueError(f"missing setting(s) {', '.join(missing)}")
            data = {**data, **{key: _labelled(data[key], key) for key in ("models", "explainers", "metrics")}}
        return data

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> EvalConfig:
        from ..data import label_names

        if self.label is not None:
            names = label_names(self.dataset, **self.dataset_args)
            if self.label not in names:
                raise unknown_name("label", self.label, names, f"{self.dataset}: ")
        for label, metric in self.metrics.items():
            for explainer in metric.explainers or ():
                if explainer not in self.explainers:
                    raise unknown_name("explainer", explainer, self.explainers, f"metrics.{label}: ")
            if metric.samples is not None and metric.samples >= self.samples:  # it covers every sample
                self.metrics[label] = metric.model_copy(update={"samples": None})
        if (info.context or {}).get("check_files", True):
            for label, model in self.models.items():
                path = self.weights_path(model)
                if path is not None and not path.is_file():
                    raise FileNotFoundError(f"models.{label}: weights file {path} not found")
        return self

    @classmethod
    def from_content(cls, content: dict[str, Any], **identity: Any) -> EvalConfig:
        """The config whose :meth:`content` is ``content`` (as a results file records it); ``identity`` gives the
        name, description or folder. Weights files are not looked for: the config describes finished work."""
        return validated(cls, {"plan": 1, **content, **identity}, f"{identity.get('name', 'config')}: ",
                         context={"check_files": False})

    def content(self) -> dict[str, Any]:
        """Everything that decides the scores, as plain data (not the name, description or folder)."""
        return {
            "dataset": self.dataset, "dataset_args": self.dataset_args, "split": self.split, "samples": self.samples,
            "label": self.label, "seed": self.seed, "batch_size": self.batch_size, "device": self.device,
            **({"plan": self.plan} if self.plan != 1 else {}),
            "models": {label: m.content() for label, m in self.models.items()},
            "explainers": {label: e.content() for label, e in self.explainers.items()},
            "metrics": {label: m.content() for label, m in self.metrics.items()},
        }

    def content_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`content`."""
        return content_digest(self.content())

    def weights_path(self, model: ModelSpec) -> Path | None:
        """The safetensors file of a model whose weights are a file (relative paths: to the config's folder)."""
        if model.weights in WEIGHTS:
            return None
        path = Path(model.weights).expanduser()
        return path if path.is_absolute() else self.folder / path

    def batches(self) -> list[slice]:
        """The sample rows of each batch."""
        return [slice(start, min(start + self.batch_size, self.samples))
                for start in range(0, self.samples, self.batch_size)]

    def units(self, models: list[str] | None = None, shard: Shard | None = None) -> Iterator[Unit]:
        """Every unit of work (of ``models`` and ``shard`` only, if given) in run order: batch by batch, so that a
        stopped run has scored the same samples in every cell; within a batch, model, explainer, then metric. Seeds
        come from the config's seed and the unit's names, so a resumed or sharded run gives the scores an
        uninterrupted one gives."""
        for b, rows in enumerate(self.batches()):
            if shard is not None and not shard.holds(b):
                continue
            for model in self.models:
                if models is not None and model not in models:
                    continue
                for explainer in self.explainers:
                    paired = () if self.plan == 2 else (model,)  # plan 2: the same draws for every model
                    explain_seed = unit_seed(self.seed, *paired, explainer, b)
                    for label, metric in self.metrics.items():
                        scored = metric.rows(rows)
                        if metric.applies_to(explainer) and scored.stop > scored.start:
                            metric_seed = (unit_seed(self.seed, label, b) if self.plan == 2
                                           else unit_seed(self.seed, model, explainer, label, b))
                            yield Unit(model, explainer, label, b, scored, explain_seed, metric_seed)


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
    weights = overrides.pop("weights", None)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    if weights is not None and isinstance(raw.get("models"), dict):
        raw["models"] = {label: {**({"model": e} if isinstance(e, str) else e), "weights": weights}
                         for label, e in raw["models"].items()}
    raw.setdefault("name", path.stem)
    return validated(EvalConfig, {**raw, "folder": path.parent}, f"{path}: ")
