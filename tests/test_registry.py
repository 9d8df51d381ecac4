"""One registry pattern for losses, explainers, metrics and datasets: decorator registration, one list per kind."""
from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import otnn_plugin
from otnn_plugin import data, losses, metrics
from otnn_plugin._registry import Registry
from otnn_plugin.evaluate.config import metric_class, metric_names
from otnn_plugin.explainers import EXPLAIN_METHODS, explain, register_explainer


@pytest.fixture
def restored():
    """Registries changed by a test are put back as they were."""
    saved = [(registry, dict(registry._entries)) for registry in (losses.LOSSES, EXPLAIN_METHODS)]
    yield
    for registry, entries in saved:
        registry._entries = entries


def test_registry_decorator_names_lookup_and_duplicates():
    things: Registry[object] = Registry("thing")

    @things.register
    def first():
        pass

    @things.register("second-name")
    class Second:
        pass

    assert things.names() == list(things) == ["first", "second-name"]
    assert things.get("first") is first and things.get("second-name") is Second
    assert "first" in things and "Second" not in things
    with pytest.raises(ValueError, match="thing 'first' is already registered"):
        things.register("first")(Second)
    with pytest.raises(ValueError, match=r"unknown thing 'frist' \(did you mean 'first'\?\); valid: first, second"):
        things.get("frist")


def test_lazy_registry_loads_once_and_retries_a_failed_load():
    calls = []
    things: Registry[int] = Registry("thing", load=lambda: calls.append(1) or things.register("one")(1))
    assert not calls
    assert things.names() == ["one"] and things.get("one") == 1 and calls == [1]
    failing: Registry[int] = Registry("thing", load=lambda: 1 / 0)
    for _ in range(2):
        with pytest.raises(ZeroDivisionError):
            failing.names()


def test_a_registered_loss_is_built_by_name(restored):
    @losses.register_loss("l1_margin")
    class L1Margin(nn.Module):
        def __init__(self, margin: float = 1.0) -> None:
            super().__init__()
            self.margin = margin

        def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
            return (self.margin - outputs * targets).abs().mean()

    assert "l1_margin" in otnn_plugin.list_losses()
    loss = otnn_plugin.create_loss("l1_margin", margin=2.0)
    assert isinstance(loss, L1Margin) and loss.margin == 2.0
    with pytest.raises(ValueError, match="already registered"):
        losses.register_loss("hkr")(L1Margin)
    with pytest.raises(ValueError, match=r"unknown loss 'hkr_multilable' \(did you mean 'hkr_multilabel'\?\)"):
        otnn_plugin.create_loss("hkr_multilable")


def test_a_registered_explainer_is_used_by_name(restored):
    @register_explainer
    def ones(model: nn.Module, inputs: torch.Tensor, target: torch.Tensor, *, scale: float = 1.0) -> torch.Tensor:
        return torch.full_like(inputs, scale)

    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    inputs = torch.rand(2, 1, 2, 2)
    assert "ones" in EXPLAIN_METHODS and "ones" in list(EXPLAIN_METHODS)
    assert np.array_equal(explain(model, inputs, [0, 2], "ones", scale=3.0), np.full((2, 1, 2, 2), 3.0, np.float32))
    with pytest.raises(ValueError, match="already registered"):
        register_explainer(ones)
    with pytest.raises(ValueError, match=r"unknown explanation method 'salency' \(did you mean 'saliency'\?\)"):
        explain(model, inputs, [0, 2], "salency")


def test_unknown_dataset_and_metric_suggest_the_closest_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'celeb' \(did you mean 'celeba'\?\)"):
        data.load_dataset("celeb", "train")
    with pytest.raises(ValueError, match=r"unknown metric 'Deletoin' \(did you mean 'Deletion'\?\)"):
        metrics.METRICS.get("Deletoin")
    assert data.list_datasets() == ["celeba", "fashion_mnist", "imagefolder", "snowflake"]


def _classes_defined_in(package) -> list[type]:
    modules = [importlib.import_module(f"{package.__name__}.{m.name}") for m in pkgutil.iter_modules(package.__path__)]
    return [value for module in modules for value in vars(module).values()
            if inspect.isclass(value) and value.__module__ == module.__name__]


def test_every_metric_class_is_a_quantus_metric_and_listed():
    from quantus.metrics.base import Metric

    metric_classes = [cls for cls in _classes_defined_in(metrics) if issubclass(cls, Metric)]
    concrete = {cls.__name__ for cls in metric_classes if not cls.__subclasses__()}  # the bases have subclasses
    assert set(metrics.list_metrics()) == concrete
    for name in metrics.list_metrics():
        cls = getattr(metrics, name)
        assert issubclass(cls, Metric) and cls.__name__ == name and metric_class(name) is cls
    assert metric_names()[:len(concrete)] == metrics.list_metrics()  # configs name ours without a prefix


def test_every_loss_and_explainer_in_their_modules_is_listed():
    loss_classes = {cls for cls in vars(losses).values()
                    if inspect.isclass(cls) and issubclass(cls, nn.Module) and cls.__module__ == losses.__name__
                    and hasattr(cls, "output_kind")}
    assert loss_classes == {losses.loss_class(name) for name in losses.list_losses()}
    module = importlib.import_module("otnn_plugin.explainers.explain")
    public = {name for name, value in vars(module).items() if inspect.isfunction(value)
              and value.__module__ == module.__name__ and not name.startswith("_") and name != "explain"}
    assert public == set(EXPLAIN_METHODS)


def test_importing_the_package_stays_light():
    code = ("import sys, otnn_plugin, otnn_plugin.metrics.distance; "
            "print(sorted(m for m in ('quantus', 'captum', 'datasets') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
