"""The transport-counterfactual explainer of an OTNN, as a Captum attribution (paper Sec. 3, Prop. 1 and 2).

For an OTNN ``f`` trained with the hKR loss, ``grad_x f(x)`` points along the optimal transport plan (Prop. 1), and
``x - f(x) grad_x f(x)`` lies on the decision boundary where ``||grad_x f|| = 1`` (Prop. 2). The signed gradient
is therefore a counterfactual explanation, and its absolute value the saliency map (paper Sec. 3).

Which score ``f`` is: the model's single output for a binary head, ``output[target]`` otherwise. Every output of
the paper's multilabel (CelebA) and multiclass (Fashion-MNIST, Eq. 4-5) heads is a one-versus-all potential, so
the same formula serves both: it moves ``x`` towards the boundary ``f_target = 0`` from whichever side it is on.
Where ``f_target(x) > 0`` (``x`` is on the target's side: the predicted class of a well-trained model) that takes it
out of the class; where ``f_target(x) < 0`` it takes it towards the class, which is the targeted counterfactual of
the paper's Fig. 1 and 5. A poorly trained head may score other classes positive too; the step then moves away
from them.
"""
from __future__ import annotations

from typing import Literal, NamedTuple, get_args

import torch
from captum.attr import GradientAttribution
from captum.log import log_usage
from torch import Tensor, nn

from .._finite import check_model_outputs
from ..lipschitz import explaining, is_otnn
from ._inputs import Target, check_inputs, format_target, select_scores

__all__ = ["TransportCounterfactual", "Counterfactual", "target_gradient"]

Step = Literal["gradient", "newton"]
STEPS: tuple[str, ...] = get_args(Step)


class Counterfactual(NamedTuple):
    """Counterfactual inputs with the target score before (``scores``) and after, and the step rule used."""

    inputs: Tensor
    scores: Tensor
    counterfactual_scores: Tensor
    step: str


def target_gradient(model: nn.Module, inputs: Tensor, target: Tensor | None) -> tuple[Tensor, Tensor]:
    """``f(x) = model(x)[target]`` and ``grad_x f(x)`` for the whole batch in one forward and one backward.

    The gradient of the summed scores is each sample's own gradient as long as samples do not interact,
    which holds in eval mode; callers put the model there.
    """
    with torch.enable_grad():
        x = inputs.detach().requires_grad_(True)
        scores = select_scores(model(x), target)
        (gradient,) = torch.autograd.grad(scores.sum(), x)
    return scores.detach(), gradient


class TransportCounterfactual(GradientAttribution):
    """Signed input gradient of the target output: the transport-plan direction of an OTNN (paper Prop. 1).

    ``attribute(abs=True)`` is Captum's ``Saliency``; ``counterfactual`` moves inputs along the plan. The model
    runs in eval mode during every call and gets its modes back afterwards. ``guarantees=True`` refuses a model
    without 1-Lipschitz layers; by default an unconstrained model is explained too, for comparison.
    """

    def __init__(self, model: nn.Module, guarantees: bool = False) -> None:
        if guarantees and not is_otnn(model):
            raise ValueError(
                f"{type(model).__name__} has no 1-Lipschitz layer, so Prop. 1 and 2 do not hold for it: "
                "use an OTNN, or guarantees=False to explain it anyway"
            )
        super().__init__(model)
        self.model = model
        self.guarantees = guarantees

    @log_usage()
    def attribute(self, inputs: Tensor, target: Target = None, abs: bool = False) -> Tensor:
        """``grad_x f(x)``, shaped like ``inputs``; ``abs=True`` gives the saliency map ``|grad_x f(x)|``.

        ``target`` follows Captum: ``None`` for a single-output model, else one index for all samples or one
        per sample (int, list or tensor).
        """
        inputs = check_inputs(inputs, self.model)
        with explaining(self.model):
            scores, gradient = target_gradient(self.model, inputs, format_target(target, len(inputs), inputs.device))
        check_model_outputs(scores)
        return gradient.abs() if abs else gradient

    def counterfactual(
        self,
        inputs: Tensor,
        target: Target = None,
        t: float = 1.0,
        step: Step = "gradient",
        return_scores: bool = False,
    ) -> Tensor | Counterfactual:
        """Move each input along the transport plan: ``x - t * f(x) * grad_x f(x)`` (paper Prop. 2, Fig. 1, 4, 5).

        With ``step="gradient"`` (the paper's rule), ``t = 1`` reaches the boundary ``f = 0`` where the gradient
        has norm 1, as it has at the optimum of the hKR loss, and ``t > 1`` crosses it (the paper shows
        ``t = 10``). ``step="newton"`` divides the move by ``||grad_x f(x)||^2``, which reaches the boundary of
        the local linearisation whatever the gradient norm; a zero gradient leaves the input unchanged.

        Returns the counterfactual inputs, shaped like ``inputs``; with ``return_scores=True``, a
        :class:`Counterfactual` holding them, ``f`` before and after, and the step rule used.
        """
        if step not in STEPS:
            raise ValueError(f"step must be one of {STEPS}, got {step!r}")
        inputs = check_inputs(inputs, self.model)
        with explaining(self.model):
            target = format_target(target, len(inputs), inputs.device)
            scores, gradient = target_gradient(self.model, inputs, target)
            check_model_outputs(scores)
            per_sample = (-1,) + (1,) * (inputs.dim() - 1)
            move = scores.view(per_sample) * gradient
            if step == "newton":
                squared_norm = gradient.flatten(1).pow(2).sum(1).clamp_min(torch.finfo(gradient.dtype).tiny)
                move = move / squared_norm.view(per_sample)
            counterfactuals = inputs.detach() - t * move
            if not return_scores:
                return counterfactuals
            with torch.no_grad():
                after = select_scores(self.model(counterfactuals), target)
        return Counterfactual(counterfactuals, scores, after, step)
