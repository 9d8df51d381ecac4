"""Issue 18: the transport-regime diagnostics (otnn_plugin.diagnostics) and ``otnn diagnose``."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from otnn_plugin.cli import main
from otnn_plugin.diagnostics import transport_diagnostics


def test_diagnostics_flag_a_linear_model():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.arange(12) % 3
    result = transport_diagnostics(linear, x, y, "multiclass")
    assert result["taylor_error"] < 1e-5 and result["gradient_cosine"] > 1 - 1e-5
    row = linear[1].weight.norm(dim=1)
    assert result["mean_grad_norm"] == pytest.approx(row[y].mean().item(), rel=1e-5)


def test_diagnostics_prop2_ratio_is_zero_for_a_unit_gradient_affine_head():
    """For f(x) = <w, x> + b with ||w|| = 1, x - f(x) w lands exactly on f = 0 (Prop. 2 in its simplest case)."""
    head = nn.Sequential(nn.Flatten(), nn.Linear(8, 2))
    with torch.no_grad():
        head[1].weight.copy_(nn.functional.normalize(torch.randn(2, 8), dim=1))
    x, y = torch.randn(10, 1, 2, 4), (torch.rand(10, 2) > 0.5).float()
    result = transport_diagnostics(head, x, y, "multilabel")
    assert result["prop2_ratio"] < 1e-5 and len(result["prop2_ratio_per_head"]) == 2
    assert result["mean_grad_norm"] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2 samples"):
        transport_diagnostics(head, x[:1], y[:1], "multilabel")


def test_cli_diagnose_prints_one_row_per_model_and_reads_other_weights(data_dir, tmp_path, capsys):
    assert main(["diagnose", "otnn_vgg_fashionmnist_small", "unconstrained_vgg_fashionmnist_small",
                 "--dataset", "fashion_mnist", "--samples", "16", "--data-dir", str(data_dir), "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["model"] for r in rows] == ["otnn_vgg_fashionmnist_small", "unconstrained_vgg_fashionmnist_small"]
    assert rows[0]["mean_grad_norm"] <= 1 + 1e-3 < rows[1]["mean_grad_norm"] and rows[0]["samples"] == 16
    torch.manual_seed(0)
    spectral = timm.create_model("otnn_vgg_fashionmnist_small", conv="spectral")
    weights = tmp_path / "spectral.safetensors"
    save_file({k: v.contiguous() for k, v in spectral.state_dict().items()}, str(weights))
    assert main(["diagnose", "otnn_vgg_fashionmnist_small", "--dataset", "fashion_mnist", "--samples", "8",
                 "--data-dir", str(data_dir), "--weights", str(weights), "--model-arg", "conv=spectral"]) == 0
    assert "Prop. 2 ratio" in capsys.readouterr().out
    assert main(["diagnose", "otnn_vgg_fashionmnist_small", "unconstrained_vgg_fashionmnist_small", "--dataset",
                 "fashion_mnist", "--weights", str(weights)]) == 2
    assert capsys.readouterr().err.strip().endswith("but 2 models were named")
