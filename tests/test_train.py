"""Issue 6: recipes, the trainer (resume equals an uninterrupted run), scores, registry export, CLI errors."""
from __future__ import annotations

import json

import pytest
import timm
import torch
from torch import nn

from otnn_plugin.cli import main
from otnn_plugin.losses import list_losses
from otnn_plugin.train import list_recipes, load_recipe, prepare, train
from otnn_plugin.train.objectives import CROSS_ENTROPY_LOSSES, build_objective
from otnn_plugin.train.scores import evaluate

TINY = dict(epochs=2, batch_size=64, train_limit=256, test_limit=128, grad_norm_samples=8)


def test_every_shipped_recipe_is_valid():
    names = list_recipes()
    assert {"fashionmnist_otnn", "celeba_otnn", "snowflake_otnn", "celeba_small_unconstrained"} <= set(names)
    for name in names:
        recipe = load_recipe(name)
        assert recipe.model in timm.list_models(recipe.model.split("_")[0] + "_*")
        assert recipe.loss in set(list_losses()) | set(CROSS_ENTROPY_LOSSES)
        assert recipe.model.startswith("otnn_") == (recipe.loss not in CROSS_ENTROPY_LOSSES)


def test_paper_settings_are_the_papers():
    fashion, celeba = load_recipe("fashionmnist_otnn"), load_recipe("celeba_otnn")
    assert (fashion.lr, fashion.epochs, fashion.batch_size, fashion.loss) == (1e-4, 200, 128, "soft_hkr_multiclass")
    assert fashion.loss_args == {"alpha": 0.2, "lam": 5.0}
    assert (celeba.lr, celeba.loss, celeba.loss_args, celeba.augment) == (
        1e-2, "hkr_multilabel", {"alpha": 0.05, "lam": 20.0}, True)


def test_bad_recipes_are_reported(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'snowflake_otnn'"):
        load_recipe("snowflake_otn")
    bad_key = tmp_path / "bad.yaml"
    bad_key.write_text("model: otnn_mlp_snowflake\ndataset: snowflake\nloss: hkr\nepochs: 1\nlr: 0.001\nbatchsize: 3\n")
    with pytest.raises(ValueError, match="unknown setting 'batchsize' \\(did you mean 'batch_size'\\?\\)"):
        load_recipe(bad_key)
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: [unclosed\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_recipe(broken)
    with pytest.raises(ValueError, match="lr: input should be less than 1, got 5.0"):
        load_recipe("snowflake_otnn", lr=5.0)


def test_loss_must_fit_the_head_and_the_data():
    with pytest.raises(ValueError, match="binary"):
        build_objective("hkr", {}, num_outputs=10, task="multiclass")
    with pytest.raises(ValueError, match="use binary_cross_entropy"):
        build_objective("cross_entropy", {}, num_outputs=22, task="multilabel")
    with pytest.raises(ValueError, match="unknown loss 'hkr_multi'"):
        build_objective("hkr_multi", {}, num_outputs=10, task="multiclass")
    assert build_objective("soft_hkr_multiclass", {"alpha": 0.2}, 10, "multiclass").margin.shape == (10,)


class _Logits(nn.Module):
    """Returns its input: the scores of a hand-made 1-Lipschitz 'network'."""

    is_lipschitz = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 1.0


def test_scores_computed_by_hand():
    x = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.5], [0.2, 0.0, 1.0]])
    y = torch.tensor([0, 2, 2])
    scores = evaluate(_Logits(), x, y, "multiclass", (1.0, 0.5), 8, 3, torch.device("cpu"))
    assert scores["accuracy"] == pytest.approx(2 / 3)
    # radii: (3 - 0)/sqrt2 = 2.12 (correct), sample 1 wrong, (1 - 0.2)/sqrt2 = 0.566 (correct)
    assert scores["certified_accuracy"] == {"1": pytest.approx(1 / 3), "0.5": pytest.approx(2 / 3)}
    assert scores["mean_grad_norm"] == pytest.approx(1.0)

    out = torch.tensor([[1.0, -2.0], [-0.5, 0.3], [2.0, 0.1], [-1.0, -1.0]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    multi = evaluate(_Logits(), out, labels, "multilabel", (0.4,), 8, 2, torch.device("cpu"))
    # label 0: TP=1 (row0), FN=1 (row1), FP=1 (row2), TN=1 -> sens 0.5, spec 0.5
    # label 1: TP=2 (rows 1, 2), FN=0, TN=2 -> sens 1, spec 1
    assert multi["sensitivity"] == [0.5, 1.0] and multi["specificity"] == [0.5, 1.0]
    assert multi["mean_sensitivity"] == pytest.approx(0.75)
    # correct and |f| > 0.4: row0 (1.0, 2.0), row1 label1 no (0.3), row2 label1 no (0.1), row3 (1.0, 1.0) -> 4/8
    assert multi["certified_accuracy"]["0.4"] == pytest.approx(4 / 8)
    with pytest.raises(ValueError, match="grad_norm_samples=0"):
        evaluate(_Logits(), x, y, "multiclass", (1.0,), 8, 0, torch.device("cpu"))


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, data_dir):
    whole = prepare(load_recipe("snowflake_otnn", **TINY), device="cpu", data_dir=data_dir)
    train(whole, tmp_path / "whole", progress=False)

    first = prepare(load_recipe("snowflake_otnn", **{**TINY, "epochs": 1}), device="cpu", data_dir=data_dir)
    train(first, tmp_path / "split", progress=False)
    resumed = prepare(load_recipe("snowflake_otnn", **TINY), device="cpu", data_dir=data_dir)
    train(resumed, tmp_path / "split", resume=True, progress=False)

    expected, got = _state(whole.model), _state(resumed.model)
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected), "resumed weights differ"
    expected_loss, got_loss = whole.objective.state_dict(), resumed.objective.state_dict()
    assert all(torch.equal(expected_loss[k], got_loss[k]) for k in expected_loss)
    logs = [[json.loads(line) for line in (tmp_path / run / "log.jsonl").read_text().splitlines()]
            for run in ("whole", "split")]
    assert [line["test"] for line in logs[0][1:]] == [line["test"] for line in logs[1][1:] if "epoch" in line]
    assert logs[0][0]["environment"]["torch"] == torch.__version__ and logs[0][0]["recipe"]["epochs"] == 2
    assert logs[1][2] == {"event": "resume", "after_epoch": 1, "changed": {"epochs": [1, 2]}}  # the one allowed


def test_resume_accepts_a_new_description_and_logs_it(tmp_path, data_dir):
    """A recipe's description is prose: rewording it (say, after its default lam changed) does not block a resume."""
    first = prepare(load_recipe("snowflake_otnn", **{**TINY, "epochs": 1}, description="old words"), device="cpu",
                    data_dir=data_dir)
    train(first, tmp_path, progress=False)
    resumed = prepare(load_recipe("snowflake_otnn", **TINY, description="new words"), device="cpu", data_dir=data_dir)
    train(resumed, tmp_path, resume=True, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[2] == {"event": "resume", "after_epoch": 1,
                      "changed": {"description": ["old words", "new words"], "epochs": [1, 2]}}


def test_resume_takes_an_integer_setting_and_its_float_as_one_but_not_a_boolean(tmp_path, data_dir):
    """``--loss-arg lam=300`` parses to 300, a recipe file says 300.0: the same setting; True is not 1.0."""
    from otnn_plugin.train.checkpoint import _settings_differences

    first = prepare(load_recipe("snowflake_otnn", **{**TINY, "epochs": 1}, loss_args={"lam": 300}), device="cpu",
                    data_dir=data_dir)
    train(first, tmp_path, progress=False)
    resumed = prepare(load_recipe("snowflake_otnn", **TINY, loss_args={"lam": 300.0}), device="cpu",
                      data_dir=data_dir)
    train(resumed, tmp_path, resume=True, progress=False)
    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert log[2] == {"event": "resume", "after_epoch": 1, "changed": {"epochs": [1, 2]}}
    assert _settings_differences({"loss_args": {"balanced": True}}, {"loss_args": {"balanced": 1.0}})
    assert _settings_differences({"lr": 0.002}, {"lr": 0.003})


def test_weight_decay_shrinks_the_weights_as_adamw_and_the_card_names_it(tmp_path, data_dir):
    """``weight_decay`` is AdamW's decoupled decay: the twin's weights end smaller; 0 keeps the paper's Adam."""
    from otnn_plugin.train.card import _optimiser

    norms = {}
    for decay in (0.0, 0.5):
        prepared = prepare(load_recipe("snowflake_unconstrained", **TINY, weight_decay=decay), device="cpu",
                           data_dir=data_dir)
        train(prepared, tmp_path / str(decay), progress=False)
        norms[decay] = sum(p.norm() ** 2 for n, p in prepared.model.named_parameters() if n.endswith("weight"))
    assert norms[0.5] < 0.995 * norms[0.0]  # same seed: without the decay the two runs are identical
    assert _optimiser(load_recipe("snowflake_unconstrained", weight_decay=0.5)) == "AdamW lr 0.002 weight decay 0.5"
    assert _optimiser(load_recipe("snowflake_unconstrained")) == "Adam lr 0.002"


def test_fashion_mnist_augmentation_trains_and_the_card_says_it_is_not_the_papers(tmp_path, data_dir):
    registry = tmp_path / "registry"
    code = main(["train", "--recipe", "fashionmnist_linear", "--augment", "--epochs", "1", "--train-limit", "256",
                 "--test-limit", "64", "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--device", "cpu",
                 "--quiet", "--registry", "--registry-dir", str(registry)])
    assert code == 0
    card = (registry / "linear_fashionmnist" / "README.md").read_text()
    assert "augmented: shifts of up to 2 pixels and horizontal flips (not in the paper)" in card
    assert "augment: true" in card


def test_bf16_is_refused_where_it_breaks_the_lipschitz_bound_and_trains_the_twin(tmp_path, data_dir):
    with pytest.raises(ValueError, match="breaks the 1-Lipschitz bound"):
        prepare(load_recipe("snowflake_otnn", precision="bf16", **TINY), device="cpu", data_dir=data_dir)
    twin = prepare(load_recipe("snowflake_unconstrained", precision="bf16", **{**TINY, "epochs": 1}), device="cpu",
                   data_dir=data_dir)
    result = train(twin, tmp_path / "bf16", progress=False)
    assert 0.0 <= result.scores["accuracy"] <= 1.0
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        prepare(load_recipe("snowflake_unconstrained", precision="fp16", **TINY), device="cpu", data_dir=data_dir)


@pytest.mark.parametrize("recipe", ["snowflake_otnn", "snowflake_unconstrained"])
def test_divergence_stops_training_with_the_fix(recipe, tmp_path, data_dir):
    """An hKR loss refuses NaN outputs itself; the trainer still says where it diverged and what to change."""
    prepared = prepare(load_recipe(recipe, **TINY), device="cpu", data_dir=data_dir)
    prepared.model.register_forward_hook(lambda module, inputs, output: output * float("nan"))
    with pytest.raises(ValueError, match=r"diverged at epoch 1, batch 0 .*raise power_iterations \(now 1\)"):
        train(prepared, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


def test_trained_snowflake_otnn_learns_and_exports_to_the_registry(tmp_path, data_dir, monkeypatch):
    registry = tmp_path / "registry"
    code = main(["train", "--recipe", "snowflake_otnn", "--epochs", "3", "--train-limit", "512", "--test-limit", "256",
                 "--data-dir", str(data_dir), "--out", str(tmp_path / "run"), "--device", "cpu", "--quiet",
                 "--registry", "--registry-dir", str(registry)])
    assert code == 0
    folder = registry / "otnn_mlp_snowflake"
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architecture"] == "otnn_mlp_snowflake" and config["pretrained_cfg"]["paper_ids"]
    card = (folder / "README.md").read_text()
    assert "otnn train --recipe snowflake_otnn" in card and "Licence" in card
    assert "from otnn-plugin (1-Lipschitz dense binary classifier on 2-D points (paper Fig. 2))" in card
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["test"]["accuracy"] > 0.6 and "certified_accuracy" in log[-1]["test"]

    monkeypatch.setenv("OTNN_REGISTRY", str(registry))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from otnn_plugin import hub
    hub.hub_reachable.cache_clear()
    loaded = timm.create_model("otnn_mlp_snowflake", pretrained=True).eval()
    points = torch.randn(16, 2)
    trained = timm.create_model("otnn_mlp_snowflake")
    from safetensors.torch import load_file
    trained.load_state_dict(load_file(folder / "model.safetensors"))
    with torch.no_grad():
        assert torch.equal(loaded(points), trained.eval()(points))


@pytest.mark.parametrize("argv, message", [
    (["train", "--recipe", "no_such_recipe"], "unknown recipe"),
    (["train", "--recipe", "fashionmnist_small_otnn", "--data-dir", "/nonexistent/folder"], "/nonexistent/folder"),
    pytest.param(["train", "--recipe", "snowflake_otnn", "--device", "cuda"], "no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")),
])
def test_cli_errors_are_one_line_with_exit_code_2(argv, message, capsys, tmp_path):
    out = tmp_path / "never"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not out.exists(), "nothing may be written when the command fails"


def test_cli_refuses_an_unwritable_output_and_a_binary_loss_on_ten_classes(tmp_path, data_dir, capsys):
    recipe = tmp_path / "wrong_loss.yaml"
    recipe.write_text("model: otnn_vgg_fashionmnist_small\ndataset: fashion_mnist\nloss: hkr\nepochs: 1\nlr: 0.001\n")
    assert main(["train", "--recipe", str(recipe), "--data-dir", str(data_dir), "--out", str(tmp_path / "x")]) == 2
    assert "binary" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["train", "--recipe", "snowflake_otnn", "--data-dir", str(data_dir), "--out", str(blocker)]) == 2
    assert "not a folder" in capsys.readouterr().err
