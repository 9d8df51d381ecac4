"""The paper's claims judged from results: confirmed, contradicted, inconclusive or not comparable, with the reason.

``evaluations/paper_claims.yaml`` lists what Sec. 5.1 and A.4 of arXiv:2206.06854 assert about explanation
metrics; the paper's values come from ``paper_numbers.yaml``. A verdict needs three things (see the YAML's
header): a result beyond its bootstrap uncertainty (:mod:`.uncertainty`), an OTNN in the transport regime (its
measured mean ``||grad f||``), and a linear control that does not reproduce the result just as well: for a
comparison between networks, the OTNN must also beat the control beyond the interval; for a rank, the control must
not hold the rank as surely. A setting without a control confirms nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from .._shipped import paper_claims_path
from .._validation import Settings, validated
from .._yaml import read_yaml
from .uncertainty import Interval, paired_difference, rank_frequencies

if TYPE_CHECKING:
    from .leaderboard import PaperNumbers

__all__ = ["Claim", "PaperClaims", "Verdict", "judge", "load_paper_claims"]

CONFIDENCE = 0.95


class Claim(Settings):
    id: str
    where: str = Field(description="section and table of the paper")
    text: str
    kind: Literal["rank", "otnn_better", "not_comparable"]
    metrics: tuple[str, ...] = Field(min_length=1, description="metric labels, as in the configs and "
                                                                "paper_numbers.yaml")
    explainers: tuple[str, ...] = ("saliency",)


class PaperClaims(Settings):
    source: str
    min_grad_norm: float = Field(gt=0, le=1, description="an OTNN below this is not in the transport regime")
    claims: list[Claim]

    def comparable(self, metric: str) -> bool:
        """Whether the paper lets ``metric``'s values be compared between networks."""
        return not any(c.kind == "not_comparable" and metric in c.metrics for c in self.claims)


def load_paper_claims(path: str | Path | None = None) -> PaperClaims | None:
    """The shipped claims (or ``path``); ``None`` when no path is given and the shipped file is absent."""
    path = Path(path) if path is not None else paper_claims_path()
    if not path.is_file():
        return None
    return validated(PaperClaims, read_yaml(path, "paper claims file"), f"{path}: ")


@dataclass
class Verdict:
    """One claim on one setting (and explainer): the paper's value, ours, the verdict and why."""

    claim: str
    where: str
    text: str
    metric: str
    explainer: str
    paper: str
    ours: str
    verdict: str
    reason: str


@dataclass
class Evidence:
    """What a setting offers the claims: per-sample scores by (model, explainer, metric), each model's family and
    diagnostics, the paper's numbers and the dataset."""

    scores: dict[tuple[str, str, str], np.ndarray]
    families: dict[str, str | None]
    diagnostics: dict[str, dict]
    directions: dict[str, str]
    methods: dict[str, str]
    paper: PaperNumbers | None
    dataset: str
    label: str | None

    def model(self, family: str) -> str | None:
        return next((m for m, f in self.families.items() if f == family), None)


def _regime(evidence: Evidence, otnn: str, minimum: float) -> str | None:
    """Why the OTNN cannot support a verdict, or None when it is in the transport regime."""
    measured = evidence.diagnostics.get(otnn, {}).get("mean_grad_norm")
    if measured is None:
        return "no transport diagnostics in these results (rerun them)"
    if measured < minimum:
        return f"the OTNN is not in the transport regime (mean ‖∇f‖ {measured:.2f} < {minimum:g})"
    return None


#: A control that the OTNN beats, but whose scores for an explainer take one value on at least this share of the
#: samples, has degenerate maps there (the linear model's Grad-CAM, computed on its input pixels, is zero on most
#: images: µFidelity 0), so it cannot tell. (A control that matches or beats the OTNN with one value, such as the
#: linear model's exact Gradient x Input, reproduces the result instead.)
DEGENERATE_SHARE = 0.5
REPRODUCED = "the linear control reproduces it just as well"
#: Without a control, a result that any linear model would give cannot be told from an OTNN property.
NO_CONTROL = "no linear control was scored here to rule out linearity"


def _degenerate(scores: np.ndarray) -> str | None:
    """Why a control's per-sample scores cannot serve as a control, or None."""
    finite = scores[np.isfinite(scores)]
    if not len(finite):
        return "the linear control has no finite score here"
    _, counts = np.unique(finite, return_counts=True)
    share = counts.max() / len(scores)
    if share >= DEGENERATE_SHARE:
        return f"the linear control's maps are degenerate here (one score on {share:.0%} of samples)"
    return None


def _supported(direction: int, regime: str | None, control: str | None, versus_control: str = "") -> tuple[str, str]:
    """Verdict and reason from a statistical outcome (+1 supports, -1 opposes, 0 neither); ``control``: why the
    linear control keeps a supported result from being confirmed (it reproduces it, or cannot tell), if it does;
    ``versus_control``: the OTNN - control figure, if any."""
    outcome = {1: "supports the claim", -1: "opposes the claim", 0: "is within its uncertainty"}[direction]
    if regime is not None:
        return "inconclusive", f"{regime}; our result {outcome}{versus_control}"
    if direction == 0:
        return "inconclusive", f"the result {outcome}"
    if direction < 0:
        return "contradicted", f"the result {outcome}"
    if control:
        return "inconclusive", f"{control}{versus_control}"
    return "confirmed", f"the result {outcome} beyond its 95 % interval{versus_control}"


def _interval_text(interval: Interval | None) -> str:
    if interval is None:
        return "—"
    return f"{interval.mean:+.3g} [{interval.low:+.3g}, {interval.high:+.3g}]"


def _better_on_otnn(claim: Claim, metric: str, evidence: Evidence, minimum: float) -> list[Verdict]:
    otnn, twin, control = (evidence.model(f) for f in ("otnn", "unconstrained", "linear"))
    direction = evidence.directions[metric]
    better = 1 if direction == "higher" else -1  # the sign of OTNN - twin that the claim predicts
    verdicts = []
    for explainer, method in evidence.methods.items():
        if method not in claim.explainers:
            continue
        pair = [evidence.scores.get((m, explainer, metric)) for m in (otnn, twin)]
        if any(p is None for p in pair):
            continue
        interval = paired_difference(*pair, level=CONFIDENCE)
        paper_row = {f: evidence.paper.row(metric, evidence.dataset, evidence.label, f)
                     for f in ("otnn", "unconstrained")} if evidence.paper else {}
        values = [paper_row.get(f, {}).get(method) for f in ("otnn", "unconstrained")]
        paper = "—" if None in values else f"OTNN {values[0]:.3g} vs {values[1]:.3g}"
        # The control reproduces the result "just as well" unless the OTNN also beats it beyond the interval.
        held_back, versus_control = NO_CONTROL, ""
        if control is not None and (control, explainer, metric) in evidence.scores:
            control_scores = evidence.scores[(control, explainer, metric)]
            by_control = paired_difference(pair[0], control_scores, level=CONFIDENCE)
            reproduced = by_control is None or by_control.excludes_zero() != better
            held_back = REPRODUCED if reproduced else _degenerate(control_scores)
            versus_control = f" (OTNN − linear {_interval_text(by_control)})"
        outcome = 0 if interval is None else interval.excludes_zero() * better
        verdict, reason = _supported(outcome, _regime(evidence, otnn, minimum), held_back, versus_control)
        verdicts.append(Verdict(claim.id, claim.where, claim.text, metric, explainer, paper,
                                f"OTNN − twin {_interval_text(interval)}", verdict, reason))
    return verdicts


def _rank(claim: Claim, metric: str, evidence: Evidence, minimum: float) -> list[Verdict]:
    from .leaderboard import competition_ranks

    otnn, control = evidence.model("otnn"), evidence.model("linear")
    paper_row = evidence.paper.row(metric, evidence.dataset, evidence.label, "otnn") if evidence.paper else {}
    explainer = next((e for e, m in evidence.methods.items() if m == "saliency"), None)
    if otnn is None or explainer is None or len(paper_row) < 2:
        return []
    paper_rank = competition_ranks(paper_row, evidence.directions[metric])["saliency"]
    shared = [e for e, m in evidence.methods.items() if m in paper_row]  # ranked among the paper's methods

    def holds(model: str) -> float | None:
        scores = {e: evidence.scores.get((model, e, metric)) for e in shared}
        if any(s is None for s in scores.values()):
            return None
        frequencies = rank_frequencies(scores, evidence.directions[metric])
        return float(frequencies[explainer][:paper_rank].sum()) if frequencies else None

    held = holds(otnn)
    if held is None:
        return []
    by_control = None if control is None else holds(control)
    held_back = NO_CONTROL if by_control is None else REPRODUCED if by_control >= CONFIDENCE else None
    outcome = 1 if held >= CONFIDENCE else -1 if held <= 1 - CONFIDENCE else 0
    verdict, reason = _supported(outcome, _regime(evidence, otnn, minimum), held_back)
    return [Verdict(claim.id, claim.where, claim.text, metric, explainer, f"Rk{paper_rank} of {len(paper_row)}",
                    f"Rk ≤ {paper_rank} in {held:.0%} of resamples", verdict, reason)]


def judge(claims: PaperClaims, evidence: Evidence) -> list[Verdict]:
    """The verdict of every claim whose metric this setting scored."""
    verdicts = []
    for claim in claims.claims:
        for metric in (m for m in claim.metrics if m in evidence.directions):
            if claim.kind == "not_comparable":
                verdicts.append(Verdict(claim.id, claim.where, claim.text, metric, "", "—", "—", "not comparable",
                                        "the paper says these values cannot be compared between networks"))
            elif claim.kind == "rank":
                verdicts += _rank(claim, metric, evidence, claims.min_grad_norm)
            else:
                verdicts += _better_on_otnn(claim, metric, evidence, claims.min_grad_norm)
    return verdicts
