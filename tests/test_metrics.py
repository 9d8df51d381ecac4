"""Issue 8: the paper's XAI metrics that Quantus lacks, as Quantus metrics in batched torch.

Expected values are worked out by hand on linear models, whose curves and radii have closed forms, or come from
Quantus's own metrics on the same inputs.
"""
from __future__ import annotations

import io
import math

import numpy as np
import pytest
import quantus
import torch
from PIL import Image
from torch import nn

from otnn_plugin.metrics import (
    Deletion,
    ExplanationDistance,
    Insertion,
    JPEGComplexity,
    MuFidelity,
    RobustnessSr,
    Stability,
    explanation_distance,
)
from otnn_plugin.metrics.perturbation import grid_cells, shared_forwards
from otnn_plugin.metrics.distance import average_ranks
from otnn_plugin.metrics.jpeg import jpeg_kilobytes
from otnn_plugin.evaluate.label_sides import LabelSides
from otnn_plugin.metrics.stability import sample_ball, sample_neighbours


class Linear(nn.Module):
    """``f(x) = W flatten(x)``: every fidelity curve and flipping radius of it has a closed form."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, x):
        return x.flatten(1) @ self.weight.T


def saliency(model, inputs, targets, **kwargs):
    """A Quantus explain function: ``|d f_target / dx|``."""
    x = torch.as_tensor(inputs).requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x).gather(1, torch.as_tensor(targets)[:, None]).sum(), x)
    return grad.abs().numpy()


def tiny_cnn(classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, classes)
    ).eval()


# A 2x2 one-channel image of ones, f = 4 x0 + 3 x1 + 2 x2 + 1 x3, and the saliency |w| as attribution.
W = [[4.0, 3.0, 2.0, 1.0]]
X = np.ones((1, 1, 2, 2), np.float32)
Y = np.array([0])
A = np.array(W, np.float32).reshape(1, 1, 2, 2)


# --- distances ------------------------------------------------------------------------------------------------------

def test_average_ranks_share_ties():
    ranks = average_ranks(torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0, 5.0]]))
    assert ranks.tolist() == [[3.5, 0.5, 3.5, 2.0, 0.5, 5.0]]


def test_explanation_distance_by_hand():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    b = torch.tensor([[1.0, 3.0, 2.0, 4.0]])
    # Rank differences (0, 1, 1, 0): rho = 1 - 6 * 2 / (4 * (16 - 1)) = 0.8.
    assert explanation_distance(a, b, "spearman").item() == pytest.approx(0.2, abs=1e-6)
    assert explanation_distance(a, b, "l2").item() == pytest.approx(2 ** 0.5, abs=1e-6)
    assert explanation_distance(a, b).item() == pytest.approx((2 / 30) ** 0.5, abs=1e-6)  # relative: / ||a||
    assert explanation_distance(torch.zeros_like(a), torch.zeros_like(a)).item() == 0.0
    assert explanation_distance(a, -a, "spearman").item() == pytest.approx(2.0, abs=1e-6)
    # A constant explanation has no ranks to correlate: rho counts as 0.
    assert explanation_distance(a, torch.ones_like(a), "spearman").item() == pytest.approx(1.0)


def test_relative_l2_compares_maps_not_their_scale():
    """An OTNN's gradients are ~50 times smaller than its twin's: raw L2 between two maps of each network differs by
    that factor even when the maps differ alike; relative L2 and 1 - Spearman do not."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(3, 1, 8, 8, generator=generator)
    b = a + 0.1 * torch.randn(3, 1, 8, 8, generator=generator)
    small, large = explanation_distance(0.27 * a, 0.27 * b, "l2"), explanation_distance(13.6 * a, 13.6 * b, "l2")
    torch.testing.assert_close(large / small, torch.full((3,), 13.6 / 0.27))
    for distance in ("relative_l2", "spearman"):
        torch.testing.assert_close(explanation_distance(0.27 * a, 0.27 * b, distance),
                                   explanation_distance(13.6 * a, 13.6 * b, distance))
    torch.testing.assert_close(explanation_distance(a, b), (a - b).flatten(1).norm(dim=1) / a.flatten(1).norm(dim=1))


def test_spearman_with_ties_matches_scipy():
    from scipy.stats import spearmanr

    generator = torch.Generator().manual_seed(1)
    a = torch.randint(0, 5, (3, 40), generator=generator).float()
    b = a + torch.randint(0, 3, (3, 40), generator=generator).float()
    ours = 1 - explanation_distance(a.view(3, 1, 5, 8), b.view(3, 1, 5, 8), "spearman")
    expected = [spearmanr(a[i].numpy(), b[i].numpy())[0] for i in range(3)]
    assert ours.tolist() == pytest.approx(expected, abs=1e-5)


def test_explanation_distance_rejects_bad_input():
    a = torch.zeros(2, 4)
    with pytest.raises(ValueError, match="shapes"):
        explanation_distance(a, torch.zeros(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        explanation_distance(a, torch.full((2, 4), float("nan")))
    with pytest.raises(ValueError, match="unknown distance"):
        explanation_distance(a, a, "cosine")


# --- Deletion and Insertion -----------------------------------------------------------------------------------------

def test_deletion_and_insertion_of_a_linear_model_by_hand():
    model = Linear(W)
    # Pixels leave (or come back) in the order of |w| = 4, 3, 2, 1.
    assert Deletion(steps=4, score="logit").curve(model, X, Y, A).tolist() == [[10, 6, 3, 1, 0]]
    assert Insertion(steps=4, score="logit").curve(model, X, Y, A).tolist() == [[0, 4, 7, 9, 10]]
    # AUC = mean of the trapezoids: (8 + 4.5 + 2 + 0.5) / 4 and (2 + 5.5 + 8 + 9.5) / 4.
    assert Deletion(steps=4, score="logit")(model, X, Y, A) == [pytest.approx(3.75)]
    assert Insertion(steps=4, score="logit")(model, X, Y, A) == [pytest.approx(6.25)]


def test_deletion_constant_baseline_and_partial_range():
    model = Linear(W)
    # Baseline 0.5: each deleted pixel i loses w_i / 2, each inserted one gains it.
    assert Deletion(steps=4, baseline=0.5, score="logit").curve(model, X, Y, A).tolist() == [[10, 8, 6.5, 5.5, 5]]
    assert Insertion(steps=4, baseline=0.5, score="logit").curve(model, X, Y, A).tolist() == [[5, 7, 8.5, 9.5, 10]]
    # Half of the 4 pixels in 2 steps: n_k = 0, 1, 2.
    assert Deletion(steps=2, max_percentage=0.5, score="logit").curve(model, X, Y, A).tolist() == [[10, 6, 3]]


def test_uniform_baseline_is_per_pixel_noise_in_range_and_seeded():
    # Output k of the identity model is pixel k: the curve of target k shows x_k until pixel k goes, then b_k.
    model = Linear(torch.eye(4))
    x = np.full((4, 1, 2, 2), 10.0, np.float32)
    targets = np.arange(4)
    a = np.tile(np.array([4.0, 3.0, 2.0, 1.0], np.float32).reshape(1, 1, 2, 2), (4, 1, 1, 1))
    metric = Deletion(steps=4, baseline="uniform", data_range=(-1.0, 2.0), seed=3, score="logit")
    curves = metric.curve(model, x, targets, a)
    for k in range(4):  # pixel k has rank k, so it is deleted at step k + 1
        assert curves[k, : k + 1].tolist() == [10.0] * (k + 1)
        assert len(set(curves[k, k + 1:].tolist())) == 1
    noise = curves[:, -1]
    assert bool(((noise >= -1) & (noise <= 2)).all()) and len(set(noise.tolist())) == 4
    metric.generator.manual_seed(3)
    assert torch.equal(metric.curve(model, x, targets, a), curves)
    # Insertion starts from the same seeded noise that Deletion ends on.
    insertion = Insertion(steps=4, baseline="uniform", data_range=(-1.0, 2.0), seed=3, score="logit").curve(
        model, x, targets, a)
    assert torch.equal(insertion[:, 0], noise)
    assert Deletion(baseline="uniform", seed=3)(model, x, targets, a) == Deletion(baseline="uniform", seed=3)(
        model, x, targets, a)
    assert Deletion(baseline="uniform", seed=3)(model, x, targets, a) != Deletion(baseline="uniform", seed=4)(
        model, x, targets, a)


def sigmoid(values) -> np.ndarray:
    return 1 / (1 + np.exp(-np.asarray(values, np.float64)))


def test_probability_and_logit_scores():
    logits = np.array([4.0, 3.0, 2.0, 1.0, 0.0])  # f_0 - f_1 after k deletions of pixels of weight 1
    model = Linear([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    # Multiclass: the softmax of the target, here sigmoid(f_0 - f_1); the default, and as Quantus's softmax=True.
    np.testing.assert_allclose(Deletion(steps=4).curve(model, X, Y, A)[0].numpy(), sigmoid(logits), rtol=1e-6)
    np.testing.assert_allclose(Deletion(steps=4, score="logit").curve(model, X, Y, A)[0].numpy(), logits)
    expected = np.mean((sigmoid(logits)[:-1] + sigmoid(logits)[1:]) / 2)
    assert Deletion(steps=4)(model, X, Y, A) == [pytest.approx(expected, abs=1e-6)]
    assert Deletion(steps=4, score="logit")(model, X, Y, A, softmax=True) == [pytest.approx(expected, abs=1e-6)]
    with pytest.raises(ValueError, match="second softmax"):
        Deletion(steps=4)(model, X, Y, A, softmax=True)
    # One output: its sigmoid. Pixels of weight 4, 3, 2, 1 leave: f = 10, 6, 3, 1, 0.
    np.testing.assert_allclose(Deletion(steps=4).curve(Linear(W), X, Y, A)[0].numpy(), sigmoid([10, 6, 3, 1, 0]),
                               rtol=1e-6)
    # One label seen as its two sides (-f, f): the sigmoid of the explained side, sigmoid(-f) for side 0, not the
    # softmax over (-f, f), which is sigmoid(-2 f).
    sides, f = LabelSides(Linear([[0.0] * 4, W[0]]), 1), np.array([10.0, 6.0, 3.0, 1.0, 0.0])
    for side, sign in ((0, -1), (1, 1)):
        curve = Deletion(steps=4).curve(sides, X, np.array([side]), A)[0].numpy()
        np.testing.assert_allclose(curve, sigmoid(sign * f), rtol=1e-6)
        assert not np.allclose(curve[1:-1], sigmoid(2 * sign * f)[1:-1])
    with pytest.raises(ValueError, match="unknown score"):
        Deletion(score="softmax")


def test_shared_forwards_keep_probability_and_logit_scores_apart():
    model, x = tiny_cnn(), np.random.default_rng(4).random((2, 1, 6, 6), dtype=np.float32)
    y, a = np.array([1, 2]), np.random.default_rng(5).random((2, 1, 6, 6), dtype=np.float32)
    alone = [Deletion(steps=3, score=score)(model, x, y, a) for score in ("logit", "probability")]
    with shared_forwards():
        shared = [Deletion(steps=3, score=score)(model, x, y, a) for score in ("logit", "probability")]
    assert shared == alone and alone[0] != alone[1]


def test_deletion_matches_quantus_pixel_flipping():
    model = tiny_cnn()
    rng = np.random.default_rng(0)
    x = rng.random((5, 1, 6, 6), dtype=np.float32)
    y = np.array([0, 1, 2, 0, 1])
    a = rng.random((5, 1, 6, 6), dtype=np.float32)
    flipping = quantus.PixelFlipping(features_in_step=3, perturb_baseline=0.3, normalise=False, disable_warnings=True)
    expected = np.array(flipping(model=model, x_batch=x, y_batch=y, a_batch=a, softmax=False))
    for batch_size in (1, 7, 256):  # chunk boundaries must not matter
        ours = Deletion(steps=12, baseline=0.3, batch_size=batch_size, score="logit").curve(model, x, y, a)
        np.testing.assert_allclose(ours[:, 1:].numpy(), expected, atol=1e-5)


# --- MuFidelity -----------------------------------------------------------------------------------------------------

def test_mufidelity_explicit_subsets_by_hand():
    model = Linear([[1.0, 2.0, 3.0, 4.0]])
    a = np.array([4.0, 1.0, 2.0, 3.0], np.float32).reshape(1, 1, 2, 2)
    removed = torch.tensor([[[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 1], [1, 0, 0, 1]]], dtype=torch.bool)
    drops = np.array([1.0, 2.0, 7.0, 5.0])  # sum of w over each subset (x = 1, baseline 0)
    sums = np.array([4.0, 1.0, 5.0, 7.0])  # sum of a over each subset
    pearson = ((drops - drops.mean()) @ (sums - sums.mean())) / (
        np.linalg.norm(drops - drops.mean()) * np.linalg.norm(sums - sums.mean()))
    metric = MuFidelity(grid_size=None, correlation="pearson")
    assert metric.correlations(model, X, Y, a, removed).item() == pytest.approx(pearson, abs=1e-6)
    # Ranks: drops (0, 1, 3, 2), sums (1, 0, 2, 3); differences (1, 1, 1, 1): rho = 1 - 6 * 4 / (4 * 15) = 0.6.
    spearman = MuFidelity(grid_size=None).correlations(model, X, Y, a, removed)
    assert spearman.item() == pytest.approx(0.6, abs=1e-6)


def test_grid_cells_by_hand():
    _, cells = grid_cells(4, 4, 2, torch.device("cpu"))
    assert cells.view(4, 4).tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    _, cells = grid_cells(5, 3, 2, torch.device("cpu"))  # rows floor(2i/5) = 0 0 0 1 1, cols floor(2j/3) = 0 0 1
    assert cells.view(5, 3).tolist() == [[0, 0, 1]] * 3 + [[2, 2, 3]] * 2


@pytest.mark.parametrize("baseline", ["zero", 0.25, "uniform"])
def test_mufidelity_of_gradient_times_input_on_a_linear_model(baseline):
    # With a baseline c, the drop of a subset is sum_S w (x - c): the attribution w (x - c) is perfect. Uniform
    # noise over the narrow range [0.25, 0.2501] is c = 0.25 up to 1e-4.
    generator = torch.Generator().manual_seed(0)
    model = Linear(torch.randn(2, 64, generator=generator))
    x = torch.rand(3, 1, 8, 8, generator=generator)
    y = np.array([0, 1, 1])
    c = 0.0 if baseline == "zero" else 0.25
    a = (model.weight.detach()[y].view(3, 1, 8, 8) * (x - c)).numpy()
    options = dict(grid_size=4, nb_samples=30, baseline=baseline, data_range=(0.25, 0.2501))
    assert MuFidelity(correlation="pearson", **options)(model, x.numpy(), y, a) == pytest.approx([1.0] * 3, abs=1e-3)
    assert MuFidelity(**options)(model, x.numpy(), y, -a) == pytest.approx([-1.0] * 3, abs=1e-3)


def test_shared_forwards_give_bit_identical_mufidelity_with_one_set_of_forwards():
    """Subsets and baseline come from the seed, not the explanation: within shared_forwards, a second explainer's
    µFidelity reuses the first one's perturbed forwards, and its scores are bit-identical to a fresh computation."""
    model, x = tiny_cnn(), np.random.default_rng(2).random((3, 1, 6, 6), dtype=np.float32)
    y = np.array([0, 2, 1])
    explanations = [saliency(model, x, y), np.random.default_rng(3).random(x.shape, dtype=np.float32)]
    metric = MuFidelity(grid_size=3, nb_samples=20, baseline="uniform", seed=7, batch_size=64)
    forwarded = []
    counting = model.register_forward_hook(lambda *_: forwarded.append(1))
    alone = [metric(model, x, y, a) for a in explanations]
    separately, forwarded[:] = len(forwarded), []
    with shared_forwards():
        shared = [metric(model, x, y, a) for a in explanations]
    counting.remove()
    assert shared == alone  # bit for bit
    chunks = math.ceil(3 * 20 / 64)  # the 60 perturbed inputs, 64 per forward
    assert len(forwarded) == separately - chunks  # the second explainer's perturbed inputs are not forwarded again


def test_mufidelity_is_seeded():
    model, x, y = tiny_cnn(), np.random.default_rng(1).random((2, 1, 6, 6), dtype=np.float32), np.array([0, 2])
    a = saliency(model, x, y)
    first = MuFidelity(grid_size=3, nb_samples=20, seed=5)
    assert first(model, x, y, a) == first(model, x, y, a)
    assert first(model, x, y, a) != MuFidelity(grid_size=3, nb_samples=20, seed=6)(model, x, y, a)


def test_mufidelity_with_pixel_cells_matches_quantus_faithfulness_correlation():
    model = tiny_cnn()
    rng = np.random.default_rng(2)
    x = rng.random((4, 1, 6, 6), dtype=np.float32)
    y = np.array([2, 1, 0, 2])
    a = saliency(model, x, y)
    runs, subset_size = 12, 8
    np.random.seed(11)
    expected = quantus.FaithfulnessCorrelation(
        nr_runs=runs, subset_size=subset_size, perturb_baseline=0.3, return_aggregate=False, disable_warnings=True
    )(model=model, x_batch=x, y_batch=y, a_batch=a)
    # The same subsets, drawn in Quantus's order: run by run, sample by sample.
    np.random.seed(11)
    removed = np.zeros((4, runs, 36), bool)
    for run in range(runs):
        for sample in range(4):
            removed[sample, run, np.random.choice(36, subset_size, replace=False)] = True
    ours = MuFidelity(grid_size=None, correlation="pearson", baseline=0.3).correlations(model, x, y, a, removed)
    np.testing.assert_allclose(ours.numpy(), expected, atol=1e-4)


# --- Robustness-Sr --------------------------------------------------------------------------------------------------

def test_robustness_sr_of_a_linear_model_by_hand():
    # f(x) = -5 at x = -1/2: moving only the pixels of M flips the sign at ||delta|| = 5 / ||w_M||.
    model, x = Linear(W), X - 0.5
    norms = np.sqrt(np.cumsum(np.square([4.0, 3.0, 2.0, 1.0])))  # ||w_M|| for the top 1..4 pixels
    metric = RobustnessSr(steps=4, max_radius=8.0, n_bisections=14, batch_size=3)  # two chunks
    tolerance = 8.0 / 2 ** 14
    radii = metric.radii(model, x, Y, A)[0].numpy()
    np.testing.assert_allclose(radii, 5 / norms, atol=tolerance)
    assert np.all(radii >= 5 / norms - 1e-6)  # the search never undercuts the true minimum
    expected = np.mean((5 / norms[:-1] + 5 / norms[1:]) / 2)
    assert metric(model, x, Y, A) == [pytest.approx(expected, abs=tolerance)]


def test_robustness_sr_argmax_and_unreachable_fractions():
    # Two classes, margin f0 - f1 = (w0 - w1) . x = 2 + 2 + 0 + 0 = 4 at x = 1; attribution ranks pixel 0 first.
    model = Linear([[2.0, 2.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    a = np.array([4.0, 3.0, 2.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    metric = RobustnessSr(steps=2, max_radius=8.0, n_bisections=14)
    radii = metric.radii(model, X, Y, a)[0].tolist()
    # Top half (pixels 0, 1): the margin falls by sqrt(4 + 4) per unit of ||delta||; all pixels: the same.
    assert radii == pytest.approx([4 / 8 ** 0.5, 4 / 8 ** 0.5], abs=8.0 / 2 ** 14)
    # 10 steps on 4 pixels: the first fraction moves floor(0.4) = 0 pixels and can never flip.
    assert RobustnessSr(steps=10, max_radius=8.0).radii(model, X, Y, a)[0, 0].item() == 8.0


def test_robustness_sr_attacks_the_explained_class():
    """The class attacked is the target explained, not the prediction: a sample predicted as another class is already
    flipped (radius 0), where attacking its prediction would give the margin over the move per unit of ||delta||."""
    model = Linear([[2.0, 2.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])  # f_0 - f_1 = 4 at x = 1: predicted 0
    a = np.array([4.0, 3.0, 2.0, 1.0], np.float32).reshape(1, 1, 2, 2)
    metric = RobustnessSr(steps=2, max_radius=8.0, n_bisections=14)
    assert metric.radii(model, X, np.array([1]), a)[0].tolist() == [0.0, 0.0]
    assert metric.radii(model, X, np.array([0]), a)[0].tolist() == pytest.approx([4 / 8 ** 0.5] * 2, abs=8.0 / 2 ** 14)
    # Three classes, x predicted 0, explained as 2: the attack on class 2 is 0; on class 0 it is not.
    three = Linear([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5]])
    assert metric.radii(three, X, np.array([2]), a)[0].tolist() == [0.0, 0.0]
    assert bool((metric.radii(three, X, np.array([0]), a) > 0).all())


def test_robustness_sr_radii_do_not_depend_on_the_batching():
    """The searches of all samples and fractions run in lockstep; alone (batch_size=1: one sample and fraction at a
    time) they give the same radii."""
    model, x = tiny_cnn(), np.random.default_rng(6).random((3, 1, 6, 6), dtype=np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(1).numpy()
    y[2] = (y[2] + 1) % 3  # one sample explained for a class it is not predicted as: radius 0, no search
    a = np.random.default_rng(7).random(x.shape, dtype=np.float32)
    options = dict(steps=4, max_radius=4.0, n_bisections=6, n_iterations=5)
    batched = RobustnessSr(batch_size=256, **options).radii(model, x, y, a)
    alone = RobustnessSr(batch_size=1, **options).radii(model, x, y, a)
    torch.testing.assert_close(batched, alone, rtol=0, atol=0)
    assert batched[2].tolist() == [0.0] * 4 and bool((batched[:2] > 0).all())


def test_robustness_sr_stops_the_searches_that_have_flipped():
    """Searches that flip leave the batch: the model sees fewer rows than ``n_iterations`` full passes."""
    rows = []

    class Counting(Linear):
        def forward(self, x):
            rows.append(len(x))
            return super().forward(x)

    model, x = Counting(W), X - 0.5
    metric = RobustnessSr(steps=4, max_radius=8.0, n_bisections=6, n_iterations=20)
    radii = metric.radii(model, x, Y, A)[0].numpy()
    norms = np.sqrt(np.cumsum(np.square([4.0, 3.0, 2.0, 1.0])))
    assert np.all(radii >= 5 / norms - 1e-6) and np.all(radii <= 5 / norms + 8.0 / 2 ** 6)
    full = 1 + 6 * (20 * 4 + 4)  # the prediction, then per bisection 20 steps and a last check of 4 searches
    assert sum(rows) < 0.8 * full


# --- Stability and ExplanationDistance ------------------------------------------------------------------------------

def test_sample_ball_is_uniform_in_the_ball():
    points = sample_ball(4000, (1, 2, 2), 0.3, torch.Generator().manual_seed(0))
    norms = points.flatten(1).norm(dim=1)
    assert float(norms.max()) <= 0.3 + 1e-6
    # Uniform in a ball of dimension d = 4: E||delta|| = r d / (d + 1) = 0.24.
    assert float(norms.mean()) == pytest.approx(0.24, abs=0.005)


def identity(model, inputs, targets, **kwargs):
    """A Quantus explain function whose explanation is the input: Stability's distances are then those of δ."""
    return np.asarray(inputs)


def test_stability_by_hand():
    model = Linear(W)
    # The saliency of a linear model is |w| everywhere: perfectly stable.
    assert Stability(nb_samples=8)(model, X, Y, A, explain_func=saliency) == [0.0]
    x = np.array([0.0, 1.0, 2.0, 3.0], np.float32).reshape(1, 1, 2, 2)
    # Explanation = input: the L2 distance is ||delta||, on average 0.3 * 4 / 5 in the 4-dimensional ball, and the
    # relative L2 (the default) that over ||x|| = sqrt(14).
    l2 = Stability(nb_samples=2000, distance="l2")(model, x, Y, x, explain_func=identity)
    assert l2[0] == pytest.approx(0.24, abs=0.01)
    relative = Stability(nb_samples=2000)(model, x, Y, x, explain_func=identity)
    assert relative[0] == pytest.approx(l2[0] / 14 ** 0.5, rel=1e-5)
    # |delta_i| <= 0.3 < 1/2 cannot reorder pixels one unit apart: the ranks never change.
    for neighbourhood in ("l2_ball", "uniform_pixel"):
        assert Stability(distance="spearman", neighbourhood=neighbourhood)(
            model, x, Y, x, explain_func=identity) == [0.0]
    with pytest.raises(ValueError, match="unknown neighbourhood"):
        Stability(neighbourhood="linf_ball")


@pytest.mark.parametrize("shape, size", [((1, 28, 28), 4.85), ((3, 109, 89), 29.55)])
def test_stability_uniform_pixel_neighbourhood_is_xpliques(shape, size):
    """``uniform_pixel``: every value moves by U(0, radius), so ||delta|| ~ radius sqrt(d / 3): 4.9 on Fashion-MNIST,
    29.5 on CelebA at 109x89 for 0.3, where the L2 ball keeps ||delta|| <= 0.3."""
    offsets = sample_neighbours(20, shape, 0.3, "uniform_pixel", torch.Generator().manual_seed(0))
    assert float(offsets.min()) >= 0 and float(offsets.max()) <= 0.3
    assert offsets.mean().item() == pytest.approx(0.15, abs=0.005)
    assert offsets.flatten(1).norm(dim=1).mean().item() == pytest.approx(size, rel=0.01)
    ball = sample_neighbours(20, shape, 0.3, "l2_ball", torch.Generator().manual_seed(0))
    torch.testing.assert_close(ball, sample_ball(20, shape, 0.3, torch.Generator().manual_seed(0)))
    # Through the metric (explanation = input, distance l2): the mean ||delta||.
    x = np.random.default_rng(0).random((1, *shape), dtype=np.float32)
    model = Linear(np.zeros((1, int(np.prod(shape))), np.float32))
    l2 = Stability(nb_samples=4, distance="l2", neighbourhood="uniform_pixel")(
        model, x, Y, x, explain_func=identity)
    assert l2[0] == pytest.approx(size, rel=0.03)



@pytest.mark.parametrize("normalise, absolute", [(False, False), (True, True)])
def test_explain_inputs_matches_quantus_explain_batch(normalise, absolute):
    """Stability explains its neighbours as Quantus's ``Metric.explain_batch`` does, with its checks as tensor
    operations; an explanation that is the same everywhere is refused with a clear error."""
    from otnn_plugin.metrics.base import Network

    x = np.random.default_rng(1).normal(size=(3, 1, 2, 2)).astype(np.float32)
    model = Linear(np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32))
    metric = Stability(normalise=normalise, abs=absolute)
    metric.explain_func, metric.explain_func_kwargs = identity, {}
    ours = metric.explain_inputs(Network(model), torch.as_tensor(x), torch.zeros(3, dtype=torch.long))
    np.testing.assert_array_equal(ours.numpy(), metric.explain_batch(model, x, np.zeros(3, np.int64)))
    metric.explain_func = lambda model, inputs, targets, **kwargs: np.full_like(inputs, 0.5)
    with pytest.raises(ValueError, match="all equal"):
        metric.explain_inputs(Network(model), torch.as_tensor(x), torch.zeros(3, dtype=torch.long))

def test_explanation_distance_against_a_reference_method():
    model = Linear(W)

    def doubled(model, inputs, targets, **kwargs):
        return 2 * saliency(model, inputs, targets)

    # Saliency |w| against 2 |w|: ||w|| = sqrt(30) apart, ||w|| relative to |w|, same ranks.
    assert ExplanationDistance(doubled, distance="l2")(model, X, Y, A) == [pytest.approx(30 ** 0.5, abs=1e-5)]
    assert ExplanationDistance(doubled)(model, X, Y, A) == [pytest.approx(1.0, abs=1e-6)]
    assert ExplanationDistance(doubled, distance="spearman")(model, X, Y, A) == [pytest.approx(0.0, abs=1e-6)]


# --- JPEG complexity ------------------------------------------------------------------------------------------------

def test_jpeg_size_by_hand():
    a = np.random.default_rng(0).normal(size=(1, 3, 20, 24)).astype(np.float32)
    gray = np.abs(a[0]).mean(0)
    gray = np.round(255 * (gray - gray.min()) / (gray.max() - gray.min())).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gray, mode="L").save(buffer, format="JPEG", quality=95)
    assert JPEGComplexity()(None, np.zeros((1, 3, 20, 24)), None, a) == [pytest.approx(len(buffer.getvalue()) / 1000)]


def test_jpeg_sees_structure_that_entropy_does_not():
    rows, cols = np.mgrid[0:28, 0:28]
    smooth = np.exp(-((rows - 14.0) ** 2 + (cols - 10.0) ** 2) / 40.0).astype(np.float32)
    shuffled = np.random.default_rng(0).permutation(smooth.ravel()).reshape(28, 28)
    a = np.stack([smooth, shuffled])[:, None]
    x = np.zeros((2, 1, 28, 28), np.float32)
    jpeg = JPEGComplexity()(None, x, None, a)
    assert jpeg[1] > 1.5 * jpeg[0]
    # Sign and positive scaling do not change the map: |a| min-max scaled.
    assert jpeg_kilobytes(torch.as_tensor(-3 * a)).tolist() == jpeg
    entropy = quantus.Complexity(disable_warnings=True)(model=None, x_batch=x, y_batch=np.zeros(2, int), a_batch=a)
    assert entropy[0] == pytest.approx(entropy[1])


# --- Quantus integration and bad inputs -----------------------------------------------------------------------------

def test_quantus_evaluate_runs_our_metrics():
    model, x, y = tiny_cnn(), np.random.default_rng(3).random((3, 1, 6, 6), dtype=np.float32), np.array([0, 1, 2])
    metrics = {
        "Deletion": Deletion(steps=6),
        "MuFidelity": MuFidelity(grid_size=3, nb_samples=10),
        "RobustnessSr": RobustnessSr(steps=2, n_bisections=4, n_iterations=3),
        "JPEG": JPEGComplexity(),
    }
    for metric in metrics.values():
        for attribute in ("name", "data_applicability", "model_applicability", "score_direction",
                          "evaluation_category"):
            assert getattr(type(metric), attribute)
    results = quantus.evaluate(metrics, {"Saliency": saliency}, model, x, y, explain_func_kwargs={})
    a = saliency(model, x, y)
    for name, metric in metrics.items():
        assert results["Saliency"][name] == pytest.approx(metric(model, x, y, a))
        assert len(results["Saliency"][name]) == 3


def test_bad_inputs_raise_value_errors():
    model = Linear(W)
    with pytest.raises(ValueError, match="does not match x_batch"):
        Deletion()(model, X, Y, np.ones((1, 1, 3, 2), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        Deletion()(model, X, Y, np.full((1, 1, 2, 2), np.nan, np.float32))
    with pytest.raises(ValueError, match="empty"):
        Deletion()(model, np.zeros((0, 1, 2, 2), np.float32), np.zeros(0, int), np.zeros((0, 1, 2, 2)))
    with pytest.raises(ValueError, match="grid_size 5 does not fit"):
        MuFidelity(grid_size=5)(model, X, Y, A)
    with pytest.raises(ValueError, match="targets must index"):
        Deletion()(model, X, np.array([3]), A)
    with pytest.raises(ValueError, match="explain_func"):
        Stability()(model, X, Y, A)
    with pytest.raises(ValueError, match="unknown baseline"):
        Insertion(baseline="gaussian")

    def nan_explain(model, inputs, targets, **kwargs):
        return np.full(np.shape(inputs), np.nan, np.float32)

    with pytest.raises(ValueError, match="NaN"):
        Deletion()(model, X, Y, explain_func=nan_explain)
