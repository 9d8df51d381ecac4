"""One label of a multilabel head as a two-class model, so each sample is explained for its own side of the label.

A one-class-per-sample dataset is evaluated for each sample's class. For a multilabel head the analogue is the
sample's side of the label: the output ``f_l`` becomes the two columns ``(-f_l, f_l)`` ("no <label>", "<label>"),
and the target is the sample's true side. A face without a mustache is then explained and scored on ``-f_l``, so
that Deletion falls and Insertion rises as its evidence goes in, as for a face with one (and as in the paper, whose
CelebA Deletion and Insertion scores are positive, Table 1). Each column of an OTNN stays 1-Lipschitz, the
decision is unchanged (``argmax`` is ``sign f_l``), and so is the transport direction ``f grad f``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["LabelSides", "side_names"]


def side_names(label: str) -> list[str]:
    """The names of the two columns of :class:`LabelSides` for ``label``."""
    return [f"no {label}", label]


class LabelSides(nn.Module):
    """``model``'s output ``index`` as the two columns ``(-f, f)``, in ``model``'s mode; timm's ``feature_info`` is
    kept (for Grad-CAM). ``sigmoid_outputs``: a column's probability is its sigmoid, ``sigmoid(±f)`` (metrics with
    ``score='probability'``), not a softmax over the two."""

    sigmoid_outputs = True

    def __init__(self, model: nn.Module, index: int):
        super().__init__()
        self.model, self.index = model, index
        self.training = model.training  # Quantus refuses a model in training mode
        feature_info = getattr(model, "feature_info", None)
        if feature_info:
            self.feature_info = [{**info, "module": f"model.{info['module']}"} for info in feature_info]

    def forward(self, x: Tensor) -> Tensor:
        output = self.model(x)[:, self.index:self.index + 1]
        return torch.cat([-output, output], dim=1)
