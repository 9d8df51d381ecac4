"""Figures (issue 7): the Koch snowflake demo (paper Fig. 2) and the counterfactual sheets (Fig. 1, 4, 5)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
from PIL import Image
from torch import nn

from otnn_plugin import hub
from otnn_plugin.cli import main
from otnn_plugin.data import load_dataset, to_tensors
from otnn_plugin.figures import save_png
from otnn_plugin.figures._images import signed_rgb
from otnn_plugin.figures.snowflake import boundary_report, snowflake_figure, snowflake_models

#: A moved point counts as on the boundary when |f(x')| <= TOLERANCE * |f(x)|.
TOLERANCE = 0.05
PNG_LIMIT = 300_000


@pytest.fixture
def offline(monkeypatch):
    """Registry weights only: no hub round trip."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    yield
    hub.hub_reachable.cache_clear()


@pytest.fixture(scope="module")
def snowflake_test_points() -> tuple[torch.Tensor, torch.Tensor]:
    return to_tensors(load_dataset("snowflake", "test"))


def linear_score(weight: list[float], bias: float) -> nn.Module:
    """``f(x) = w . x + b``: its gradient is ``w`` everywhere, so the transport step is known by hand."""
    layer = nn.Linear(len(weight), 1)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([weight]))
        layer.bias.fill_(bias)
    return layer


def assert_png(path, limit: int = PNG_LIMIT) -> Image.Image:
    assert path.is_file() and 10_000 < path.stat().st_size < limit, f"{path}: {path.stat().st_size} bytes"
    image = Image.open(path)
    assert image.format == "PNG"
    return image


def assert_red_and_green(image: Image.Image) -> None:
    """The signed gradient maps are drawn: some pixels are clearly red, some clearly green."""
    red, green, blue = torch.from_numpy(np.array(image.convert("RGB"))).int().unbind(-1)
    assert ((red > 60) & (green < 40) & (blue < 40)).sum() > 200
    assert ((green > 60) & (red < 40) & (blue < 40)).sum() > 200


# --- the snowflake demo ------------------------------------------------------------------------------------------


def test_boundary_report_by_hand():
    points = torch.tensor([[1.0, 2.0], [-3.0, 0.5], [0.2, -0.7]])
    unit = boundary_report(linear_score([0.6, 0.8], 0.3), points)  # ||w|| = 1: t = 1 lands on f = 0 exactly
    assert unit.median_ratio < 1e-6 and unit.within_tolerance == 1.0
    torch.testing.assert_close(unit.gradient_norms, torch.ones(3))
    # ||w|| = 2: f(x') = f(x) (1 - t ||w||^2) = -3 f(x), every ratio is 3; with t = 1/4 the step lands exactly
    steep = boundary_report(linear_score([1.2, 1.6], 0.3), points)
    torch.testing.assert_close(steep.ratios, torch.full((3,), 3.0))
    assert steep.within_tolerance == 0.0 and steep.mean_gradient_norm == pytest.approx(2.0)
    assert boundary_report(linear_score([1.2, 1.6], 0.3), points, t=0.25).median_ratio < 1e-6
    with pytest.raises(ValueError, match="tolerance"):
        boundary_report(linear_score([1.0, 0.0], 0.0), points, tolerance=1.5)


def test_trained_snowflake_otnn_lands_on_its_boundary_and_the_twin_does_not(offline, snowflake_test_points):
    """Paper Prop. 2 / Fig. 2 on the registry weights: one step with t = 1 reaches f = 0 for the OTNN only."""
    points, _ = snowflake_test_points
    models = snowflake_models(pretrained=True, device="cpu")  # where the test points are
    otnn = boundary_report(models["otnn_mlp_snowflake"], points, tolerance=TOLERANCE)
    assert otnn.median_ratio < 0.02
    assert otnn.within_tolerance > 0.99
    assert otnn.mean_gradient_norm == pytest.approx(1.0, abs=0.02)
    twin = boundary_report(models["unconstrained_mlp_snowflake"], points, tolerance=TOLERANCE)
    assert twin.mean_gradient_norm > 5 and twin.median_ratio > 1 and twin.within_tolerance < 0.05


def test_snowflake_command_prints_the_table_and_writes_the_figure(offline, tmp_path, capsys):
    out = tmp_path / "figures" / "snowflake.png"
    assert main(["snowflake", "--pretrained", "--segments", "50", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.startswith(("otnn_", "unc"))}
    assert float(rows["otnn_mlp_snowflake"][0]) < 0.02 and float(rows["unconstrained_mlp_snowflake"][0]) > 1
    assert_png(out)
    assert [p.name for p in out.parent.iterdir()] == ["snowflake.png"], "no temporary file may be left behind"


def test_snowflake_command_trains_the_pair(tmp_path, capsys):
    out = tmp_path / "trained.png"
    assert main(["snowflake", "--epochs", "1", "--device", "cpu", "--quiet", "--segments", "20",
                 "--out", str(out)]) == 0
    assert "otnn_mlp_snowflake" in capsys.readouterr().out
    assert_png(out)


@pytest.mark.parametrize("arguments, message", [
    (["--pretrained", "--epochs", "3", "--out", "never.png"], "give one of them"),
    (["--out", "never.jpg"], "give a path ending in .png"),  # refused before any training
    (["--pretrained", "--segments", "-1", "--out", "never.png"], "--segments must be >= 0"),
])
def test_snowflake_command_errors_are_one_line_with_exit_code_2(arguments, message, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["snowflake", *arguments]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and not list(tmp_path.iterdir())


def test_snowflake_figure_needs_one_report_per_model(snowflake_test_points):
    points, labels = snowflake_test_points
    model = linear_score([1.0, 0.0], 0.0)
    with pytest.raises(ValueError, match="one report per model"):
        snowflake_figure({"a": model, "b": model}, points, labels, {"a": boundary_report(model, points)})


# --- image helpers -----------------------------------------------------------------------------------------------


def test_signed_maps_are_red_below_zero_green_above_and_scaled_by_their_maximum():
    rgb = signed_rgb(torch.tensor([[-2.0, -1.0], [0.0, 4.0]]))
    expected = torch.tensor([[[0.5, 0, 0], [0.25, 0, 0]], [[0, 0, 0], [0, 1, 0]]])
    torch.testing.assert_close(torch.from_numpy(rgb), expected)
    assert (signed_rgb(torch.zeros(3, 3)) == 0).all(), "an all-zero map stays black, without NaN"


def test_save_png_replaces_atomically_and_refuses_other_formats(tmp_path):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(2, 2))
    figure.subplots().plot([0, 1], [1, 0])
    path = tmp_path / "plot.png"
    path.write_bytes(b"old")
    save_png(figure, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    with pytest.raises(ValueError, match="ending in .png"):
        save_png(figure, tmp_path / "plot.jpg")


# --- counterfactual sheets ---------------------------------------------------------------------------------------


def test_fashion_sheet_of_a_pair_is_written(tmp_path, capsys, data_dir):
    out = tmp_path / "fashion.png"
    assert main(["explain", "otnn_vgg_fashionmnist_small", "--twin", "unconstrained_vgg_fashionmnist_small",
                 "--dataset", "fashion_mnist", "--samples", "1", "--random-init", "--device", "cpu",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    image = assert_png(out)
    assert image.width > image.height, "one source image: 1 + 10 columns, 4 rows (gradient and x' per model)"
    assert_red_and_green(image)


def test_celeba_sheet_of_a_pair_is_written(tmp_path, data_dir):
    out = tmp_path / "celeba.png"
    assert main(["explain", "otnn_vgg_celeba_small.subset_109x89",
                 "--twin", "unconstrained_vgg_celeba_small.subset_109x89", "--dataset", "celeba",
                 "--attributes", "Mustache", "Wearing_Hat", "--samples", "2", "--random-init", "--device", "cpu",
                 "--data-dir", str(data_dir), "--out", str(out)]) == 0
    assert_red_and_green(assert_png(out))


@pytest.mark.parametrize("arguments, message", [
    (["otnn_vgg_celeba_small.subset_109x89", "--dataset", "celeba", "--attributes", "Mustache", "Moustache"],
     "unknown attribute(s) Moustache; the models predict: Attractive"),
    (["otnn_vgg_fashionmnist_small", "--dataset", "fashion_mnist", "--attributes", "Mustache"],
     "has classes, not attributes"),
    (["otnn_vgg_fashionmnist_small", "--dataset", "fashion_mnist", "--samples", "11"], "10 classes"),
    (["otnn_vgg_fashionmnist_small", "--dataset", "celeba"], "takes inputs 1x28x28 but celeba images are 3x109x89"),
    (["otnn_vgg_fashionmnist_smal", "--dataset", "fashion_mnist"], "unknown model 'otnn_vgg_fashionmnist_smal'"),
    (["otnn_vgg_celeba_small.subset", "--dataset", "celeba"], "otnn_vgg_celeba_small.subset_109x89"),
    (["otnn_vgg_fashionmnist_small", "--dataset", "snowflake"], "holds no images"),
])
def test_explain_errors_are_one_line_with_exit_code_2(arguments, message, tmp_path, capsys, data_dir):
    out = tmp_path / "never.png"
    code = main(["explain", *arguments, "--random-init", "--device", "cpu", "--data-dir", str(data_dir),
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert not out.exists()


def test_explain_without_weights_says_where_it_looked(offline, tmp_path, monkeypatch, capsys, data_dir):
    monkeypatch.setenv("OTNN_REGISTRY", str(tmp_path / "empty_registry"))
    code = main(["explain", "otnn_vgg_fashionmnist_small", "--dataset", "fashion_mnist", "--device", "cpu",
                 "--data-dir", str(data_dir), "--out", str(tmp_path / "never.png")])
    err = capsys.readouterr().err
    assert code == 2 and "no pretrained weights" in err and "empty_registry" in err


@pytest.mark.skipif(
    not {"otnn_vgg_fashionmnist_small", "unconstrained_vgg_fashionmnist_small"} <= set(hub.registry_models()),
    reason="the trained Fashion-MNIST pair is not in registry/ yet",
)
def test_trained_otnn_counterfactuals_move_towards_their_target_and_the_twins_do_not(offline, data_dir):
    """Paper Fig. 1 and 5 (t = 10): for every class ``k`` with ``f_k(x) < 0``, the OTNN's step raises ``f_k``,
    towards class ``k``; the unconstrained twin's step, of the same form, mostly overshoots into lower ``f_k``."""
    from otnn_plugin.figures.sheets import transport

    images, labels = to_tensors(load_dataset("fashion_mnist", "test", data_dir).select(range(20)))
    x, targets = images.repeat_interleave(10, 0), torch.arange(10).repeat(20)
    towards = {}
    for family in ("otnn", "unconstrained"):
        model = timm.create_model(f"{family}_vgg_fashionmnist_small", pretrained=True).eval()
        moved = transport(model, x, targets, t=10.0)
        other = (targets != labels.repeat_interleave(10)) & (moved.scores < 0)
        towards[family] = (moved.counterfactual_scores > moved.scores)[other].float().mean().item()
    assert towards["otnn"] > 0.99 and towards["unconstrained"] < 0.5, towards
