"""Issue 22, fault injection: every wrong input is refused in one line, with a non-zero exit, and nothing written.

Each case feeds one fault (NaN or infinite values, a bad ``--out``, no network, a missing folder, a missing batch
dimension, damaged weights) to a public entry point and checks the one-line error; CLI cases also check the exit code and that no
file was created or changed. Nothing here needs the shared data or the network.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from torch import nn

import otnn_plugin.evaluate.runner as runner
from otnn_plugin import cli, hub
from otnn_plugin._files import atomic_write_text
from otnn_plugin.cli import main
from otnn_plugin.data import label_names, load_dataset
from otnn_plugin.explainers import Rise, TransportCounterfactual, explain
from otnn_plugin.metrics import Deletion, JPEGComplexity

from .conftest import REPO

NON_FINITE = [float("nan"), float("inf"), -float("inf")]


def files_under(folder: Path) -> dict[Path, bytes | None]:
    """Every file (with its content) and folder under ``folder``, to show that a refused command wrote nothing."""
    return {path: path.read_bytes() if path.is_file() else None for path in sorted(folder.rglob("*"))}


def one_line_error(code: int, capsys: pytest.CaptureFixture) -> str:
    """The error a command printed, after checking that it is one line, without traceback, with exit code 2."""
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture(scope="module")
def fashion_model() -> nn.Module:
    return timm.create_model("otnn_vgg_fashionmnist_small").eval()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(4, 1, 28, 28)


class NaNForSample(nn.Module):
    """Ten finite outputs per image, except NaN for images whose first pixel is above 0.5: a broken model."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.flatten(1))
        return torch.where(x.flatten(1)[:, :1] > 0.5, torch.nan, out)


def with_bad_values(x: torch.Tensor, value: float, samples: tuple[int, ...] = (1, 3)) -> torch.Tensor:
    x = x.clone()
    for sample in samples:
        x[sample, 0, 5, 7] = value
    return x


# --- non-finite inputs and outputs -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("method", ["saliency", "rise"])
def test_explain_refuses_non_finite_inputs_naming_the_samples(fashion_model, images, value, method):
    settings = {"n_masks": 8} if method == "rise" else {}
    with pytest.raises(ValueError, match=r"^NaN or infinite values in inputs \(samples 1, 3\): ") as caught:
        explain(fashion_model, with_bad_values(images, value).numpy(), 0, method, **settings)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("value", NON_FINITE)
def test_captum_explainers_refuse_non_finite_inputs(fashion_model, images, value):
    bad = with_bad_values(images, value, samples=(2,))
    transport = TransportCounterfactual(fashion_model)
    for attribute in (transport.attribute, transport.counterfactual,
                      lambda x, target: Rise(fashion_model).attribute(x, target, n_masks=4)):
        with pytest.raises(ValueError, match=r"in inputs \(sample 2\)"):
            attribute(bad, target=0)


def test_explainers_refuse_non_finite_model_outputs(images):
    model, x = NaNForSample(), images * 0.5
    x[2, 0, 0, 0] = 0.9
    for call in (lambda: explain(model, x, 0, "saliency"), lambda: TransportCounterfactual(model).attribute(x, 0)):
        with pytest.raises(ValueError, match=r"^NaN or infinite values in the model's outputs \(sample 2\): the model "
                                             r"is broken"):
            call()
    with pytest.raises(ValueError, match=r"in the model's outputs on masked inputs \(samples 0, 1, 2, 3\)"):
        Rise(lambda inputs: torch.full((len(inputs), 10), torch.nan)).attribute(x, 0, n_masks=4)


@pytest.mark.parametrize("value", NON_FINITE)
@pytest.mark.parametrize("metric", [Deletion(steps=2), JPEGComplexity()])
def test_metrics_refuse_non_finite_inputs_naming_the_samples(fashion_model, images, value, metric):
    x, y, a = with_bad_values(images, value).numpy(), np.zeros(4, np.int64), np.random.rand(4, 1, 28, 28)
    with pytest.raises(ValueError, match=r"^NaN or infinite values in x_batch \(samples 1, 3\): "):
        metric(fashion_model, x, y, a.astype(np.float32))


def test_metrics_refuse_non_finite_model_outputs(images):
    x = images.numpy() * 0.5
    x[0, 0, 0, 0] = 0.9
    with pytest.raises(ValueError, match=r"in the model's outputs \(sample 0\)"):
        Deletion(steps=2)(NaNForSample(), x, np.zeros(4, np.int64), np.random.rand(4, 1, 28, 28).astype(np.float32))


def tiny_config(folder: Path, weights: str = "random") -> Path:
    config = {
        "dataset": "fashion_mnist", "samples": 4, "batch_size": 4,
        "models": {"Twin": {"model": "unconstrained_vgg_fashionmnist_small", "weights": weights}},
        "explainers": {"saliency": {}}, "metrics": {"deletion": {"metric": "Deletion", "steps": 2}},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def fake_samples(monkeypatch) -> torch.Tensor:
    """The runner's samples, drawn here instead of from the data: dataset rows 10, 11, 12, 13. The runner sees the
    returned tensor's memory, so that a test can spoil a sample."""
    x = torch.rand(4, 1, 28, 28)
    names = list(label_names("fashion_mnist"))
    samples = [10, 11, 12, 13], x.numpy(), np.zeros(4, np.int64), names, None  # no human maps
    monkeypatch.setattr(runner, "_samples", lambda config, data_dir: samples)
    return x


@pytest.mark.parametrize("value", NON_FINITE)
def test_evaluate_refuses_non_finite_samples_naming_their_rows(fake_samples, value, tmp_path, capsys):
    fake_samples[2, 0, 3, 3] = value
    config, out = tiny_config(tmp_path), tmp_path / "out"
    before = files_under(tmp_path)
    err = one_line_error(main(["evaluate", str(config), "--out", str(out), "--quiet"]), capsys)
    assert "NaN or infinite values in the fashion_mnist test samples (sample 12)" in err
    assert files_under(tmp_path) == before


def test_evaluate_refuses_a_model_with_non_finite_outputs(fake_samples, tmp_path, capsys):
    from safetensors.torch import save_file

    model = timm.create_model("unconstrained_vgg_fashionmnist_small")
    weights = {name: value.clone() for name, value in model.state_dict().items()}
    bias = next(name for name in reversed(weights) if name.endswith("bias"))
    weights[bias][3] = float("nan")  # class 3 of every sample
    save_file(weights, str(tmp_path / "broken.safetensors"))
    config, out = tiny_config(tmp_path, weights="broken.safetensors"), tmp_path / "out"
    before = files_under(tmp_path)
    err = one_line_error(main(["evaluate", str(config), "--out", str(out), "--quiet"]), capsys)
    assert ("NaN or infinite values in the outputs of models.Twin (unconstrained_vgg_fashionmnist_small) "
            "(samples 10, 11, 12, 13): the model is broken") in err
    assert files_under(tmp_path) == before


# --- missing batch dimension -----------------------------------------------------------------------------------


def test_one_image_without_a_batch_dimension_names_the_layout(fashion_model, images):
    one = images[0]
    for call in (lambda: explain(fashion_model, one, 0, "saliency"),
                 lambda: TransportCounterfactual(fashion_model).attribute(one, 0)):
        with pytest.raises(ValueError, match=r"shape \(1, 28, 28\) have no batch dimension: .*\(N, C, H, W\).*"
                                             r"inputs\[None\]"):
            call()
    with pytest.raises(ValueError, match=r"x_batch has shape \(1, 28, 28\): .*\(N, C, H, W\).*x\[None\]"):
        Deletion()(fashion_model, one.numpy(), np.zeros(1, np.int64), one.numpy())
    with pytest.raises(ValueError, match=r"VGGNet takes \(N, C, H, W\) batches, got shape \(1, 28, 28\).*x\[None\]"):
        fashion_model(one)


# --- bad --out -------------------------------------------------------------------------------------------------


@pytest.fixture
def results_folder(tmp_path) -> Path:
    """A results.jsonl as `otnn evaluate` starts it: enough for `otnn leaderboard` to read."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "results.jsonl").write_text('{"event": "config", "format": 1, "config_hash": "0"}\n')
    return folder


#: Each command with --out, its arguments but --out, and whether --out is a folder (else a PNG file).
OUT_COMMANDS = {
    "evaluate": (lambda tmp: [str(tiny_config(tmp)), "--quiet"], True),
    "explain": (lambda tmp: ["otnn_vgg_fashionmnist_small", "--dataset", "fashion_mnist", "--random-init"], False),
    "leaderboard": (lambda tmp: [str(tmp / "results")], True),
    "schema": (lambda tmp: ["recipe"], False),
    "snowflake": (lambda tmp: ["--quiet"], False),
    "train": (lambda tmp: ["--recipe", "snowflake_otnn", "--quiet"], True),
}


def test_every_command_with_out_is_covered():
    commands = cli.build_parser()._subparsers._group_actions[0].choices
    with_out = {name for name, parser in commands.items()
                if any("--out" in action.option_strings for action in parser._actions)}
    assert with_out == set(OUT_COMMANDS)


def bad_outs(tmp_path: Path, folder: bool) -> list[tuple[Path, str]]:
    """Bad --out paths and what the error says: an existing file (for a folder) or folder (for a file), and a path
    under a file."""
    (tmp_path / "taken.png").write_text("a file")
    (tmp_path / "folder.png").mkdir()
    cases = [(tmp_path / "taken.png" / ("sub" if folder else "sub.png"), "taken.png is a file")]
    cases.append((tmp_path / "taken.png", "is a file, not a folder") if folder
                 else (tmp_path / "folder.png", "is a folder, not a file"))
    return cases


@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_a_bad_out_is_refused_before_any_work(command, tmp_path, results_folder, capsys, monkeypatch):
    arguments, folder = OUT_COMMANDS[command]
    argv = arguments(tmp_path)
    monkeypatch.chdir(tmp_path)
    for out, message in bad_outs(tmp_path, folder):
        before = files_under(tmp_path)
        err = one_line_error(main([command, *argv, "--out", str(out)]), capsys)
        assert str(out) in err and message in err, err
        assert files_under(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders: permissions cannot be tested")
@pytest.mark.parametrize("command", sorted(OUT_COMMANDS))
def test_an_out_in_a_read_only_folder_is_refused(command, tmp_path, results_folder, capsys):
    arguments, folder = OUT_COMMANDS[command]
    argv = arguments(tmp_path)
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    out = locked / ("out" if folder else "out.png")
    try:
        err = one_line_error(main([command, *argv, "--out", str(out)]), capsys)
    finally:
        locked.chmod(0o755)
    assert f"cannot write to {out}: Permission denied" in err and not list(locked.iterdir())


def test_a_bad_benchmark_out_is_refused_before_the_suite_runs(tmp_path, capsys, monkeypatch):
    from benchmarks.__main__ import main as benchmarks

    monkeypatch.setattr("benchmarks.__main__.run_suite", lambda *args: pytest.fail("the suite must not run"))
    (tmp_path / "taken").write_text("a file")
    err = one_line_error(benchmarks(["--quick", "--out", str(tmp_path / "taken")]), capsys)
    assert f"{tmp_path / 'taken'} is a file, not a folder" in err and files_under(tmp_path) == {
        tmp_path / "taken": b"a file"}


def test_a_bad_registry_dir_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "registry").write_text("a file")
    err = one_line_error(main(["train", "--recipe", "snowflake_otnn", "--quiet", "--out", str(tmp_path / "run"),
                               "--registry", "--registry-dir", str(tmp_path / "registry")]), capsys)
    assert f"{tmp_path / 'registry'} is a file" in err and not (tmp_path / "run").exists()


def test_a_failed_atomic_write_names_the_path_not_the_temporary_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError, match=r"cannot write .*file/out\.md: ") as caught:
        atomic_write_text(tmp_path / "file" / "out.md", "text")
    assert "\n" not in str(caught.value) and ".out.md." not in str(caught.value)


# --- YAML ------------------------------------------------------------------------------------------------------


def test_a_yaml_error_in_the_paper_numbers_gives_line_and_column(results_folder, tmp_path, capsys):
    paper = tmp_path / "paper.yaml"
    paper.write_text("explainers: [a, b\nmetrics: {}\n")
    err = one_line_error(main(["leaderboard", str(results_folder), "--paper", str(paper)]), capsys)
    assert f"paper numbers file {paper} is not valid YAML: line 2, column " in err
    assert sorted(p.name for p in results_folder.iterdir()) == ["results.jsonl"]


# --- offline ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variable, value", [("HF_HUB_OFFLINE", "1"), ("HF_HUB_OFFLINE", "ON"),
                                             ("HF_DATASETS_OFFLINE", "true")])
def test_push_offline_is_one_line(variable, value, monkeypatch, capsys):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, value)
    err = one_line_error(main(["push", str(REPO / "registry" / "otnn_mlp_snowflake")]), capsys)
    assert f"in offline mode ({variable}={value})" in err


def test_push_without_network_is_one_line(monkeypatch, capsys):
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(cli.push, "hub_reachable", lambda: False)
    err = one_line_error(main(["push", str(REPO / "registry" / "otnn_mlp_snowflake")]), capsys)
    assert "the Hugging Face hub is unreachable" in err


def test_an_unreachable_hub_is_read_offline_at_once(monkeypatch, tmp_path):
    """Without network, datasets runs in its offline mode (its cache only) instead of retrying for ~30 s."""
    import datasets

    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "OTNN_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(hub, "hub_reachable", lambda: False)
    seen = []

    def offline_hub(repo, split):
        seen.append(datasets.config.HF_HUB_OFFLINE)
        raise ConnectionError(f"Couldn't reach '{repo}' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline_hub)
    setting = datasets.config.HF_HUB_OFFLINE
    with pytest.raises(FileNotFoundError, match=r"offline mode: the hub is unreachable"):
        load_dataset("fashion_mnist", "test")
    assert seen == [True] and datasets.config.HF_HUB_OFFLINE == setting


def test_a_nonexistent_otnn_data_dir_is_an_error(monkeypatch, tmp_path, capsys):
    import datasets

    monkeypatch.setenv("OTNN_DATA_DIR", str(tmp_path / "typo"))
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: pytest.fail("the hub must not be tried"))
    err = one_line_error(main(["data", "stats", "fashion_mnist"]), capsys)
    assert f"OTNN_DATA_DIR={tmp_path / 'typo'} is not a folder" in err


# --- ergonomics ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("position", ["before", "after"])
def test_threads_option_sets_torch_threads(position, capsys):
    before = torch.get_num_threads()
    argv = ["--threads", "1", "data", "list"] if position == "before" else ["data", "list", "--threads", "1"]
    try:
        assert main(argv) == 0 and torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--threads", "0", "data", "list"])
    assert "oversubscription" in " ".join(cli.build_parser().format_help().split())


def test_subpackages_are_lazy_attributes_of_the_package():
    code = ("import sys, otnn_plugin\n"
            "names = ('data', 'evaluate', 'explainers', 'metrics')\n"
            "assert not any(f'otnn_plugin.{n}' in sys.modules for n in names)\n"
            "print(otnn_plugin.data.load_dataset, otnn_plugin.evaluate.load_config, otnn_plugin.explainers.Rise,\n"
            "      otnn_plugin.metrics.Deletion)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def registry_copy(tmp_path, monkeypatch) -> Path:
    """The snowflake OTNN's registry folder, copied into a registry of its own that pretrained loads read (offline)."""
    import shutil

    folder = tmp_path / "registry" / "otnn_mlp_snowflake"
    shutil.copytree(REPO / "registry" / "otnn_mlp_snowflake", folder)
    monkeypatch.setenv("OTNN_REGISTRY", str(folder.parent))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    yield folder
    hub.hub_reachable.cache_clear()


@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty"])
def test_damaged_weights_are_refused_in_one_line(registry_copy, damage, tmp_path, capsys):
    weights = registry_copy / "model.safetensors"
    data = weights.read_bytes()
    data = {"flipped": data[:-64] + bytes(b ^ 0xFF for b in data[-64:]),  # in the tensor data, header intact
            "truncated": data[:len(data) // 2], "empty": b""}[damage]
    weights.write_bytes(data)
    with pytest.raises(ValueError, match="is damaged: its sha256") as err:
        timm.create_model("otnn_mlp_snowflake", pretrained=True)
    assert "\n" not in str(err.value) and "git checkout" in str(err.value)
    out = tmp_path / "sheet.png"
    message = one_line_error(main(["snowflake", "--pretrained", "--out", str(out)]), capsys)
    assert "is damaged" in message and not out.exists()


def test_weights_that_load_but_break_the_lipschitz_bound_are_refused(registry_copy):
    """Without a checksum (older folders) a file that loads is still checked: finite outputs and ||grad f|| <= 1."""
    from safetensors.torch import load_file, save_file

    config = registry_copy / "config.json"
    config.write_text(json.dumps({k: v for k, v in json.loads(config.read_text()).items() if k != "weights_sha256"}))
    tensors = {name: value * 3 for name, value in load_file(registry_copy / "model.safetensors").items()}
    save_file(tensors, str(registry_copy / "model.safetensors"))  # the cached Björck weights now have norm 3
    with pytest.raises(ValueError, match="input gradients of norm .* > 1, impossible for an OTNN"):
        timm.create_model("otnn_mlp_snowflake", pretrained=True)


@pytest.fixture
def a_started_run(tmp_path, data_dir) -> tuple[Path, dict[Path, bytes | None]]:
    """One epoch of a tiny snowflake run, and its files, to resume."""
    run = tmp_path / "run"
    assert main(["train", "--recipe", "snowflake_otnn", "--epochs", "1", "--train-limit", "256", "--test-limit", "64",
                 "--data-dir", str(data_dir), "--device", "cpu", "--quiet", "--out", str(run)]) == 0
    return run, files_under(run)


@pytest.mark.parametrize("changes, named", [
    (["--lr", "0.01"], "lr 0.002 -> 0.01"),
    (["--train-limit", "128"], "train_limit 256 -> 128"),
    (["--seed", "3", "--lr", "0.01"], "lr 0.002 -> 0.01; seed 0 -> 3"),
    (["--loss-arg", "lam=3"], "loss_args"),
    (["--model-arg", "hidden=[64, 64]"], "model_args"),
])
def test_resume_with_other_settings_is_refused_naming_each(a_started_run, changes, named, data_dir, capsys):
    run, before = a_started_run
    capsys.readouterr()
    code = main(["train", "--recipe", "snowflake_otnn", "--epochs", "2", "--train-limit", "256", "--test-limit", "64",
                 "--data-dir", str(data_dir), "--device", "cpu", "--quiet", "--out", str(run), "--resume", *changes])
    message = one_line_error(code, capsys)
    assert "cannot resume" in message and named in message
    assert files_under(run) == before


def test_a_damaged_checkpoint_is_refused_in_one_line(a_started_run, data_dir, capsys):
    run, _ = a_started_run
    checkpoint = run / "checkpoint.safetensors"
    data = checkpoint.read_bytes()
    checkpoint.write_bytes(data[:-16] + bytes(b ^ 0xFF for b in data[-16:]))
    capsys.readouterr()
    code = main(["train", "--recipe", "snowflake_otnn", "--epochs", "2", "--train-limit", "256", "--test-limit", "64",
                 "--data-dir", str(data_dir), "--device", "cpu", "--quiet", "--out", str(run), "--resume"])
    assert "do not match the sha256" in one_line_error(code, capsys)


def test_non_finite_training_data_is_told_apart_from_divergence(data_dir, monkeypatch):
    import otnn_plugin.train.trainer as trainer
    from otnn_plugin.train import load_recipe, prepare

    to_tensors = trainer.data.to_tensors

    def with_a_nan(ds):
        x, y = to_tensors(ds)
        x[::50, 0] = float("nan")
        return x, y

    monkeypatch.setattr(trainer.data, "to_tensors", with_a_nan)
    with pytest.raises(ValueError, match=r"NaN or infinite values in the snowflake train images \(samples .*a data "
                                         r"problem, not a training one"):
        prepare(load_recipe("snowflake_otnn", train_limit=512, test_limit=64), device="cpu", data_dir=data_dir)


def test_evaluation_with_other_weights_is_refused_on_rerun_and_merge(tmp_path, data_dir, capsys):
    """Results record each model's weight fingerprint: a rerun into the same folder with other weights, and a
    leaderboard merging results of other weights, are refused in one line."""
    from safetensors.torch import save_file

    def save_twin(seed: int) -> None:
        torch.manual_seed(seed)
        twin = timm.create_model("unconstrained_vgg_fashionmnist_small")
        save_file(twin.state_dict(), str(tmp_path / "twin.safetensors"))

    config = tmp_path / "weights.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": "fashion_mnist", "samples": 4, "batch_size": 2,
        "models": {"Twin": {"model": "unconstrained_vgg_fashionmnist_small", "weights": "twin.safetensors"}},
        "explainers": {"saliency": {}}, "metrics": {"sparseness": {"metric": "quantus.Sparseness"}},
    }))
    first, second = tmp_path / "first", tmp_path / "second"
    common = ["--quiet", "--data-dir", str(data_dir), "--no-leaderboard"]
    save_twin(0)
    assert main(["evaluate", str(config), "--out", str(first), *common]) == 0
    save_twin(1)
    before = files_under(first)
    capsys.readouterr()
    message = one_line_error(main(["evaluate", str(config), "--out", str(first), *common]), capsys)
    assert "other weights for Twin" in message and files_under(first) == before
    assert main(["evaluate", str(config), "--out", str(second), *common]) == 0
    capsys.readouterr()
    message = one_line_error(main(["leaderboard", str(first), str(second), "--out", str(tmp_path / "board")]), capsys)
    assert "other weights for Twin" in message and not (tmp_path / "board").exists()
