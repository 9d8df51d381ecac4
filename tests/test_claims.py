"""Paired bootstrap intervals, rank frequencies, and the verdict of every kind of claim on synthetic evidence."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from otnn_plugin.evaluate.claims import Claim, Evidence, PaperClaims, judge, load_paper_claims
from otnn_plugin.evaluate.runner import model_diagnostics
from otnn_plugin.evaluate.uncertainty import paired_difference, rank_frequencies

RNG = np.random.default_rng(0)


def test_the_paired_interval_holds_a_known_difference_and_uses_the_pairing():
    shared = RNG.normal(0, 5, 400)  # large per-sample variation that both networks share
    interval = paired_difference(shared + 0.1 + RNG.normal(0, 0.05, 400), shared)
    assert interval.low < 0.1 < interval.high and interval.excludes_zero() == 1
    unpaired_se = np.sqrt(2 * 25 / 400)  # a two-sample interval would be about +-0.7: it could not see 0.1
    assert interval.high - interval.low < unpaired_se / 5
    null = paired_difference(shared + RNG.normal(0, 0.05, 400), shared)
    assert null.excludes_zero() == 0
    with_nan = paired_difference(np.array([1.0, np.nan, 3.0]), np.array([0.0, 0.0, 0.0]))
    assert with_nan.n == 2 and with_nan.mean == 2.0


def test_rank_frequencies_of_clear_and_tied_explainers():
    scores = {"best": RNG.normal(0, 0.1, 200), "worst": RNG.normal(5, 0.1, 200), "tie": RNG.normal(2, 0.1, 200),
              "tie2": RNG.normal(2, 0.1, 200)}
    frequencies = rank_frequencies(scores, "lower")
    assert frequencies["best"][0] == 1.0 and frequencies["worst"][3] == 1.0
    assert 0.2 < frequencies["tie"][1] < 0.8 and frequencies["tie"][1] + frequencies["tie"][2] == 1.0


CLAIMS = PaperClaims(source="test", min_grad_norm=0.8, claims=[
    Claim(id="closer", where="Table 2", text="closer on OTNNs", kind="otnn_better", metrics=("distance",)),
    Claim(id="rank", where="Table 1", text="Saliency ranks well", kind="rank", metrics=("deletion",)),
    Claim(id="values", where="A.4", text="not comparable", kind="not_comparable", metrics=("deletion",)),
])


class _Paper:
    """Paper numbers with Saliency 2nd of 3 on Deletion (lower is better)."""

    def row(self, metric, dataset, label, family):
        return {"saliency": 0.2, "smoothgrad": 0.1, "rise": 0.3} if metric == "deletion" else {}


def evidence(otnn_distance: float, grad_norm: float | None, control_distance: float | None = None,
             saliency_deletion: float = 0.2, control_saliency_deletion: float | None = None) -> Evidence:
    n = 300
    noise = lambda: RNG.normal(0, 0.05, n)  # noqa: E731
    scores = {("OTNN", "saliency", "distance"): otnn_distance + noise(),
              ("Twin", "saliency", "distance"): 1.0 + noise(),
              ("OTNN", "saliency", "deletion"): saliency_deletion + noise(),
              ("OTNN", "smoothgrad", "deletion"): 0.1 + noise(), ("OTNN", "rise", "deletion"): 0.3 + noise()}
    families = {"OTNN": "otnn", "Twin": "unconstrained"}
    if control_distance is not None:
        scores[("Linear", "saliency", "distance")] = control_distance + noise()
        families["Linear"] = "linear"
    if control_saliency_deletion is not None:
        scores.update({("Linear", "saliency", "deletion"): control_saliency_deletion + noise(),
                       ("Linear", "smoothgrad", "deletion"): 0.1 + noise(), ("Linear", "rise", "deletion"): 0.3 + noise()})
        families["Linear"] = "linear"
    diagnostics = {} if grad_norm is None else {"OTNN": {"mean_grad_norm": grad_norm}}
    return Evidence(scores, families, diagnostics, {"distance": "lower", "deletion": "lower"},
                    {"saliency": "saliency", "smoothgrad": "smoothgrad", "rise": "rise"}, _Paper(), "fashion_mnist",
                    None)


@pytest.mark.parametrize("case, expected, reason", [
    (dict(otnn_distance=0.5, grad_norm=0.95), "inconclusive", "no linear control was scored here"),
    (dict(otnn_distance=1.5, grad_norm=0.95), "contradicted", "opposes the claim"),
    (dict(otnn_distance=1.0, grad_norm=0.95), "inconclusive", "within its uncertainty"),
    (dict(otnn_distance=0.5, grad_norm=0.3), "inconclusive", "not in the transport regime (mean ‖∇f‖ 0.30 < 0.8)"),
    (dict(otnn_distance=0.5, grad_norm=None), "inconclusive", "no transport diagnostics"),
    (dict(otnn_distance=0.5, grad_norm=0.95, control_distance=0.4), "inconclusive",
     "linear control reproduces it just as well (OTNN − linear +0.098 ["),
    (dict(otnn_distance=0.5, grad_norm=0.95, control_distance=0.5), "inconclusive", "reproduces it just as well"),
    # The control beats the twin too, but far less than the OTNN: the OTNN's edge is not linearity's.
    (dict(otnn_distance=0.5, grad_norm=0.95, control_distance=0.8), "confirmed", "interval (OTNN − linear -0.3"),
    (dict(otnn_distance=0.5, grad_norm=0.3, control_distance=0.8), "inconclusive",
     "< 0.8); our result supports the claim (OTNN − linear -0.3"),
])
def test_verdicts_between_networks(case, expected, reason):
    (verdict,) = [v for v in judge(CLAIMS, evidence(**case)) if v.claim == "closer"]
    assert verdict.verdict == expected and reason in verdict.reason, verdict
    assert verdict.paper == "—" and verdict.ours.startswith("OTNN − twin ")


def test_a_degenerate_control_cannot_confirm():
    """A control whose maps are zero on most samples (the linear model's Grad-CAM) scores one value there: far
    worse than the OTNN, but it says nothing about linearity, so the verdict stays inconclusive."""
    degenerate = evidence(otnn_distance=0.5, grad_norm=0.95, control_distance=0.8)
    control = degenerate.scores[("Linear", "saliency", "distance")]
    control[: int(0.9 * len(control))] = 1.0  # one score on 90% of samples
    (verdict,) = [v for v in judge(CLAIMS, degenerate) if v.claim == "closer"]
    assert verdict.verdict == "inconclusive", verdict
    assert "the linear control's maps are degenerate here (one score on 90% of samples)" in verdict.reason
    control[: int(0.4 * len(control))] = 2.0  # now 40% score 2 and 50% score 1: at the threshold, degenerate
    assert [v for v in judge(CLAIMS, degenerate) if v.claim == "closer"][0].verdict == "inconclusive"


def test_rank_and_not_comparable_verdicts():
    verdicts = {v.claim: v for v in judge(CLAIMS, evidence(0.5, 0.95, control_saliency_deletion=0.4))}
    assert verdicts["rank"].verdict == "confirmed" and verdicts["rank"].paper == "Rk2 of 3"
    assert verdicts["rank"].ours == "Rk ≤ 2 in 100% of resamples"
    assert verdicts["values"].verdict == "not comparable"
    worst = {v.claim: v for v in judge(CLAIMS, evidence(0.5, 0.95, saliency_deletion=0.4))}
    assert worst["rank"].verdict == "contradicted"  # a contradiction needs no control
    uncontrolled = {v.claim: v for v in judge(CLAIMS, evidence(0.5, 0.95))}
    assert uncontrolled["rank"].verdict == "inconclusive" and "no linear control" in uncontrolled["rank"].reason
    reproduced = {v.claim: v for v in judge(CLAIMS, evidence(0.5, 0.95, control_saliency_deletion=0.2))}
    assert reproduced["rank"].verdict == "inconclusive" and "reproduces it" in reproduced["rank"].reason
    assert not CLAIMS.comparable("deletion") and CLAIMS.comparable("distance")


def test_the_shipped_claims_name_metrics_of_the_paper():
    from otnn_plugin.evaluate import load_paper_numbers

    claims, paper = load_paper_claims(), load_paper_numbers()
    assert {m for c in claims.claims for m in c.metrics} <= set(paper.metrics)


class _Linear(nn.Module):
    """Multinomial logistic regression on pixels: the control that passes linearity-blind metrics."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc(x.flatten(1))


def test_a_linear_model_is_flagged_by_its_diagnostics():
    x = torch.rand(64, 1, 4, 4)
    y = torch.randint(0, 3, (64,))
    found = model_diagnostics(_Linear(), x.numpy(), y.numpy(), torch.device("cpu"))
    assert found["taylor_error"] < 1e-5 and found["gradient_cosine"] > 0.999
    assert 0 <= found["accuracy"] <= 1


def test_the_readme_shows_the_generated_verdicts_of_each_committed_run():
    """The README's claims are copies of the leaderboards' claims.md, never typed by hand."""
    import re
    from pathlib import Path

    from otnn_plugin.evaluate.report import readme_block

    repo = Path(__file__).resolve().parents[1]
    readme = (repo / "README.md").read_text()
    blocks = re.findall(r"<!-- generated from (\S+): do not edit -->", readme)
    assert len(blocks) == 3
    for name in blocks:
        begin, end = readme_block(Path(name))
        assert readme.split(begin, 1)[1].split(end, 1)[0] == (repo / name).read_text(), name


def test_diagnostics_undefined_on_few_samples_are_none_not_nan():
    x, y = torch.rand(2, 1, 4, 4), torch.tensor([0, 1])  # no two samples of one class: no gradient cosine
    found = model_diagnostics(_Linear(), x.numpy(), y.numpy(), torch.device("cpu"))
    assert found["gradient_cosine"] is None and found["taylor_error"] is not None


def test_an_unfinished_run_pairs_only_the_samples_both_sides_scored():
    from otnn_plugin.evaluate.config import Unit
    from otnn_plugin.evaluate.leaderboard import _sample_scores

    planned = [Unit("OTNN", "saliency", "m", b, slice(2 * b, 2 * b + 2), 0, 0) for b in range(3)]
    found = [{"scores": [1.0, None]}, None, {"scores": [3.0, 4.0]}]  # batch 1 not computed yet
    scores = _sample_scores(planned, found)
    assert np.isnan(scores[[1, 2, 3]]).all() and scores[[0, 4, 5]].tolist() == [1.0, 3.0, 4.0]
    interval = paired_difference(scores, np.zeros(6))
    assert interval.n == 3 and interval.mean == pytest.approx(8 / 3)
