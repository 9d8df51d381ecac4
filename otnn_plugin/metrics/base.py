"""The Quantus adapter of the metrics: Quantus's ``Metric`` contract on one side, batched torch on the other.

Every metric of this package is a ``quantus.Metric``, so ``quantus.evaluate`` and a direct call
``metric(model=..., x_batch=..., y_batch=..., a_batch=..., explain_func=..., device=...)`` work as for Quantus's own
metrics. Quantus hands ``evaluate_batch`` numpy arrays and a wrapped model; :class:`TorchMetric` turns each batch into
tensors once, on the device of the model's parameters, and the metric works in torch from there.

Quantus's ``abs`` and ``normalise`` options rewrite the attributions before a metric sees them; here both default to
False, so that every metric computes the paper's definition on the explanation as given. The perturbations the
metrics share (baselines, pixel ranks, masks, curves) are in :mod:`otnn_plugin.metrics.perturbation`.
"""
from __future__ import annotations

from typing import Any, Callable, ClassVar, Literal

import numpy as np
import torch
from quantus.helpers import utils
from quantus.helpers.enums import DataType, ModelType
from quantus.helpers.model.model_interface import ModelInterface
from quantus.helpers.model.pytorch_model import PyTorchModel
from quantus.metrics.base import Metric
from torch import Tensor, nn

from .._finite import check_finite, check_model_outputs
from ..lipschitz import explaining

__all__ = [
    "Network", "Score", "SeededMetric", "TorchMetric", "check_attributions", "check_explanations", "check_targets",
]

#: How a metric reads the model's output for the target: raw, or as a probability (:meth:`Network.select`).
Score = Literal["logit", "probability"]


class Network:
    """The torch module behind a Quantus model wrapper, with its device and outputs shaped ``(N, K)``.

    A ``quantus`` ``PyTorchModel`` gives its softmax-adjusted module (the metric call's ``softmax`` argument) and its
    ``model_predict_kwargs``; a bare ``nn.Module`` is used as it is. ``identity`` tells apart the functions two
    networks compute (the wrapped module, softmax or not, predict arguments) for :func:`shared_forwards`.

    A module with a true ``sigmoid_outputs`` attribute (as :class:`~otnn_plugin.evaluate.label_sides.LabelSides`)
    declares that each output column is a logit of its own, not one of a softmax: see :meth:`select`.
    """

    def __init__(self, model: ModelInterface | nn.Module):
        if isinstance(model, PyTorchModel):
            self.module, self.predict_kwargs = model.get_softmax_arg_model(), dict(model.model_predict_kwargs)
            self.identity: tuple = (id(model.model), model.softmax, repr(sorted(self.predict_kwargs.items())))
        elif isinstance(model, nn.Module):
            self.module, self.predict_kwargs = model, {}
            self.identity = (id(model), False, "[]")
        else:
            raise ValueError(f"these metrics need a torch model (nn.Module or quantus PyTorchModel), got "
                             f"{type(model).__name__}")
        self.wrapped = model
        self.softmax = isinstance(model, PyTorchModel) and bool(model.softmax)
        self.sigmoid_outputs = bool(getattr(self.module, "sigmoid_outputs", False))
        parameter = next(self.module.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")

    def __call__(self, inputs: Tensor) -> Tensor:
        return self.module(inputs, **self.predict_kwargs).reshape(len(inputs), -1)

    def target_scores(self, inputs: Tensor, targets: Tensor, score: Score = "logit") -> Tensor:
        """Output ``targets[i]`` of sample ``i`` as :meth:`select` reads it, shape ``(N,)``."""
        outputs = self(inputs)
        check_targets(targets, outputs.shape[1])
        return self.select(outputs, targets, score)

    def select(self, outputs: Tensor, targets: Tensor, score: Score = "logit") -> Tensor:
        """Column ``targets[i]`` of row ``i`` of ``outputs`` ``(N, K)``, shape ``(N,)``.

        ``"logit"``: the output as it is. ``"probability"``: its softmax over the row for a multiclass model; its
        sigmoid for a single output or a module with ``sigmoid_outputs`` (the explained side ``±f`` of a label as
        :class:`~otnn_plugin.evaluate.label_sides.LabelSides` gives it: ``sigmoid(±f)``, not the softmax of
        ``(-f, f)``, which is ``sigmoid(±2f)``).
        """
        if score == "probability" and self.softmax:
            raise ValueError("score='probability' would apply a second softmax: call the metric with softmax=False, "
                             "or use score='logit'")
        own = outputs.gather(1, targets[:, None]).squeeze(1)
        if score == "logit":
            return own
        if outputs.shape[1] == 1 or self.sigmoid_outputs:
            return own.sigmoid()
        return (own - outputs.logsumexp(1)).exp()


def check_targets(targets: Tensor, n_outputs: int) -> None:
    """Raise ``ValueError`` unless every target indexes one of the ``n_outputs`` model outputs."""
    low, high = torch.stack(torch.aminmax(targets)).tolist()
    if low < 0 or high >= n_outputs:
        raise ValueError(f"targets must index the {n_outputs} model outputs (0 to {n_outputs - 1}), got values in "
                         f"[{low}, {high}]")


def check_attributions(a_shape: tuple[int, ...], x_shape: tuple[int, ...]) -> None:
    """Raise ``ValueError`` unless ``a_shape`` is ``(B, C, H, W)``, ``(B, 1, H, W)`` or ``(B, H, W)`` for ``x``."""
    batch, channels, height, width = x_shape
    if len(a_shape) == 0 or a_shape[0] != batch:
        raise ValueError(f"a_batch has {a_shape[0] if a_shape else 0} samples but x_batch has {batch}: give one "
                         "explanation per input")
    if tuple(a_shape[1:]) not in {(channels, height, width), (1, height, width), (height, width)}:
        raise ValueError(f"a_batch has shape {tuple(a_shape)}, which does not match x_batch {tuple(x_shape)}: "
                         f"expected per-sample maps of shape {(channels, height, width)}, {(1, height, width)} "
                         f"or {(height, width)}")


def check_explanations(a: Tensor) -> None:
    """Raise ``ValueError`` naming the samples of the attributions ``a`` that hold NaN or infinite values."""
    check_finite(a, "a_batch", "fix the explanation method, or drop those samples")


def _check_call(x_batch: Any, y_batch: Any, a_batch: Any, channel_first: bool | None) -> None:
    """Validate a call's raw inputs before Quantus touches them, so that bad ones give a clear ``ValueError``."""
    x_shape = np.shape(x_batch)
    if len(x_shape) == 0 or x_shape[0] == 0:
        raise ValueError("x_batch is empty: pass at least one input")
    if len(x_shape) != 4:
        one_image = ": one image needs a batch dimension, x[None]" if len(x_shape) == 3 else ""
        raise ValueError(f"x_batch has shape {x_shape}: these metrics take image batches (N, C, H, W), or "
                         f"(N, H, W, C) with channel_first=False{one_image}")
    check_finite(torch.as_tensor(x_batch), "x_batch", "drop or repair those inputs")
    if y_batch is not None and len(y_batch) != x_shape[0]:
        raise ValueError(f"y_batch has {len(y_batch)} targets but x_batch has {x_shape[0]} inputs")
    if a_batch is None:
        return
    a = torch.as_tensor(np.asarray(a_batch))
    if channel_first is None:
        channel_first = utils.infer_channel_first(np.broadcast_to(np.uint8(0), x_shape))
    if not channel_first:
        x_shape = (x_shape[0], x_shape[3], x_shape[1], x_shape[2])
        a = a.movedim(-1, 1) if a.ndim == 4 else a
    check_attributions(tuple(a.shape), x_shape)
    check_explanations(a)


class TorchMetric(Metric[list[float]]):
    """A ``quantus.Metric`` computed in batched torch on the model's device; subclasses implement :meth:`score`.

    ``batch_size`` (constructor) is the number of perturbed inputs per forward pass; the ``batch_size`` argument of
    a call is Quantus's: the number of samples handed to each ``evaluate_batch``.
    """

    data_applicability: ClassVar[set[DataType]] = {DataType.IMAGE}
    model_applicability: ClassVar[set[ModelType]] = {ModelType.TORCH}

    def __init__(
        self,
        batch_size: int = 256,
        abs: bool = False,
        normalise: bool = False,
        normalise_func: Callable[[np.ndarray], np.ndarray] | None = None,
        normalise_func_kwargs: dict[str, Any] | None = None,
        return_aggregate: bool = False,
        aggregate_func: Callable | None = None,
        default_plot_func: Callable | None = None,
        disable_warnings: bool = False,
        display_progressbar: bool = False,
        **kwargs,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive number of inputs per forward pass, got {batch_size}")
        super().__init__(
            abs=abs,
            normalise=normalise,
            normalise_func=normalise_func,
            normalise_func_kwargs=normalise_func_kwargs,
            return_aggregate=return_aggregate,
            aggregate_func=aggregate_func,
            default_plot_func=default_plot_func,
            disable_warnings=disable_warnings,
            display_progressbar=display_progressbar,
            **kwargs,
        )
        self.batch_size = batch_size

    def __call__(
        self,
        model: nn.Module | None,
        x_batch: np.ndarray,
        y_batch: np.ndarray | None,
        a_batch: np.ndarray | None = None,
        s_batch: np.ndarray | None = None,
        channel_first: bool | None = None,
        explain_func: Callable | None = None,
        explain_func_kwargs: dict | None = None,
        model_predict_kwargs: dict | None = None,
        softmax: bool = False,
        device: str | None = None,
        batch_size: int = 64,
        custom_batch: Any = None,
        **kwargs,
    ) -> list[float]:
        """One score per sample (or their aggregate with ``return_aggregate``); arguments as for Quantus metrics."""
        _check_call(x_batch, y_batch, a_batch, channel_first)
        return super().__call__(
            model=model,
            x_batch=x_batch,
            y_batch=y_batch,
            a_batch=a_batch,
            s_batch=s_batch,
            custom_batch=custom_batch,
            channel_first=channel_first,
            explain_func=explain_func,
            explain_func_kwargs=explain_func_kwargs,
            model_predict_kwargs=model_predict_kwargs,
            softmax=softmax,
            device=device,
            batch_size=batch_size,
            **kwargs,
        )

    def evaluate_batch(self, model, x_batch, y_batch, a_batch, **kwargs) -> list[float]:
        net, x, y, a = self.tensors(model, x_batch, y_batch, a_batch)
        with explaining(net.module):
            return self.score(net, x, y, a).tolist()

    @staticmethod
    def tensors(model, x_batch, y_batch, a_batch) -> tuple[Network, Tensor, Tensor, Tensor]:
        """The network and the batch as tensors on its device; the model's outputs checked, attributions checked and
        shaped ``(B, 1|C, H, W)``."""
        net = model if isinstance(model, Network) else Network(model)
        x = torch.as_tensor(x_batch, dtype=torch.float32, device=net.device)
        y = torch.as_tensor(y_batch, device=net.device).long().reshape(-1)
        a = torch.as_tensor(a_batch, dtype=torch.float32, device=net.device)
        with explaining(net.module), torch.no_grad():  # one forward: a broken model gives one clear error
            check_model_outputs(net(x))
        check_attributions(tuple(a.shape), tuple(x.shape))
        check_explanations(a)
        if a.ndim == 3:
            a = a[:, None]
        return net, x, y, a

    def score(self, net: Network, x: Tensor, y: Tensor, a: Tensor) -> Tensor:
        """Scores ``(B,)`` of inputs ``x`` ``(B, C, H, W)``, targets ``y`` ``(B,)``, attributions ``(B, 1|C, H, W)``."""
        raise NotImplementedError

    def explain_inputs(self, net: Network, x: Tensor, y: Tensor) -> Tensor:
        """Explanations of new inputs ``x`` for targets ``y``, on ``x``'s device, made as Quantus's
        ``Metric.explain_batch`` makes them: the call's ``explain_func`` and ``explain_func_kwargs`` on the unwrapped
        model, then ``normalise`` and ``abs`` if configured. Its checks (finite; not all zero, all one, all equal or
        all negative) run as tensor operations: Quantus's ``assert_attributions`` turns every value into a Python
        float, which took 4 s per 250 CelebA maps and most of a Stability call on a GPU."""
        model = net.wrapped.get_model() if isinstance(net.wrapped, ModelInterface) else net.wrapped
        inputs = x.detach().cpu().numpy()
        a = self.explain_func(model=model, inputs=inputs, targets=y.detach().cpu().numpy(), **self.explain_func_kwargs)
        a = torch.as_tensor(utils.expand_attribution_channel(np.asarray(a), inputs), device=x.device)
        check_attributions(tuple(a.shape), tuple(x.shape))
        check_explanations(a)
        if (a == a.flatten()[0]).all() or (a < 0).all():  # all equal covers Quantus's all-zero and all-one
            raise ValueError("the explanations of the perturbed inputs are all zero, all one, all equal or all "
                             "negative: metrics that rank their values cannot use them; check the explain_func")
        if self.normalise:
            a = torch.as_tensor(self.normalise_func(a.cpu().numpy()), device=x.device)
        return a.abs() if self.abs else a


class SeededMetric(TorchMetric):
    """A metric that draws random numbers: its generator restarts from ``seed`` at every call, so calls repeat.

    Draws are made on the CPU, then moved to the model's device, so that results do not depend on the device.
    """

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, *args, **kwargs) -> list[float]:
        self.generator.manual_seed(self.seed)
        return super().__call__(*args, **kwargs)
