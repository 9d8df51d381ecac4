"""Training cost: an OTNN step against its unconstrained twin's, and the trainer against a bare loop (issues 3, 6).

``step``, per architecture (the shipped ``*_small`` and ``*_gnp`` recipes: model, loss and learning rate), one Adam
step on one batch of random inputs (forward, loss, backward, update; CelebA augmentation left out, it costs both
the same):

* ``otnn``: the OTNN as its recipe trains it (orthogonal BCOP convolutions whose kernel is rebuilt at every
  training forward, spectral normalisation and Björck in the dense layers, our GroupSort2 and L2-norm pooling);
  the paper reports 3-6x its twin's cost (deel-lip);
* ``otnn_spectral``: the same architecture with the paper's deel-torchlip ``SpectralConv2d`` convolutions
  (``conv='spectral'``, with the power iterations of the recipes that trained them: 1 for Fashion-MNIST, 10 for
  CelebA, 3 for the gradient-norm-preserving network);
* ``otnn_torchlip_layers``: the OTNN with deel-torchlip's own GroupSort2 and L2-norm pooling;
* ``unconstrained``: the twin, Conv + BatchNorm + ReLU, cross-entropy.

``trainer``: one epoch of ``otnn_plugin.train.train`` (recipe ``fashionmnist_small_otnn``, ``train_limit``
images, quiet) against a bare loop over a copy of the same model, loss and data: shuffled batches, forward, loss,
backward, Adam step, nothing else. ``trainer_loop`` is the trainer's own training time (its logged images/s),
the figure issue 6 bounds; ``trainer`` is its whole epoch, test-split scoring, checkpoint and log included.

Run: ``python -m benchmarks.bench_train`` (data from ``$OTNN_DATA_DIR`` for the trainer part).
"""
from __future__ import annotations

import copy
import json
import os
import shutil
import tempfile
from pathlib import Path

import timm
import torch
from deel import torchlip
from torch import nn

from otnn_plugin.layers import GroupSort2, ScaledL2NormPool2d
from otnn_plugin.spectral import set_power_iterations
from otnn_plugin.train import load_recipe, prepare, train
from otnn_plugin.train.objectives import build_objective, task_of
from otnn_plugin.train.trainer import LOG

from .report import print_result
from .schema import target
from .timing import compare, ratio_summary, summarize

COMMAND = "python -m benchmarks.bench_train"
#: Architecture -> (OTNN recipe, unconstrained recipe).
RECIPES = {
    "vgg_fashionmnist_small": ("fashionmnist_small_otnn", "fashionmnist_small_unconstrained"),
    "vgg_celeba_small": ("celeba_small_otnn", "celeba_small_unconstrained"),
    "vgg_fashionmnist_gnp": ("fashionmnist_gnp_otnn", "fashionmnist_gnp_unconstrained"),
}
#: Architecture -> power iterations per training forward of its ``conv='spectral'`` variant.
SPECTRAL_POWER_ITERATIONS = {"vgg_fashionmnist_small": 1, "vgg_celeba_small": 10, "vgg_fashionmnist_gnp": 3}
TRAINER_RECIPE = "fashionmnist_small_otnn"
SIZES = {
    "full": {"batch": None, "repeats": 10, "train_limit": 2560, "test_limit": 512, "trainer_repeats": 5},
    "quick": {"batch": 4, "repeats": 2, "train_limit": 16, "test_limit": 8, "trainer_repeats": 2},
}


def with_torchlip_layers(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with deel-torchlip's GroupSort2 and L2-norm pooling in place of ours."""
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, GroupSort2):
                setattr(parent, name, torchlip.GroupSort2())
            elif isinstance(child, ScaledL2NormPool2d):
                setattr(parent, name, torchlip.ScaledL2NormPool2d(child.kernel_size, child.stride, child.ceil_mode,
                                                                  child._coefficient_lip))
    return model


def _batch(model: nn.Module, size: int, multilabel: bool, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs in [0, 1] and random targets: class indices, or one 0/1 per output when ``multilabel``."""
    x = torch.rand(size, model.pretrained_cfg["input_size"][0], *model.img_size, device=device)
    if multilabel:
        return x, (torch.rand(size, model.num_classes, device=device) > 0.5).float()
    return x, torch.randint(0, model.num_classes, (size,), device=device)


def _step(recipe_name: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor):
    """One Adam step of ``model`` under its recipe's loss and learning rate, as a zero-argument callable."""
    recipe = load_recipe(recipe_name)
    objective = build_objective(recipe.loss, dict(recipe.loss_args), model.num_classes, task_of(y)).to(x.device)
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=recipe.lr)
    model.train()

    def fn() -> None:
        loss = objective(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return fn


def run_steps(quick: bool = False, device: str = "cpu") -> tuple[dict, list]:
    """Training-step cases and target rows, one per architecture."""
    size = SIZES["quick" if quick else "full"]
    cases, targets = {}, []
    for arch, (otnn_recipe, twin_recipe) in RECIPES.items():
        otnn_spec, twin_spec = load_recipe(otnn_recipe), load_recipe(twin_recipe)
        torch.manual_seed(0)
        otnn = timm.create_model(otnn_spec.model, **otnn_spec.model_args).to(device)
        set_power_iterations(otnn, otnn_spec.power_iterations)
        torch.manual_seed(0)
        spectral = timm.create_model(otnn_spec.model, **{**otnn_spec.model_args, "conv": "spectral"}).to(device)
        set_power_iterations(spectral, SPECTRAL_POWER_ITERATIONS[arch])
        twin = timm.create_model(twin_spec.model, **twin_spec.model_args).to(device)
        x, y = _batch(otnn, size["batch"] or otnn_spec.batch_size, otnn_spec.dataset == "celeba", device)
        stats = compare({
            "otnn": _step(otnn_recipe, otnn, x, y),
            "otnn_spectral": _step(otnn_recipe, spectral, x, y),
            "otnn_torchlip_layers": _step(otnn_recipe, with_torchlip_layers(otnn), x, y),
            "unconstrained": _step(twin_recipe, twin, x, y),
        }, repeats=size["repeats"], warmup=2, device=device)
        cases[arch] = {"stats": stats, "ratios": {
            "otnn_over_unconstrained": ratio_summary(stats, "otnn", "unconstrained"),
            "otnn_spectral_over_unconstrained": ratio_summary(stats, "otnn_spectral", "unconstrained"),
            "otnn_over_otnn_spectral": ratio_summary(stats, "otnn", "otnn_spectral"),
            "torchlip_layers_over_unconstrained": ratio_summary(stats, "otnn_torchlip_layers", "unconstrained"),
            "torchlip_layers_over_otnn": ratio_summary(stats, "otnn_torchlip_layers", "otnn"),
        }}
        shape = "x".join(map(str, otnn.img_size))
        batch = len(x)
        targets += [
            target(arch, "otnn_over_unconstrained", f"OTNN (BCOP) / unconstrained training step, `{arch}` at {shape}, "
                   f"batch {batch}", "paper: 3-6x"),
            target(arch, "otnn_spectral_over_unconstrained",
                   f"OTNN with the paper's SpectralConv2d / unconstrained, `{arch}`", "paper: 3-6x", "<=", 1.5),
            target(arch, "otnn_over_otnn_spectral", f"BCOP OTNN / SpectralConv2d OTNN, `{arch}`"),
            target(arch, "torchlip_layers_over_unconstrained",
                   f"the same OTNN with deel-torchlip's GroupSort2 and pooling / unconstrained, `{arch}`"),
        ]
    return cases, targets


def run_trainer(quick: bool = False, device: str = "cpu", data_dir: str | os.PathLike | None = None
                ) -> tuple[dict, list]:
    """The trainer's epoch against a bare loop over the same model, loss and data."""
    size = SIZES["quick" if quick else "full"]
    recipe = load_recipe(TRAINER_RECIPE, epochs=1, train_limit=size["train_limit"], test_limit=size["test_limit"])
    prepared = prepare(recipe, device=device, data_dir=data_dir)
    model, objective = copy.deepcopy(prepared.model), copy.deepcopy(prepared.objective)
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=recipe.lr)
    x, y = (t.to(prepared.device) for t in prepared.train)
    loop_seconds: list[float] = []

    def bare_epoch() -> None:
        order = torch.randperm(len(x), device=prepared.device)
        model.train()
        for start in range(0, len(order), recipe.batch_size):
            index = order[start:start + recipe.batch_size]
            loss = objective(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    with tempfile.TemporaryDirectory(prefix="otnn-bench-train-") as scratch:
        def trainer_epoch() -> None:
            run_dir = Path(scratch) / f"run{len(loop_seconds)}"
            train(prepared, run_dir, progress=False)
            line = json.loads((run_dir / LOG).read_text().splitlines()[-1])
            loop_seconds.append(len(x) / line["images_per_second"])
            shutil.rmtree(run_dir)

        stats = compare({"trainer": trainer_epoch, "bare_loop": bare_epoch}, repeats=size["trainer_repeats"],
                        warmup=1, device=device)
    stats["trainer_loop"] = summarize(loop_seconds[-size["trainer_repeats"]:])
    case = {"stats": stats, "ratios": {
        "trainer_loop_over_bare": ratio_summary(stats, "trainer_loop", "bare_loop"),
        "trainer_epoch_over_bare": ratio_summary(stats, "trainer", "bare_loop"),
    }, "values": {
        "trainer_loop_images_per_s": len(x) / stats["trainer_loop"]["median_s"],
        "bare_loop_images_per_s": len(x) / stats["bare_loop"]["median_s"],
    }}
    what = f"`{TRAINER_RECIPE}`, {len(x)} training images"
    targets = [
        target("trainer", "trainer_loop_over_bare", f"trainer training time / bare Adam loop, {what}", "-",
               "<=", 1.05),
        target("trainer", "trainer_epoch_over_bare", f"trainer epoch with test scoring ({len(prepared.test[0])} "
               "images) and checkpoint / bare loop"),
    ]
    return {"trainer": case}, targets


def run(quick: bool = False, device: str = "cpu", data_dir: str | os.PathLike | None = None) -> dict:
    size = SIZES["quick" if quick else "full"]
    step_cases, step_targets = run_steps(quick, device)
    trainer_cases, trainer_targets = run_trainer(quick, device, data_dir)
    return {"name": "training", "command": COMMAND, "params": {"device": device, **size},
            "cases": {**step_cases, **trainer_cases}, "targets": step_targets + trainer_targets}


if __name__ == "__main__":
    print_result(run())
