"""Issue "Past one machine": ``torchrun -m otnn_plugin train`` on 2 gloo CPU processes equals one process.

Each rank forwards its chunk of the global batch and the loss is computed on the gathered batch, so a step's
gradient equals the single process's up to float summation order (a weight's gradient is summed over two
half-batches, then across the ranks, instead of over the whole batch): relative error 2e-7 for the snowflake MLP,
4e-6 and 9e-6 for the small Fashion-MNIST and CelebA OTNNs on their first batch. Per-rank hKR losses averaged by
DDP would be off by 0.8%, 4% and 20%: the KR term's means over each side of the batch do not split over ranks.

Tolerance. torchrun gives each of its processes 1 thread, and the single-process reference here runs with 1 thread
too: with 2 threads the same single-process trainer ends this test's run with outputs 2.6e-2 away (8% of their
scale), because Adam divides every coordinate by its running RMS, so a coordinate whose gradient is at rounding
level moves by up to ``lr`` in a direction that rounding picks, and training carries that on. Against the 1-thread
reference the 2-process run ends about 1e-7 away (under 4e-7 of the output scale); the bound is 1e-5 of it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open
from torch import nn

from otnn_plugin.train import distributed, load_recipe, prepare, train

from .conftest import REPO

RECIPE = "snowflake_otnn"
#: 201 rows in batches of 64: the last batch of 9 splits 5 / 4 over the ranks.
SETTINGS = dict(epochs=8, batch_size=64, train_limit=201, test_limit=64)
#: Largest output difference from the single-process run, as a fraction of the largest output.
OUTPUT_TOLERANCE = 1e-5


def _torchrun(out: Path, *flags: str) -> subprocess.Popen:
    """``torchrun --standalone --nproc_per_node 2 -m otnn_plugin train`` of :data:`SETTINGS` on CPU."""
    options = [f"--{key.replace('_', '-')}={value}" for key, value in SETTINGS.items()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "otnn_plugin",
         "train", "--recipe", RECIPE, *options, "--device", "cpu", "--quiet", "--out", str(out), *flags],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def _worker(agent: subprocess.Popen, rank: int) -> int:
    """The pid of the torchrun worker with ``RANK=rank`` (Linux ``/proc``)."""
    children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
    for pid in children:
        if f"RANK={rank}".encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            return int(pid)
    raise AssertionError(f"no worker with RANK={rank} among {children}")


def _completed_epochs(run: Path) -> int:
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as handle:
        return int(handle.metadata()["epoch"])


def _outputs(run: Path, x: torch.Tensor) -> torch.Tensor:
    model = timm.create_model(load_recipe(RECIPE).model)
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as handle:
        model.load_state_dict({key[6:]: handle.get_tensor(key) for key in handle.keys() if key.startswith("model.")})
    with torch.no_grad():
        return model.eval()(x)


@pytest.mark.slow
@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
                    reason="finds the worker to kill in Linux's /proc/PID/task/PID/children")
def test_two_gloo_processes_killed_and_resumed_equal_one_process(tmp_path, data_dir, one_thread):
    """A 2-process run killed on rank 1, resumed in 1 process for an epoch, then in 2 processes to the end."""
    single = prepare(load_recipe(RECIPE, **SETTINGS), device="cpu", data_dir=data_dir)
    train(single, tmp_path / "single", progress=False)

    run = tmp_path / "run"
    killed = _torchrun(run)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint.safetensors").exists():
        assert killed.poll() is None and time.monotonic() < deadline, killed.communicate()[1][-3000:]
        time.sleep(0.02)
    os.kill(_worker(killed, rank=1), signal.SIGKILL)
    killed.communicate(timeout=120)
    assert killed.returncode != 0, "the run ended before rank 1 was killed"
    done = _completed_epochs(run)
    assert 1 <= done < SETTINGS["epochs"] - 1, f"killed after epoch {done}: too late to resume twice"

    shutil.copytree(run, tmp_path / "copy")
    one = prepare(load_recipe(RECIPE, **{**SETTINGS, "epochs": done + 1}), device="cpu", data_dir=data_dir)
    train(one, run, resume=True, progress=False)  # world size 2 -> 1
    _finish(_torchrun(run, "--resume"))  # world size 1 -> 2

    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    processes = [line["processes"] for line in log if line.get("epoch", 0) > done]
    assert processes == [1] + [2] * (SETTINGS["epochs"] - done - 1)
    x = single.test[0]
    expected, got = _outputs(tmp_path / "single", x), _outputs(run, x)
    assert (got - expected).abs().max() <= OUTPUT_TOLERANCE * expected.abs().max()


def test_chunks_of_a_global_batch_are_disjoint_and_cover_it():
    for rows in (0, 1, 9, 64):
        for parts in (1, 2, 3):
            sizes = distributed._chunk_sizes(rows, parts)
            assert sizes == [len(chunk) for chunk in torch.arange(rows).tensor_split(parts)]


def test_batchnorm_models_train_on_several_cpu_processes_never(monkeypatch):
    """Per-rank BatchNorm statistics would differ from the global batch's; SyncBatchNorm needs CUDA."""
    monkeypatch.setattr(distributed, "world", lambda: distributed.World(rank=0, size=2))
    with pytest.raises(ValueError, match="BatchNorm .* in one process on CPU"):
        distributed.replicate(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)), torch.device("cpu"))


def test_a_single_process_ignores_torchrun_variables_of_world_size_one(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "1")
    with distributed.process_group("cpu") as device:
        assert device == "cpu" and distributed.world() == distributed.World()
    assert not torch.distributed.is_initialized()
