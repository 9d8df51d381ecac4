"""The performance suite (``python -m benchmarks``): its results schema, its table, and the exactness of the fast
layers it times (our GroupSort2 and L2-norm pooling must compute what deel-torchlip's compute)."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from deel import torchlip

from benchmarks.__main__ import BENCHMARKS, main
from benchmarks.bench_train import with_torchlip_layers
from benchmarks.report import render_markdown
from benchmarks.schema import met, target, validate, validate_result
from benchmarks.timing import ratio_summary, summarize
from otnn_plugin.layers import GroupSort2, ScaledL2NormPool2d, group_sort2, l2_norm_pool2d

# --- the suite ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick_suite(tmp_path_factory, data_dir):
    """One run of the whole suite in quick mode, threads left as they are."""
    out = tmp_path_factory.mktemp("bench")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTNN_DATA_DIR", str(data_dir))
        code = main(["--quick", "--out", str(out), "--machine", "smoke"])
    torch.set_num_threads(threads)
    return code, out


@pytest.mark.slow
def test_quick_suite_writes_valid_json_and_markdown(quick_suite):
    code, out = quick_suite
    suite = json.loads((out / "smoke-quick.json").read_text())
    assert suite["errors"] == {} and code == 0
    validate(suite)
    assert list(suite["benchmarks"]) == list(BENCHMARKS) and suite["quick"] is True
    assert suite["environment"]["threads"] >= 1 and len(suite["load_average"]["before"]) == 3
    bounded = {name: sum(row["op"] is not None for row in result["targets"])
               for name, result in suite["benchmarks"].items()}
    assert bounded == {"groupsort2": 1, "export_inference": 2, "training": 4, "explainers": 2,  # issue 10's rows
                       "rise": 0, "metrics_vs_quantus": 3, "dataset_epoch": 0, "evaluate_quick": 0,
                       "evaluate_slices": 0}
    for result in suite["benchmarks"].values():
        for case in result["cases"].values():
            for stats in case["stats"].values():
                assert len(stats["samples_s"]) >= 2 and stats["min_s"] <= stats["median_s"] <= stats["max_s"]
    table = (out / "smoke-quick.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| what")]
    assert len(rows) == sum(len(r["targets"]) for r in suite["benchmarks"].values())
    assert "quick mode" in table and "python -m benchmarks --quick" in table


@pytest.mark.slow
def test_quick_suite_times_every_stage_of_the_evaluation_slice(quick_suite):
    _, out = quick_suite
    result = json.loads((out / "smoke-quick.json").read_text())["benchmarks"]["evaluate_slices"]
    values = result["cases"]["quick"]["values"]
    assert {key for key in values if "/" in key} == {"explain/saliency", "explain/rise", "metric/deletion_zero",
                                                     "metric/mufidelity_zero"}
    assert all(seconds > 0 for seconds in values.values()) and result["params"]["note"] == "every cell scored"
    assert values["run_seconds"] >= sum(seconds for key, seconds in values.items() if "/" in key)
    assert [row["figure"] for row in result["targets"]] == ["run_seconds", "explain/rise", "metric/mufidelity_zero"]


def test_budget_study_trains_each_variant_alike_and_reports_means_and_ratios(monkeypatch, data_dir, tmp_path):
    """``benchmarks.bench_budget`` on a tiny budget: real training, figures in range, and a table whose means and
    twin ratios are those of its runs."""
    import benchmarks.bench_budget as budget

    monkeypatch.setenv("OTNN_DATA_DIR", str(data_dir))
    monkeypatch.setitem(budget.BUDGET, "train_limit", 256)
    monkeypatch.setitem(budget.BUDGET, "test_limit", 64)
    monkeypatch.setitem(budget.BUDGET, "epochs", 1)
    monkeypatch.setattr(budget, "SEEDS", (0,))
    result = budget.run(["twin", "Eq. 4"])
    otnn = result["variants"]["Eq. 4"]["runs"][0]
    assert 0 <= otnn["accuracy"] <= 1 and 0 < otnn["mean_grad_norm"] <= 1 + 1e-3 and otnn["epoch_seconds"] > 0
    result["variants"]["twin"]["runs"] = [dict(otnn, epoch_seconds=2.0), dict(otnn, epoch_seconds=4.0)]
    result["variants"]["Eq. 4"]["runs"] = [dict(otnn, accuracy=0.5, epoch_seconds=6.0),
                                           dict(otnn, accuracy=0.7, epoch_seconds=6.0)]
    row = next(line for line in budget.render_markdown(result).splitlines() if line.startswith("| Eq. 4 |"))
    assert "| 0.600 (0.500, 0.700) |" in row and "| 0.1: " in row and row.endswith("| 6 | 2.00x |")
    budget.plot(result, tmp_path / "budget.png")
    assert (tmp_path / "budget.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_budget_study_merges_a_partial_rerun_only_into_a_study_measured_alike(tmp_path):
    import benchmarks.bench_budget as budget

    def study(rows: dict, **keys) -> dict:
        base = {"budget": dict(budget.BUDGET), "seeds": list(budget.SEEDS), "cpu": "cpu A", "threads": 1}
        return {**base, **keys, "variants": {name: {"runs": [value]} for name, value in rows.items()}}

    path = tmp_path / "budget.json"
    assert budget.merge(study({"shallow": 1}), path) is None
    path.write_text(json.dumps(study({"twin": 0, "shipped": 0, "shallow": 0})))
    merged = budget.merge(study({"shallow": 1, "Eq. 4": 2}), path)
    assert list(merged["variants"]) == ["twin", "shipped", "Eq. 4", "shallow"]  # the order of VARIANTS
    assert [merged["variants"][name]["runs"] for name in ("twin", "Eq. 4", "shallow")] == [[0], [2], [1]]
    assert budget.merge(study({"shallow": 1}, cpu="cpu B"), path) is None
    assert budget.merge(study({"shallow": 1}, threads=2), path) is None


def test_bad_arguments_exit_2_with_one_line(capsys):
    assert main(["--only", "nonsense"]) == 2
    assert "unknown benchmark(s) nonsense" in capsys.readouterr().err
    assert main(["--threads", "0", "--only", "groupsort2"]) == 2


def _result(samples_a, samples_b, op=">=", bound=2.0):
    stats = {"a": summarize(samples_a), "b": summarize(samples_b)}
    return {"name": "toy", "command": "python -m benchmarks.toy", "params": {},
            "cases": {"c": {"stats": stats, "ratios": {"a_over_b": ratio_summary(stats, "a", "b")}}},
            "targets": [target("c", "a_over_b", "a / b", "-", op, bound)]}


def test_ratio_summary_pairs_the_rounds():
    summary = _result([2.0, 4.0, 6.0, 8.0, 100.0], [1.0, 1.0, 2.0, 2.0, 1.0])["cases"]["c"]["ratios"]["a_over_b"]
    assert (summary["q1"], summary["median"], summary["q3"]) == (3.0, 4.0, 4.0)  # quartiles of 2, 4, 3, 4, 100
    assert summary["of_medians"] == 6.0  # median 6 / median 1
    assert ratio_summary({"a": summarize([1.0]), "b": summarize([4.0])}, "a", "b", scale=2.0)["median"] == 0.5


def test_targets_are_met_or_not():
    for a_samples, op, bound, expected in (([3.0, 3.0], ">=", 2.0, True), ([1.0, 1.0], ">=", 2.0, False),
                                           ([1.0, 1.0], "<=", 1.1, True)):
        result = _result(a_samples, [1.0, 1.0], op, bound)
        assert met(result, result["targets"][0]) is expected
    with pytest.raises(ValueError, match="needs both op"):
        target("c", "a_over_b", "a / b", op="<=")


@pytest.mark.parametrize("break_it, message", [
    (lambda r: r.pop("cases"), "lacks cases"),
    (lambda r: r["cases"]["c"]["stats"]["a"].update(median_s=float("nan")), "median_s must be a finite"),
    (lambda r: r["cases"]["c"]["ratios"]["a_over_b"].update(numerator="z"), "names 'z', which was not timed"),
    (lambda r: r["targets"][0].update(figure="b_over_a"), "names ratio 'b_over_a'"),
    (lambda r: r["targets"][0].update(case="d"), "names case 'd'"),
])
def test_validate_names_what_is_wrong(break_it, message):
    result = _result([1.0, 2.0], [1.0, 1.0])
    break_it(result)
    with pytest.raises(ValueError, match=message):
        validate_result(result)


def test_markdown_table_marks_missed_targets():
    suite = {"schema": 1, "machine": "toy", "quick": False, "command": "python -m benchmarks", "started": "now",
             "seconds": 60.0, "load_average": {"before": [1.0, 1.0, 1.0], "after": [2.0, 2.0, 2.0]},
             "environment": {"torch": "x", "threads": 1, "cpu": "cpu", "cores": 2, "device": "cpu"},
             "benchmarks": {"toy": _result([1.0, 1.0], [1.0, 1.0])}, "errors": {"other": "RuntimeError: boom"}}
    table = render_markdown(suite, source="results/toy.json")
    assert "| a / b | - | >= 2x | 1.00x (1.00-1.00) | **no** | `python -m benchmarks.toy` |" in table
    assert "`other`: RuntimeError: boom" in table and "python -m benchmarks.report results/toy.json" in table
    assert "1.00 / 1.00 / 1.00 before, 2.00 / 2.00 / 2.00 after" in table
    suite["schema"] = 0
    with pytest.raises(ValueError, match="schema 0"):
        render_markdown(suite)


# --- the fast layers are exact ------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("shape", [(3, 8, 5, 5), (4, 6), (2, 4, 3)])
def test_group_sort2_equals_torchlip_bit_for_bit(dtype, shape):
    x = torch.randn(shape, dtype=dtype)
    x[:, 1::2] += (x[:, 0::2] == x[:, 1::2]).to(dtype)  # no tied pair: at ties the gradients differ by design (below)
    x.requires_grad_()
    ours, theirs = group_sort2(x), torchlip.GroupSort2()(x)
    weights = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.equal(ours, theirs) and torch.equal(g_ours, g_theirs)
    with torch.no_grad():
        assert torch.equal(group_sort2(x), theirs)


def test_group_sort2_layouts_special_values_and_ties():
    x = torch.randn(4, 8, 6, 6).to(memory_format=torch.channels_last).requires_grad_()
    (g_ours,) = torch.autograd.grad(GroupSort2()(x).sum(), x)  # an expanded (stride 0) incoming gradient
    (g_theirs,) = torch.autograd.grad(torchlip.GroupSort2()(x).sum(), x)
    assert torch.equal(g_ours, g_theirs)
    x = torch.tensor([[2.0, 1.0, 1.0, 3.0]], requires_grad=True)
    grad = torch.tensor([[float("nan"), float("inf"), -5.0, 7.0]])
    (routed,) = torch.autograd.grad(group_sort2(x), x, grad)
    assert routed[0, 0] == float("inf") and routed[0, 1].isnan() and routed[0, 2:].tolist() == [-5.0, 7.0]
    tie = torch.tensor([[1.0, 1.0]], requires_grad=True)
    (g_tie,) = torch.autograd.grad(group_sort2(tie), tie, torch.tensor([[1.0, 10.0]]))
    assert g_tie.tolist() == [[1.0, 10.0]]  # each gradient to its own input (torchlip: [[11, 0]])
    (g_again,) = torch.autograd.grad((group_sort2(x) ** 2).sum(), x, create_graph=True)
    (g_twice,) = torch.autograd.grad(g_again.sum(), x)  # differentiable to any order (tests/test_layers.py)
    assert g_twice.tolist() == [[2.0, 2.0, 2.0, 2.0]]


@pytest.mark.parametrize("shape", [(2, 3, 8, 6), (2, 3, 9, 7), (3, 5, 5)])
def test_l2_norm_pooling_equals_torchlip_bit_for_bit(shape):
    x = torch.randn(shape, requires_grad=True)
    ours, theirs = ScaledL2NormPool2d(2)(x), torchlip.ScaledL2NormPool2d(2)(x)
    weights = torch.randn_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), x)
    (g_theirs,) = torch.autograd.grad((theirs * weights).sum(), x)
    assert torch.equal(ours, theirs) and torch.equal(g_ours, g_theirs)
    with torch.no_grad():
        assert torch.equal(l2_norm_pool2d(x, 2), theirs)


def test_l2_norm_pooling_other_windows_zero_windows_and_options():
    x = torch.randn(2, 3, 9, 8, requires_grad=True)
    for kernel in (3, (2, 4)):
        ours, theirs = ScaledL2NormPool2d(kernel)(x), torchlip.ScaledL2NormPool2d(kernel)(x)
        (g_ours,) = torch.autograd.grad(ours.sum(), x)
        (g_theirs,) = torch.autograd.grad(theirs.sum(), x)
        assert torch.allclose(ours, theirs, rtol=1e-6, atol=0)
        assert torch.allclose(g_ours, g_theirs, rtol=1e-6, atol=1e-7)
    zeros = torch.zeros(1, 1, 4, 4)
    zeros[0, 0, 2:, 2:] = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    zeros.requires_grad_()
    (grad,) = torch.autograd.grad(ScaledL2NormPool2d(2)(zeros).sum(), zeros)
    assert grad[0, 0, 2, 2:].tolist() == [pytest.approx(0.6), pytest.approx(0.8)] and grad.isfinite().all()
    assert grad[0, 0, :2].abs().sum() == 0  # an all-zero window: gradient 0, as torchlip gives
    x = torch.randn(2, 3, 9, 9)
    for options in ({"k_coef_lip": 0.5}, {"ceil_mode": True}):
        assert torch.equal(ScaledL2NormPool2d(2, **options)(x), torchlip.ScaledL2NormPool2d(2, **options)(x))


@pytest.mark.parametrize("name, kwargs, shape", [
    ("otnn_vgg_fashionmnist_small", {}, (1, 28, 28)),
    ("otnn_vgg_celeba_small", {"img_size": (109, 89)}, (3, 109, 89)),
])
def test_models_with_our_layers_equal_models_with_torchlips(name, kwargs, shape):
    """Outputs, input gradients and weight gradients, bit for bit, in training and in eval mode."""
    ours = timm.create_model(name, **kwargs)
    theirs = with_torchlip_layers(ours)
    assert any(isinstance(m, torchlip.GroupSort2) for m in theirs.modules())
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    x = torch.rand(4, *shape)
    for mode in ("train", "eval"):
        runs = []
        for model in (ours, theirs):
            getattr(model, mode)()
            model.zero_grad()
            inputs = x.clone().requires_grad_()
            outputs = model(inputs)
            (outputs * torch.linspace(-1, 1, outputs.shape[1])).sum().backward()
            runs.append((outputs, inputs.grad, [p.grad for p in model.parameters()]))
        (out_ours, grad_ours, weights_ours), (out_theirs, grad_theirs, weights_theirs) = runs
        assert torch.equal(out_ours, out_theirs) and torch.equal(grad_ours, grad_theirs), mode
        for g_ours, g_theirs in zip(weights_ours, weights_theirs):
            assert (g_ours is None and g_theirs is None) or torch.equal(g_ours, g_theirs), mode


def test_compare_leaderboards_reports_differing_verdicts_and_means():
    from benchmarks.compare_leaderboards import compare

    def setting(verdict, mean):
        return {"verdicts": [{"claim": "c", "metric": "m", "explainer": "saliency", "verdict": verdict}],
                "cells": [{"model": "OTNN", "explainer": "saliency", "metric": "m", "mean": mean, "se": 0.1},
                          {"model": "Linear", "explainer": "saliency", "metric": "m", "mean": 1e-7, "se": 1e-9}]}

    same = compare(setting("confirmed", 1.0), setting("confirmed", 1.1))
    assert same["differing_verdicts"] == [] and same["largest_z"] == pytest.approx(0.71, abs=0.01)
    apart = compare(setting("confirmed", 1.0), setting("inconclusive", 2.0))
    assert apart["differing_verdicts"] == [("c", "m", "saliency")]
    assert apart["cells_beyond_1.96"] == [(7.07, ("OTNN", "saliency", "m"))]


def test_compare_leaderboards_refuses_what_is_not_a_leaderboard_in_one_line(tmp_path, capsys):
    from benchmarks.compare_leaderboards import main

    (tmp_path / "bad.json").write_text("{}")
    for given in (tmp_path / "missing.json", tmp_path / "bad.json"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(given), str(given)])
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip().splitlines()[-1]
        assert "not the leaderboard.json of one config" in error and "Traceback" not in error
