"""The hKR loss family of the paper (Eq. 1, 3, 4, 5 and a multilabel Eq. 3), registered by name.

An OTNN is a 1-Lipschitz network trained with the hinge-regularised Kantorovich-Rubinstein (hKR) loss: the KR part
``mean_{y=-1} f - mean_{y=+1} f`` is the dual of the 1-Wasserstein distance between the two classes, and the hinge
part ``lam * mean (m - y f)_+`` makes ``sign(f)`` a classifier with margin ``m`` (paper Sec. 2).

=======================  ===========================  ======================================================
name                     paper                        defaults
=======================  ===========================  ======================================================
``hkr``                  Eq. 1                        ``lam=10, margin=0.5`` (Table 8, fixed margin)
``hkr_auto``             Eq. 3, learned margin        ``alpha=0.1, lam=1/alpha, init_margin=0.5`` (Table 8)
``hkr_multiclass``       Eq. 4                        ``lam=10, margin=0.5`` (Table 8)
``soft_hkr_multiclass``  Eq. 5, a margin per class    ``alpha=0.2, lam=1/alpha, init_margin=0.5, temperature=1``
                                                      (A.2.3, Fashion-MNIST); needs ``num_classes``
``hkr_multilabel``       Eq. 3 per label              ``alpha=0.05, lam=1/alpha, init_margin=0.5`` (A.2.3,
                                                      CelebA); needs ``num_labels``
=======================  ===========================  ======================================================

All are batch estimates, and a mean over an empty side of the batch counts 0. deel-torchlip's losses are not these:
none learns its margin, and its soft multiclass loss hinges each term apart with a fixed margin.

* **Sign of the margin penalty.** Eq. 3 and 5 are printed with ``+ alpha * m``, but then both terms grow with ``m``
  and minimising drives it to 0. The paper's text says the optimal margin is where the fraction of samples with
  ``y f(x) <= m`` is ``alpha``; that holds with ``- alpha * m`` (the gradient in ``m`` is ``lam * (P(y f < m) -
  alpha)``), which is what we implement.
* **Learned margins** are ``m = softplus(raw_margin)``, so ``m > 0`` with no projection step in the optimiser.
  Unlike a clamp, whose gradient vanishes below 0 and can leave ``m`` stuck there, softplus has a positive slope
  everywhere, and being monotone it keeps the optimum ``P(y f < m) = alpha``; ``m`` tends to 0 when that fraction
  already exceeds ``alpha`` at ``m = 0``. ``loss.margin`` is the effective margin for every loss.
* **Targets.** Binary and multilabel targets may be {0, 1} or {-1, +1}: a target ``> 0`` is positive, so a batch
  of ones is positive in either encoding. A tensor mixing 0 and -1, or holding any other value, is refused.
  Multiclass targets are integer class indices.
"""
from __future__ import annotations

import inspect
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ._names import unknown_name
from ._registry import Registry

__all__ = [
    "LOSSES",
    "loss_class",
    "NonFiniteOutputsError",
    "HKRLoss",
    "HKRAutoLoss",
    "HKRMulticlassLoss",
    "SoftHKRMulticlassLoss",
    "HKRMultilabelLoss",
    "OutputKind",
    "check_outputs",
    "create_loss",
    "list_losses",
    "register_loss",
]

#: The model head a loss expects: one output, one output per class, or one output per label.
OutputKind = Literal["binary", "multiclass", "multilabel"]

#: Every loss by name; ``@register_loss("name")`` on an ``nn.Module`` class adds one to :func:`create_loss`.
LOSSES: Registry[type[nn.Module]] = Registry("loss")
register_loss = LOSSES.register


class NonFiniteOutputsError(ValueError):
    """The outputs handed to a loss hold NaN or inf: the model diverged, or its input is bad."""

    def __init__(self) -> None:
        super().__init__(
            "outputs contain NaN or inf: the model diverged (try a smaller learning rate) or its input is bad"
        )


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return float(value)


def _check_alpha(alpha: float) -> float:
    if not 0 < alpha <= 1:
        raise ValueError(f"alpha, the target fraction of samples inside the margin, must be in (0, 1], got {alpha}")
    return float(alpha)


def _check_count(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int (the size of the model's head), got {value!r}")
    return value


def check_outputs(loss: nn.Module, num_outputs: int) -> None:
    """Raise ``ValueError`` when a model head with ``num_outputs`` outputs does not fit ``loss``.

    A binary loss needs 1 output, a multiclass loss at least 2, and a loss with one margin per output as many
    outputs as margins. Losses without an ``output_kind`` (e.g. ``nn.CrossEntropyLoss``) are not checked.
    """
    name, kind = type(loss).__name__, getattr(loss, "output_kind", None)
    if kind == "binary" and num_outputs != 1:
        raise ValueError(
            f"{name} is a binary loss: it needs a model with 1 output, got {num_outputs}; "
            "use hkr_multiclass / soft_hkr_multiclass for classes, hkr_multilabel for labels"
        )
    if kind == "multiclass" and num_outputs < 2:
        raise ValueError(f"{name} is a multiclass loss: it needs at least 2 outputs, got {num_outputs}; use hkr")
    margins = getattr(loss, "margin", None)
    if isinstance(margins, Tensor) and margins.ndim == 1 and len(margins) != num_outputs:
        raise ValueError(f"{name} has {len(margins)} margins (one per output) but the model has {num_outputs} outputs")


def _check_batch(outputs: Tensor, *conditions: Tensor) -> list[bool]:
    """Raise for an empty batch or non-finite outputs, else return ``conditions`` read back in one device sync."""
    if outputs.shape[0] == 0:
        raise ValueError("the batch is empty")
    finite, *passed = torch.stack([torch.isfinite(outputs).all(), *conditions]).tolist()
    if not finite:
        raise NonFiniteOutputsError()
    return passed


def _signs(outputs: Tensor, targets: Tensor) -> Tensor:
    """+1 / -1 labels, in ``outputs``' dtype, from {0, 1} or {-1, +1} targets of ``outputs``' shape."""
    if targets.shape != outputs.shape:
        raise ValueError(f"targets have shape {tuple(targets.shape)} but the outputs have {tuple(outputs.shape)}")
    zero, one, minus_one = targets == 0, targets == 1, targets == -1
    valid = zero | one | minus_one
    all_valid, mixed = _check_batch(outputs, valid.all(), zero.any() & minus_one.any())
    if not all_valid:
        found = targets[~valid].unique()[:5].tolist()
        raise ValueError(f"targets must be in {{0, 1}} or {{-1, +1}}, found {found}")
    if mixed:
        raise ValueError("targets mix 0 and -1: encode the negative class as 0 or as -1, not both")
    return one.to(outputs.dtype) * 2 - 1


def _binary_signs(loss: nn.Module, outputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Outputs ``(B,)`` and their signs from outputs and targets of shape ``(B,)`` or ``(B, 1)``."""
    if outputs.ndim not in (1, 2):
        raise ValueError(f"binary outputs must have shape (batch,) or (batch, 1), got {tuple(outputs.shape)}")
    if outputs.ndim == 2:
        check_outputs(loss, outputs.shape[1])
    if targets.ndim == 2 and targets.shape[1] == 1:
        targets = targets.squeeze(1)
    outputs = outputs.reshape(-1)
    return outputs, _signs(outputs, targets)


def _label_signs(loss: nn.Module, outputs: Tensor, targets: Tensor) -> Tensor:
    """Signs ``(B, L)`` of multilabel targets for outputs ``(B, L)``."""
    if outputs.ndim != 2:
        raise ValueError(f"multilabel outputs must have shape (batch, labels), got {tuple(outputs.shape)}")
    check_outputs(loss, outputs.shape[1])
    return _signs(outputs, targets)


def _class_signs(loss: nn.Module, outputs: Tensor, targets: Tensor) -> Tensor:
    """One-vs-all signs ``(B, q)``: +1 in the column of each sample's class, -1 elsewhere."""
    if outputs.ndim != 2:
        raise ValueError(f"multiclass outputs must have shape (batch, classes), got {tuple(outputs.shape)}")
    check_outputs(loss, outputs.shape[1])
    if targets.shape != outputs.shape[:1]:
        raise ValueError(
            f"targets must be class indices of shape {tuple(outputs.shape[:1])}, got {tuple(targets.shape)} "
            "(for one-hot targets pass targets.argmax(1))"
        )
    if targets.is_floating_point() or targets.is_complex() or targets.dtype == torch.bool:
        raise ValueError(f"targets must be an integer tensor of class indices, got dtype {targets.dtype}")
    num_classes = outputs.shape[1]
    (in_range,) = _check_batch(outputs, ((targets >= 0) & (targets < num_classes)).all())
    if not in_range:
        bad = targets[(targets < 0) | (targets >= num_classes)].unique()[:5].tolist()
        raise ValueError(f"class indices must be in [0, {num_classes - 1}] for {num_classes} outputs, found {bad}")
    is_target = targets[:, None] == torch.arange(num_classes, device=targets.device)
    return is_target.to(outputs.dtype) * 2 - 1


def _side_mean(values: Tensor, side: Tensor) -> Tensor:
    """Per column, the mean of ``values`` over the rows where ``side`` is 1; a mean over no row is 0."""
    return (values * side).sum(0) / side.sum(0).clamp_min(1)


def _kr(outputs: Tensor, signs: Tensor) -> Tensor:
    """Per column, ``mean_{y=-1} f - mean_{y=+1} f`` over the batch; a mean over an empty side is 0."""
    positive = (signs > 0).to(outputs.dtype)
    return _side_mean(outputs, 1 - positive) - _side_mean(outputs, positive)


class _FixedMargin(nn.Module):
    """A hinge weight ``lam`` and a fixed margin ``m``, kept as a buffer so that it follows ``.to(device)``."""

    def __init__(self, lam: float = 10.0, margin: float = 0.5) -> None:
        super().__init__()
        self.lam = _positive("lam", lam)
        self.register_buffer("margin", torch.tensor(_positive("margin", margin)), persistent=False)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, margin={self.margin.item()}"


@register_loss("hkr")
class HKRLoss(_FixedMargin):
    """Binary hKR loss with a fixed margin (paper Eq. 1).

    ``mean_{y=-1} f - mean_{y=+1} f + lam * mean (m - y f)_+``.
    """

    output_kind: ClassVar[OutputKind] = "binary"

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        outputs, signs = _binary_signs(self, outputs, targets)
        return _kr(outputs, signs) + self.lam * F.relu(self.margin - signs * outputs).mean()


@register_loss("hkr_multiclass")
class HKRMulticlassLoss(_FixedMargin):
    """One-vs-all multiclass hKR loss with a fixed margin (paper Eq. 4).

    ``sum_k (mean_{y!=k} f_k - mean_{y=k} f_k) + lam * mean_i sum_k (m - s_ik f_k(x_i))_+``, with ``s_ik = +1`` if
    ``y_i = k`` else -1.
    """

    output_kind: ClassVar[OutputKind] = "multiclass"

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        signs = _class_signs(self, outputs, targets)
        hinge = F.relu(self.margin - signs * outputs).sum(1).mean()
        return _kr(outputs, signs).sum() + self.lam * hinge


class _LearnedMargins(nn.Module):
    """Margins ``m = softplus(raw_margin) > 0`` learned with the model, penalised by ``- lam * alpha * m``."""

    def __init__(self, alpha: float, lam: float | None, init_margin: float, num_margins: int | None) -> None:
        super().__init__()
        self.alpha = _check_alpha(alpha)
        self.lam = 1 / self.alpha if lam is None else _positive("lam", lam)
        init = torch.full(() if num_margins is None else (num_margins,), _positive("init_margin", init_margin))
        self.raw_margin = nn.Parameter(init + torch.log(-torch.expm1(-init)))  # softplus^-1(init)

    @property
    def margin(self) -> Tensor:
        """The effective margin(s), ``softplus(raw_margin)``."""
        return F.softplus(self.raw_margin)

    def _auto_margin_hkr(self, outputs: Tensor, signs: Tensor, balanced: bool = False) -> Tensor:
        """Eq. 3 for each column: ``KR + lam * (mean (m - y f)_+ - alpha * m)``.

        ``balanced`` averages the hinge over each side apart, ``(mean_{y=+1} + mean_{y=-1}) / 2``, as the KR part
        already does, so a rare label's positives weigh as much as its negatives.
        """
        margin = self.margin
        hinges = F.relu(margin - signs * outputs)
        if balanced:
            positive = (signs > 0).to(outputs.dtype)
            hinge = (_side_mean(hinges, positive) + _side_mean(hinges, 1 - positive)) / 2
        else:
            hinge = hinges.mean(0)
        return _kr(outputs, signs) + self.lam * (hinge - self.alpha * margin)

    def extra_repr(self) -> str:
        return f"lam={self.lam}, alpha={self.alpha}"


@register_loss("hkr_auto")
class HKRAutoLoss(_LearnedMargins):
    """Binary hKR loss with a learned margin (paper Eq. 3, with ``- alpha * m``: see the module docstring).

    ``mean_{y=-1} f - mean_{y=+1} f + lam * (mean (m - y f)_+ - alpha * m)``, ``m >= 0`` learned; at the optimum a
    fraction ``alpha`` of the samples has ``y f < m``.
    """

    output_kind: ClassVar[OutputKind] = "binary"

    def __init__(self, alpha: float = 0.1, lam: float | None = None, init_margin: float = 0.5) -> None:
        super().__init__(alpha, lam, init_margin, num_margins=None)

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self._auto_margin_hkr(*_binary_signs(self, outputs, targets))


@register_loss("hkr_multilabel")
class HKRMultilabelLoss(_LearnedMargins):
    """Multilabel hKR loss: the mean over labels of Eq. 3, each label with its own learned margin (paper Sec. 5).

    ``balanced=True`` (not in the paper) averages each label's hinge over its positives and negatives apart; with
    CelebA's rare labels (Mustache: 4% positive) the paper's plain mean leaves ``sign f`` favouring specificity.
    """

    output_kind: ClassVar[OutputKind] = "multilabel"

    def __init__(
        self, num_labels: int, alpha: float = 0.05, lam: float | None = None, init_margin: float = 0.5,
        balanced: bool = False,
    ) -> None:
        super().__init__(alpha, lam, init_margin, num_margins=_check_count("num_labels", num_labels))
        self.balanced = bool(balanced)

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        return self._auto_margin_hkr(outputs, _label_signs(self, outputs, targets), self.balanced).mean()


@register_loss("soft_hkr_multiclass")
class SoftHKRMulticlassLoss(_LearnedMargins):
    """Multiclass hKR loss with a softmax hinge and a learned margin per class (paper Eq. 5).

    The KR part of Eq. 4 plus ``lam * mean_i [(m_y - f_y / 2 + (1/2) sum_{k!=y} w_k f_k)_+ - alpha * m_y]`` with
    ``y = y_i``, ``w = softmax_{k!=y}(temperature * f_k)`` and ``m_y >= 0`` learned. ``temperature=1`` is the paper's
    softmax; 0 averages the other classes, large values take their maximum. As in Eq. 3 the penalty is
    ``- alpha * m_y`` (the paper prints ``+``), so a fraction ``alpha`` of each class ends inside its margin.
    """

    output_kind: ClassVar[OutputKind] = "multiclass"

    def __init__(
        self,
        num_classes: int,
        alpha: float = 0.2,
        lam: float | None = None,
        init_margin: float = 0.5,
        temperature: float = 1.0,
    ) -> None:
        if _check_count("num_classes", num_classes) < 2:
            raise ValueError(f"num_classes must be at least 2 for a multiclass loss, got {num_classes}; use hkr_auto")
        super().__init__(alpha, lam, init_margin, num_margins=num_classes)
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        self.temperature = float(temperature)

    def forward(self, outputs: Tensor, targets: Tensor) -> Tensor:
        signs = _class_signs(self, outputs, targets)
        is_target = signs > 0
        weights = torch.softmax((self.temperature * outputs).masked_fill(is_target, float("-inf")), dim=1)
        target_output = (outputs * is_target).sum(1)
        others = (weights * outputs).sum(1)
        margin = (self.margin * is_target).sum(1)
        hinge = F.relu(margin - target_output / 2 + others / 2)
        return _kr(outputs, signs).sum() + self.lam * (hinge - self.alpha * margin).mean()

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, temperature={self.temperature}"


def list_losses() -> list[str]:
    """Names accepted by :func:`create_loss`, sorted."""
    return LOSSES.names()


def loss_class(name: str) -> type[nn.Module]:
    """The class registered as ``name`` (its signature lists the keyword arguments ``create_loss`` accepts)."""
    return LOSSES.get(name)


def create_loss(name: str, **kwargs) -> nn.Module:
    """The loss registered as ``name``, built with ``kwargs`` (see the table in the module docstring)."""
    cls = loss_class(name)
    parameters = inspect.signature(cls).parameters
    accepted = list(parameters)
    for key in kwargs:
        if key not in accepted:
            raise unknown_name(f"argument of {name}", key, accepted)
    missing = [key for key, p in parameters.items() if p.default is p.empty and key not in kwargs]
    if missing:
        raise ValueError(f"{name} needs {', '.join(f'{key}=...' for key in missing)} (the size of the model's head)")
    return cls(**kwargs)
