"""Issue 4: the hKR loss family (paper Eq. 1, 3, 4, 5 and multilabel), checked against hand-computed values."""
from __future__ import annotations

import math
import re

import pytest
import torch

import otnn_plugin
from otnn_plugin.data import load_dataset, to_tensors
from otnn_plugin.layers import GroupSort2, ScaledL2NormPool2d, SpectralConv2d, SpectralLinear
from otnn_plugin.losses import (
    HKRAutoLoss,
    HKRLoss,
    HKRMulticlassLoss,
    HKRMultilabelLoss,
    SoftHKRMulticlassLoss,
    check_outputs,
    create_loss,
    list_losses,
)

NAMES = ["hkr", "hkr_auto", "hkr_multiclass", "hkr_multilabel", "soft_hkr_multiclass"]
#: The head-size arguments each loss needs.
SIZES = {"soft_hkr_multiclass": dict(num_classes=3), "hkr_multilabel": dict(num_labels=2)}


def tensor(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def approx(value: float):
    return pytest.approx(value, rel=1e-6, abs=1e-9)


# Binary batch shared by Eq. 1 and Eq. 3: y f = [2, 1, -0.5, -0.5].
F_BINARY = [2.0, -1.0, 0.5, -0.5]
Y_PLUS_MINUS = [1, -1, -1, 1]
Y_ZERO_ONE = [1, 0, 0, 1]


# --- Eq. 1 ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("targets", [Y_PLUS_MINUS, Y_ZERO_ONE, [1.0, 0.0, 0.0, 1.0], [True, False, False, True]])
def test_hkr_by_hand(targets):
    loss = HKRLoss(lam=2.0, margin=1.0)
    kr = (-1.0 + 0.5) / 2 - (2.0 - 0.5) / 2
    hinge = (0.0 + 0.0 + 1.5 + 1.5) / 4  # (1 - y f)_+ for y f = 2, 1, -0.5, -0.5
    assert loss(tensor(F_BINARY), torch.tensor(targets)).item() == approx(kr + 2.0 * hinge)


def test_hkr_accepts_column_outputs_and_targets():
    loss, outputs = HKRLoss(lam=2.0, margin=1.0), tensor(F_BINARY)
    expected = loss(outputs, torch.tensor(Y_PLUS_MINUS))
    assert loss(outputs[:, None], torch.tensor(Y_PLUS_MINUS)) == expected
    assert loss(outputs[:, None], torch.tensor(Y_ZERO_ONE)[:, None]) == expected


@pytest.mark.parametrize("positive", [[1, 1], [1.0, 1.0]])
def test_hkr_one_class_batches(positive):
    loss = HKRLoss(lam=1.0, margin=2.0)
    # All ones is the positive class in both encodings: KR = 0 - mean(1, 3); hinge = mean((2-1)_+, (2-3)_+).
    assert loss(tensor([1.0, 3.0]), torch.tensor(positive)).item() == approx(0 - 2.0 + (1.0 + 0.0) / 2)
    # All negatives: KR = mean(1, 3) - 0; hinge = mean(2 + 1, 2 + 3).
    for negative in ([0, 0], [-1, -1]):
        assert loss(tensor([1.0, 3.0]), torch.tensor(negative)).item() == approx(2.0 - 0 + (3.0 + 5.0) / 2)


# --- Eq. 3 ---------------------------------------------------------------------------------------------------------

def test_hkr_auto_by_hand_and_its_margin_gradient():
    loss = HKRAutoLoss(alpha=0.25, init_margin=1.5)
    assert loss.lam == 4.0 and loss.margin.item() == pytest.approx(1.5)
    value = loss(tensor(F_BINARY), torch.tensor(Y_PLUS_MINUS))
    kr = (-1.0 + 0.5) / 2 - (2.0 - 0.5) / 2
    hinge = (0.0 + 0.5 + 2.0 + 2.0) / 4  # (1.5 - y f)_+ for y f = 2, 1, -0.5, -0.5
    assert value.item() == approx(kr + 4.0 * (hinge - 0.25 * 1.5))
    # d/dm = lam * (fraction with y f < m - alpha) = 4 * (3/4 - 1/4); softplus' = sigmoid(raw) = 1 - exp(-m).
    value.backward()
    assert loss.raw_margin.grad.item() == approx(4.0 * (0.75 - 0.25) * (1 - math.exp(-1.5)))


@pytest.mark.parametrize("alpha", [0.1, 0.3, 0.5])
def test_hkr_auto_margin_settles_where_a_fraction_alpha_is_inside(alpha):
    """Paper Sec. 4: with f fixed, the learned margin is the alpha-quantile of y f(x)."""
    y_times_f = torch.empty(2000).uniform_(-0.2, 3.8)
    targets = torch.where(torch.rand(2000) < 0.5, 1, -1)
    outputs = targets * y_times_f
    loss = HKRAutoLoss(alpha=alpha)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.02)
    for _ in range(400):
        optimizer.zero_grad()
        loss(outputs, targets).backward()
        optimizer.step()
    margin = loss.margin.item()
    assert (y_times_f < margin).double().mean().item() == pytest.approx(alpha, abs=0.01)
    assert margin == pytest.approx(-0.2 + 4.0 * alpha, abs=0.05)  # the alpha-quantile of U(-0.2, 3.8)


def test_hkr_auto_margin_stays_positive_and_moves_when_alpha_is_out_of_reach():
    # 40% of the samples are misclassified, so no m >= 0 has only alpha = 10% inside: m shrinks toward 0.
    targets = torch.tensor([1, -1] * 50)
    outputs = targets * torch.linspace(-0.4, 0.6, 100)
    loss = HKRAutoLoss(alpha=0.1, init_margin=0.5)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        loss(outputs, targets).backward()
        optimizer.step()
    assert 0 < loss.margin.item() < 0.05


# --- Eq. 4 ---------------------------------------------------------------------------------------------------------

F_CLASSES = [[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [-0.2, 0.1, 0.6]]


def test_hkr_multiclass_by_hand_with_a_class_absent_from_the_batch():
    loss = HKRMulticlassLoss(lam=0.5, margin=1.0)
    value = loss(tensor(F_CLASSES), torch.tensor([0, 0, 2]))
    kr = (-0.2 - (1.0 + 0.3) / 2) + ((-0.5 + 0.8 + 0.1) / 3 - 0) + ((0.2 - 1.0) / 2 - 0.6)  # class 1: no positive
    hinge_rows = [
        (1 - 1.0) + (1 - 0.5) + (1 + 0.2),  # y = 0
        (1 - 0.3) + (1 + 0.8) + 0.0,  # y = 0: (1 - 1.0)_+ = 0
        (1 - 0.2) + (1 + 0.1) + (1 - 0.6),  # y = 2
    ]
    assert value.item() == approx(kr + 0.5 * sum(hinge_rows) / 3)


def test_hkr_multiclass_one_class_batch():
    loss = HKRMulticlassLoss(lam=1.0, margin=1.0)
    outputs = tensor([[2.0, -1.5], [3.0, 0.5]])
    kr = (0 - (2.0 + 3.0) / 2) + ((-1.5 + 0.5) / 2 - 0)
    hinge = ((0.0 + 0.0) + (0.0 + 1.5)) / 2  # (1 - 2)_+ + (1 - 1.5)_+, (1 - 3)_+ + (1 + 0.5)_+
    assert loss(outputs, torch.tensor([0, 0])).item() == approx(kr + hinge)


# --- Eq. 5 ---------------------------------------------------------------------------------------------------------

def softmax(values: list[float]) -> list[float]:
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


@pytest.mark.parametrize("temperature", [0.0, 1.0, 5.0])
def test_soft_hkr_multiclass_by_hand(temperature):
    loss = SoftHKRMulticlassLoss(num_classes=3, alpha=0.5, lam=2.0, init_margin=1.0, temperature=temperature)
    outputs = tensor(F_CLASSES[:2])
    kr = (0.3 - 1.0) + ((-0.5 + 0.8) / 2 - 0) + (0.2 - (-1.0))  # y = [0, 2]: class 1 has no positive
    w1, w2 = softmax([temperature * -0.5, temperature * 0.2])  # row 0, y = 0: the other classes 1 and 2
    hinge0 = max(1.0 - 1.0 / 2 + (w1 * -0.5 + w2 * 0.2) / 2, 0.0)
    w0, w1 = softmax([temperature * 0.3, temperature * 0.8])  # row 1, y = 2: the other classes 0 and 1
    hinge1 = max(1.0 + 1.0 / 2 + (w0 * 0.3 + w1 * 0.8) / 2, 0.0)
    expected = kr + 2.0 * ((hinge0 - 0.5 * 1.0) + (hinge1 - 0.5 * 1.0)) / 2
    assert loss(outputs, torch.tensor([0, 2])).item() == approx(expected)


def test_soft_hkr_multiclass_one_class_batch_and_per_class_margin_gradients():
    loss = SoftHKRMulticlassLoss(num_classes=3, alpha=0.25, lam=2.0, init_margin=1.0)
    outputs = tensor([[1.0, -0.5, 0.2], [3.0, 0.0, 0.0]])
    value = loss(outputs, torch.tensor([0, 0]))
    kr = (0 - (1.0 + 3.0) / 2) + ((-0.5 + 0.0) / 2 - 0) + ((0.2 + 0.0) / 2 - 0)
    w1, w2 = softmax([-0.5, 0.2])
    hinge0 = 1.0 - 0.5 + (w1 * -0.5 + w2 * 0.2) / 2
    hinge1 = max(1.0 - 1.5 + 0.0, 0.0)  # the others are both 0, whatever their weights
    assert value.item() == approx(kr + 2.0 * ((hinge0 - 0.25) + (hinge1 - 0.25)) / 2)
    # Only class 0's margin gets a gradient: lam / B * (1 active hinge - alpha * 2 samples) * sigmoid(raw).
    value.backward()
    expected = 2.0 / 2 * (1 - 0.25 * 2) * (1 - math.exp(-1.0))
    assert loss.raw_margin.grad.tolist() == [approx(expected), 0.0, 0.0]


# --- multilabel ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["zero_one", "plus_minus"])
def test_hkr_multilabel_by_hand(encoding):
    loss = HKRMultilabelLoss(num_labels=2, alpha=0.5, init_margin=1.0)
    assert loss.lam == 2.0 and loss.margin.shape == (2,)
    outputs = tensor([[1.0, -2.0], [-0.5, 0.5], [2.0, 0.0]])
    targets = torch.tensor([[1, 0], [0, 0], [1, 1]])
    if encoding == "plus_minus":
        targets = targets * 2 - 1
    label0 = (-0.5 - (1.0 + 2.0) / 2) + 2.0 * ((0.0 + 0.5 + 0.0) / 3 - 0.5 * 1.0)
    label1 = ((-2.0 + 0.5) / 2 - 0.0) + 2.0 * ((0.0 + 1.5 + 1.0) / 3 - 0.5 * 1.0)
    assert loss(outputs, targets).item() == approx((label0 + label1) / 2)


def test_hkr_multilabel_learns_one_margin_per_label():
    y_times_f = torch.stack([torch.empty(1000).uniform_(0.0, 1.0), torch.empty(1000).uniform_(0.0, 4.0)], dim=1)
    targets = torch.where(torch.rand(1000, 2) < 0.3, 1, 0)
    outputs = (targets * 2 - 1) * y_times_f
    loss = HKRMultilabelLoss(num_labels=2, alpha=0.25)
    optimizer = torch.optim.Adam(loss.parameters(), lr=0.02)
    for _ in range(400):
        optimizer.zero_grad()
        loss(outputs, targets).backward()
        optimizer.step()
    assert loss.margin.tolist() == [pytest.approx(0.25, abs=0.03), pytest.approx(1.0, abs=0.1)]


# --- bad input -----------------------------------------------------------------------------------------------------

NAN = float("nan")
BAD_INPUTS = [
    ("hkr", [0.1, 0.2], [0, 2], "found [2]"),
    ("hkr", [0.1, 0.2], [0.5, 1.0], "found [0.5]"),
    ("hkr", [0.1, 0.2], [NAN, 1.0], "in {0, 1} or {-1, +1}, found [nan]"),
    ("hkr", [0.1, 0.2, 0.3], [0, -1, 1], "mix 0 and -1"),
    ("hkr", [0.1, 0.2], [1, 0, 1], "shape"),
    ("hkr", [[0.1, 0.2]], [1], "1 output"),
    ("hkr", [NAN, 0.2], [1, 0], "NaN"),
    ("hkr", [[[0.1]]], [1], "(batch,) or (batch, 1)"),
    ("hkr", [], [], "empty"),
    ("hkr_auto", [0.1, float("inf")], [1, 0], "NaN or inf"),
    ("hkr_multiclass", [[0.1, 0.2, 0.3]], [3], "in [0, 2]"),
    ("hkr_multiclass", [[0.1, 0.2, 0.3]], [-1], "found [-1]"),
    ("hkr_multiclass", [[0.1, 0.2, 0.3]], [1.0], "integer"),
    ("hkr_multiclass", [[0.1, 0.2, 0.3]], [[0, 1, 0]], "argmax"),
    ("hkr_multiclass", [[NAN, 0.2, 0.3]], [1], "NaN"),
    ("hkr_multiclass", [0.1, 0.2], [1, 0], "(batch, classes)"),
    ("hkr_multiclass", [[0.1]], [0], "at least 2 outputs"),
    ("soft_hkr_multiclass", [[0.1, 0.2]], [1], "3 margins"),
    ("soft_hkr_multiclass", [[0.1, 0.2, 0.3]], [5], "in [0, 2]"),
    ("hkr_multilabel", [[0.1, 0.2]], [[1, 2]], "found [2]"),
    ("hkr_multilabel", [[0.1, 0.2]], [1, 0], "shape"),
    ("hkr_multilabel", [0.1, 0.2], [1, 0], "(batch, labels)"),
    ("hkr_multilabel", [[0.1, 0.2, 0.3]], [[1, 0, 1]], "2 margins"),
    ("hkr_multilabel", [[NAN, 0.2]], [[1, 0]], "NaN"),
]


@pytest.mark.parametrize("name, outputs, targets, message", BAD_INPUTS)
def test_bad_inputs_raise_value_error_naming_the_problem(name, outputs, targets, message):
    loss = create_loss(name, **SIZES.get(name, {}))
    with pytest.raises(ValueError, match=re.escape(message)):
        loss(tensor(outputs), torch.tensor(targets))


@pytest.mark.parametrize("name, kwargs, message", [
    ("hkr", dict(lam=0.0), "lam must be > 0"),
    ("hkr", dict(margin=-1.0), "margin must be > 0"),
    ("hkr_auto", dict(alpha=0.0), r"alpha, .* must be in \(0, 1\]"),
    ("hkr_auto", dict(alpha=1.5), r"alpha, .* must be in \(0, 1\]"),
    ("hkr_auto", dict(init_margin=0.0), "init_margin must be > 0"),
    ("soft_hkr_multiclass", dict(num_classes=3, temperature=-1.0), "temperature must be >= 0"),
    ("soft_hkr_multiclass", dict(num_classes=1), "at least 2"),
    ("hkr_multilabel", dict(num_labels=0), "positive int"),
    ("hkr_multilabel", dict(num_labels=2.0), "positive int"),
])
def test_bad_hyperparameters(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_loss(name, **kwargs)


# --- registry ------------------------------------------------------------------------------------------------------

def test_registry_lists_and_builds_every_loss():
    assert list_losses() == NAMES and otnn_plugin.list_losses() == NAMES
    for name in NAMES:
        loss = otnn_plugin.create_loss(name, **SIZES.get(name, {}))
        assert isinstance(loss, torch.nn.Module) and loss.output_kind in ("binary", "multiclass", "multilabel")
        assert isinstance(loss.margin, torch.Tensor) and (loss.margin > 0).all()
        assert (len(list(loss.parameters())) == 1) == hasattr(loss, "alpha")  # learned margins are the only parameters
        if hasattr(loss, "alpha"):
            assert loss.lam == pytest.approx(1 / loss.alpha)


def test_paper_defaults():
    assert create_loss("soft_hkr_multiclass", num_classes=10).lam == pytest.approx(5.0)  # Fashion-MNIST, A.2.3
    assert create_loss("hkr_multilabel", num_labels=22).lam == pytest.approx(20.0)  # CelebA, A.2.3
    assert create_loss("hkr_multiclass").margin.item() == 0.5  # Table 8


def test_learned_margins_go_to_the_optimizer_with_the_model():
    model = torch.nn.Linear(4, 3)
    loss = create_loss("soft_hkr_multiclass", num_classes=3)
    optimizer = torch.optim.SGD([*model.parameters(), *loss.parameters()], lr=0.1)
    before = loss.margin.detach().clone()
    loss(model(torch.randn(8, 4)), torch.arange(8) % 3).backward()
    optimizer.step()
    assert not torch.equal(loss.margin, before)


@pytest.mark.parametrize("name, kwargs, message", [
    ("hkr_multiclas", {}, "did you mean 'hkr_multiclass'"),
    ("cross_entropy", {}, "valid: hkr, hkr_auto"),
    ("hkr", dict(margn=1.0), "did you mean 'margin'"),
    ("hkr_auto", dict(margin=1.0), "valid: alpha, init_margin, lam"),
    ("soft_hkr_multiclass", {}, "needs num_classes="),
])
def test_create_loss_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_loss(name, **kwargs)


def test_check_outputs():
    check_outputs(create_loss("hkr"), 1)
    check_outputs(create_loss("hkr_multiclass"), 10)
    check_outputs(create_loss("hkr_multilabel", num_labels=22), 22)
    check_outputs(torch.nn.CrossEntropyLoss(), 10)  # not an hKR loss: nothing to check
    with pytest.raises(ValueError, match="binary loss: it needs a model with 1 output, got 10"):
        check_outputs(create_loss("hkr_auto"), 10)
    with pytest.raises(ValueError, match="at least 2 outputs, got 1"):
        check_outputs(create_loss("hkr_multiclass"), 1)
    with pytest.raises(ValueError, match="10 margins .* 12 outputs"):
        check_outputs(create_loss("soft_hkr_multiclass", num_classes=10), 12)


# --- training ------------------------------------------------------------------------------------------------------

def small_otnn() -> torch.nn.Module:
    """Two 1-Lipschitz conv blocks and a 1-Lipschitz head: enough to learn Fashion-MNIST a little in a second."""
    return torch.nn.Sequential(
        SpectralConv2d(1, 16, kernel_size=3, padding=1), GroupSort2(), ScaledL2NormPool2d(kernel_size=2),
        SpectralConv2d(16, 32, kernel_size=3, padding=1), GroupSort2(), ScaledL2NormPool2d(kernel_size=2),
        torch.nn.Flatten(), SpectralLinear(32 * 7 * 7, 10),
    )


@pytest.mark.slow
def test_soft_hkr_multiclass_trains_an_otnn_on_fashion_mnist(data_dir, one_thread):
    images, labels = to_tensors(load_dataset("fashion_mnist", "train", data_dir=data_dir).select(range(1000)))
    train_x, train_y, test_x, test_y = images[:600], labels[:600], images[600:], labels[600:]
    model, loss = small_otnn(), create_loss("soft_hkr_multiclass", num_classes=10)
    check_outputs(loss, 10)
    initial_margins = loss.margin.detach().clone()
    optimizer = torch.optim.Adam([*model.parameters(), *loss.parameters()], lr=1e-3)
    for _ in range(4):
        model.train()
        for batch in torch.randperm(600).split(32):
            optimizer.zero_grad()
            loss(model(train_x[batch]), train_y[batch]).backward()
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x).argmax(1) == test_y).double().mean().item()
    assert accuracy >= 0.4, f"held-out accuracy {accuracy:.2f}, chance is 0.10"
    assert (loss.margin - initial_margins).abs().max() > 1e-3
    assert (loss.margin > 0).all()
