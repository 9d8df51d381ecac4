"""The thin trainer: Adam over in-memory tensors, one JSON line and one atomic checkpoint per epoch.

Paper appendix A.2.3: Adam, batch 128, hKR losses for OTNNs and cross-entropy for unconstrained twins. The whole
split is held as tensors and batched by index (no DataLoader workers); shuffling and augmentation draw from a
generator seeded by ``(seed, epoch)``, so a resumed run repeats an uninterrupted one exactly. Under ``torchrun`` the
ranks split each global batch and compute the loss on all of it (:mod:`.distributed`); rank 0 logs and writes.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn
from tqdm.auto import tqdm

from .. import data
from ..data.transforms import AUGMENTATIONS
from .._environment import environment
from .._finite import check_finite
from .._files import atomic_write_text, check_output
from .._progress import progress_bar
from ..devices import resolve_device
from ..lipschitz import is_otnn
from ..losses import NonFiniteOutputsError
from ..spectral import set_power_iterations
from . import distributed
from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .objectives import build_objective, task_of
from .precision import autocast, check_precision
from .recipe import Recipe
from .scores import correct_predictions, evaluate

__all__ = ["TrainResult", "train", "prepare"]

LOG = "log.jsonl"


@dataclass
class TrainingSetup:
    """Everything a run needs, built and checked before anything is written."""

    recipe: Recipe
    model: nn.Module
    objective: nn.Module
    task: str
    train: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    device: torch.device


@dataclass
class TrainResult:
    run_dir: Path
    epochs: int
    scores: dict
    seconds: float


def _subset(x: torch.Tensor, y: torch.Tensor, limit: int | None, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    if limit is None or limit >= len(x):
        return x, y
    keep = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:limit].sort().values
    return x[keep], y[keep]


def prepare(recipe: Recipe, device: str = "auto", data_dir: str | Path | None = None) -> TrainingSetup:
    """Build model, loss and data for ``recipe``; every ``ValueError`` here means nothing was written."""
    torch_device = resolve_device(device)
    torch.manual_seed(recipe.seed)
    model = timm.create_model(recipe.model, **recipe.model_args)
    set_power_iterations(model, recipe.power_iterations)
    splits = []
    for offset, (split, limit) in enumerate((("train", recipe.train_limit), ("test", recipe.test_limit))):
        ds = data.load_dataset(recipe.dataset, split, data_dir=data_dir, **recipe.dataset_args)
        x, y = _subset(*data.to_tensors(ds), limit, recipe.seed + offset)
        check_finite(x, f"the {recipe.dataset} {split} images", "a data problem, not a training one: repair or drop "
                     "those images")
        splits.append((x, y))
    task = task_of(splits[0][1])
    objective = build_objective(recipe.loss, dict(recipe.loss_args), model.num_classes, task)
    if recipe.augment and recipe.dataset not in AUGMENTATIONS:
        raise ValueError(f"augment: {recipe.dataset} has no augmentation (there is one for "
                         f"{', '.join(AUGMENTATIONS)}); set augment: false")
    check_precision(model, recipe.precision, tuple(splits[0][0].shape[1:]))
    return TrainingSetup(recipe, model.to(torch_device), objective.to(torch_device), task, splits[0], splits[1],
                    torch_device)


def _check_writable(run_dir: Path, resume: bool) -> None:
    check_output(run_dir, folder=True)
    if (run_dir / CHECKPOINT).exists() and not resume:
        raise ValueError(f"{run_dir} already holds a run: pass --resume to continue it, or choose another --out")


def _read_log(path: Path, completed: int) -> list[dict]:
    """The log lines of the ``completed`` epochs a checkpoint holds (a crash may leave one more)."""
    if not path.is_file():
        return []
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [line for line in lines if line.get("epoch", 0) <= completed]


def train(prepared: TrainingSetup, run_dir: str | Path, resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``prepared`` into ``run_dir`` (``checkpoint.safetensors``, ``log.jsonl``); resume after a kill."""
    recipe, model, objective, device = prepared.recipe, prepared.model, prepared.objective, prepared.device
    run_dir, world = Path(run_dir), distributed.world()
    progress = progress and world.is_main
    _check_writable(run_dir, resume)
    optimizer = torch.optim.Adam([*model.parameters(), *objective.parameters()], lr=recipe.lr,
                                 weight_decay=recipe.weight_decay, decoupled_weight_decay=recipe.weight_decay > 0)
    done, changed = load_checkpoint(run_dir, model, objective, optimizer, recipe.to_dict()) if resume else (0, {})
    log = _read_log(run_dir / LOG, done) if resume else []
    if not log:
        log = [{"event": "start", "recipe": recipe.to_dict(), "environment": environment(device),
                "otnn": is_otnn(model), "train_size": len(prepared.train[0]), "test_size": len(prepared.test[0])}]
    elif changed:
        log.append({"event": "resume", "after_epoch": done, "changed": {k: list(v) for k, v in changed.items()}})
    replica = distributed.replicate(model, device)  # after every rank has read the checkpoint
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)

    x_train, y_train = (t.to(device) for t in prepared.train)
    augment = AUGMENTATIONS[recipe.dataset].transform if recipe.augment else None
    started = time.perf_counter() - sum(line.get("seconds", 0.0) for line in log)
    scores: dict = next((line["test"] for line in reversed(log) if "test" in line), {})
    for epoch in range(done + 1, recipe.epochs + 1):
        generator = torch.Generator(device=device).manual_seed(recipe.seed * 100_003 + epoch)
        order = torch.randperm(len(x_train), generator=generator, device=device)
        model.train()
        epoch_start, seen, loss_sum, hits = time.perf_counter(), 0, 0.0, 0.0
        batches = range(0, len(order), recipe.batch_size)
        bar = progress_bar(batches, desc=f"epoch {epoch}/{recipe.epochs}", enabled=progress, leave=False)
        for step, start in enumerate(bar):
            for group in optimizer.param_groups:
                group["lr"] = recipe.lr_at((epoch - 1 + step / len(batches)) / recipe.epochs)
            index = order[start:start + recipe.batch_size]
            inputs, targets = x_train[index], y_train[index]
            if augment is not None:
                inputs = augment(inputs, generator=generator)
            try:
                with autocast(recipe.precision, device):
                    outputs = distributed.gather_rows(replica(distributed.local_rows(inputs)), len(index))
                    loss = objective(outputs.float(), targets)
                finite = bool(torch.isfinite(loss))
            except NonFiniteOutputsError:  # the hKR losses check their inputs
                finite = False
            if not finite:
                raise ValueError(
                    f"training diverged at epoch {epoch}, batch {start // recipe.batch_size} (NaN or inf): lower the "
                    f"learning rate (now {recipe.lr}) or raise power_iterations (now {recipe.power_iterations}): large "
                    "Adam steps can outrun the spectral layers' power iteration"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(objective.parameters())
            optimizer.step()
            seen += len(index)
            loss_sum += loss.item() * len(index)
            hits += correct_predictions(outputs.detach(), targets, prepared.task).float().reshape(len(index), -1).mean(1).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{hits / seen:.3f}",
                            img_s=f"{seen / (time.perf_counter() - epoch_start):.0f}")
        train_seconds = time.perf_counter() - epoch_start
        scores = evaluate(model, *prepared.test, prepared.task, recipe.radii, recipe.batch_size * 2,
                          recipe.grad_norm_samples, device)
        line = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": hits / seen,
            "images_per_second": seen / train_seconds,
            "processes": world.size,
            "seconds": time.perf_counter() - epoch_start,
            "test": scores,
        }
        margin = getattr(objective, "margin", None)
        if margin is not None:
            line["margins"] = [round(v, 5) for v in margin.detach().reshape(-1).tolist()]
        log.append(line)
        distributed.check_replicas(epoch, model, objective)
        if world.is_main:
            save_checkpoint(run_dir, epoch, model, objective, optimizer, {"recipe": recipe.to_dict()})
            atomic_write_text(run_dir / LOG, "".join(json.dumps(entry) + "\n" for entry in log))
        distributed.barrier()
        if progress:
            tqdm.write(f"epoch {epoch}: loss {line['train_loss']:.4f}, test accuracy {scores['accuracy']:.4f}, "
                       f"{line['images_per_second']:.0f} img/s")
    return TrainResult(run_dir, recipe.epochs, scores, time.perf_counter() - started)

