"""Training on several processes (``torchrun``): one model replica per rank, equal to a single-process run.

The recipe's ``batch_size`` is the global batch (paper appendix A.2.3: 128). Every rank draws the same order and
augmentation from the ``(seed, epoch)`` generator, forwards its contiguous chunk of each global batch (the chunks
are disjoint and cover the batch), then gathers every rank's outputs and computes the loss on the whole batch. The
hKR losses need that: their Kantorovich-Rubinstein term is a mean over the positives minus a mean over the
negatives of the batch, which is not the average of the ranks' own terms when their class counts differ. As every
rank computes the same loss, the gather passes rank ``r``'s rows back ``world size`` times their gradient, and
DistributedDataParallel's mean over ranks sums the chunks' contributions into the gradient of the global loss.
Learned margins (loss parameters) get the same gradient on every rank; it is averaged anyway.

Replicas must stay identical. Parameters get identical updates. The spectral layers' power-iteration vectors are
updated in place, and DDP broadcasts rank 0's before every forward; deel-torchlip replaces its Björck weight buffer
by a new tensor at every training forward, out of that broadcast's reach, but computes it from identical
parameters, as the orthogonal layers compute their kernels. :func:`check_replicas` compares parameters and buffers
across ranks at every checkpoint. BatchNorm statistics (unconstrained twins) are global batch statistics only with
``SyncBatchNorm``, which needs CUDA: on CPU such a model trains in one process.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from .._fingerprint import tensors_sha256
from ..devices import resolve_device

__all__ = ["World", "world", "process_group", "replicate", "local_rows", "gather_rows", "average_gradients",
           "barrier", "check_replicas"]


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that logs, shows progress and writes checkpoints."""
        return self.rank == 0


def world() -> World:
    """The initialised process group, or a single process."""
    if dist.is_available() and dist.is_initialized():
        return World(dist.get_rank(), dist.get_world_size())
    return World()


@contextmanager
def process_group(device: str) -> Iterator[str]:
    """Join the ``torchrun`` group when ``WORLD_SIZE`` > 1 (nccl on CUDA, gloo on CPU), leave it on exit; yields the
    device this rank trains on (``cuda:LOCAL_RANK`` for CUDA), or ``device`` unchanged for a single process."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        yield device
        return
    resolved, local_rank = resolve_device(device), int(os.environ.get("LOCAL_RANK", "0"))
    if resolved.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {local_rank} has no GPU: this machine has {torch.cuda.device_count()}, "
                             "so --nproc_per_node can be at most that")
        resolved = torch.device("cuda", local_rank)
        torch.cuda.set_device(resolved)
    dist.init_process_group("nccl" if resolved.type == "cuda" else "gloo", rank=int(os.environ["RANK"]),
                            world_size=size)
    try:
        yield str(resolved)
    finally:
        dist.destroy_process_group()


def replicate(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel when there are several processes, else ``model`` itself."""
    if world().size == 1:
        return model
    if any(isinstance(module, _BatchNorm) for module in model.modules()):
        if device.type != "cuda":
            raise ValueError("a model with BatchNorm trains on several processes only on GPUs (SyncBatchNorm, "
                             "for global batch statistics): train it in one process on CPU")
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)


def _chunk_sizes(rows: int, parts: int) -> list[int]:
    """Sizes of the contiguous chunks of ``rows`` rows over ``parts`` ranks, as :func:`torch.tensor_split`'s."""
    return [rows // parts + (rank < rows % parts) for rank in range(parts)]


def local_rows(batch: torch.Tensor) -> torch.Tensor:
    """This rank's contiguous chunk of a global batch (the whole batch for a single process)."""
    here = world()
    return batch if here.size == 1 else batch.tensor_split(here.size)[here.rank]


class _GatherRows(torch.autograd.Function):
    """Every rank's chunk, concatenated; rank ``r`` gets ``world size`` times the gradient of its own rows back."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, sizes: list[int], rank: int) -> torch.Tensor:
        ctx.rows, ctx.ranks = (sum(sizes[:rank]), sizes[rank]), len(sizes)
        padded = local.new_zeros(max(sizes), *local.shape[1:])  # all_gather needs one shape on every rank
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded)
        return torch.cat([part[:size] for part, size in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        start, size = ctx.rows
        return grad[start:start + size] * ctx.ranks, None, None


def gather_rows(local: torch.Tensor, rows: int) -> torch.Tensor:
    """The outputs of a global batch of ``rows`` rows from each rank's :func:`local_rows` chunk, with autograd."""
    here = world()
    return local if here.size == 1 else _GatherRows.apply(local, _chunk_sizes(rows, here.size), here.rank)


def average_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Replace each gradient by its mean over the ranks (for parameters outside DDP: the learned margins)."""
    size = world().size
    if size == 1:
        return
    for parameter in parameters:
        if parameter.grad is not None:
            dist.all_reduce(parameter.grad)
            parameter.grad.div_(size)


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if world().size > 1:
        dist.barrier()


def check_replicas(epoch: int, *modules: nn.Module) -> None:
    """Raise unless every rank holds the same parameters and buffers in ``modules``."""
    here = world()
    if here.size == 1:
        return
    digest = tensors_sha256({f"{i}.{k}": v for i, module in enumerate(modules) for k, v in module.state_dict().items()})
    digests: list[str | None] = [None] * here.size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        raise RuntimeError(f"after epoch {epoch} the ranks hold different weights or buffers (sha256 by rank: "
                           f"{', '.join(d[:12] for d in digests)}): the replicas diverged")
