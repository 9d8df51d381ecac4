"""Shared fixtures: where the shared data lives, and a way to give a model trained-like weights fast."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

import otnn_plugin  # noqa: F401  (registers the timm models)

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$OTNN_DATA_DIR`` if set, else ``../shared/data`` next to the repository."""
    return Path(os.environ.get("OTNN_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data; without it, a test that needs it is skipped, or fails under CI (``CI=true``), where missing
    data is a broken set-up and must not pass as skips."""
    path = shared_data_dir()
    if not (path / "fashion-mnist").is_dir():
        reason = f"no shared test data at {path}: set OTNN_DATA_DIR to the folder holding fashion-mnist/"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session", autouse=True)
def dataset_cache(tmp_path_factory) -> Iterator[Path]:
    """``$OTNN_CACHE_DIR`` for the whole session, so that the Arrow caches are built once (about 10 s for CelebA)
    and no test writes to the user's ``~/.cache``: a run from a fresh clone would leave 0.7 GB there each time."""
    path = tmp_path_factory.mktemp("otnn-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OTNN_CACHE_DIR", str(path))
        yield path


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)
    yield


@pytest.fixture
def one_thread():
    """One torch thread for the test (torchrun's per worker; small convolutions run faster on one, and far faster
    when other jobs share the cores), then restored."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_a_little(model: torch.nn.Module, input_shape: tuple[int, ...], steps: int = 3, lr: float = 1e-3) -> None:
    """A few optimiser steps on random data, so that spectral and Björck states are those of a trained model.

    Adam steps much larger than 1e-3 per weight can make deel-torchlip's one-step power iteration lag far
    behind the true spectral norm, and Björck then diverges to NaN on the widest convolutions.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        out = model(torch.rand(4, *input_shape))
        loss = -(out * torch.randn_like(out)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
