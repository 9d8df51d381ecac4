"""Side-by-side timing: candidates run interleaved, so machine noise hits them alike; ratios of medians.

A ratio comes from the rounds: round ``r`` times every candidate once, back to back, so ``time_a[r] / time_b[r]``
is one paired measurement of ``a / b``; :func:`ratio_summary` reports their median and quartiles.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

__all__ = ["compare", "summarize", "ratio", "ratio_summary", "print_table"]


def _sync(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def summarize(times: list[float]) -> dict:
    """``{"median_s", "min_s", "max_s", "iqr_s", "samples_s"}`` of one candidate's times, in seconds."""
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if len(times) > 1 else (times[0],) * 3
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "iqr_s": q3 - q1,
            "samples_s": list(times)}


def compare(
    candidates: dict[str, Callable[[], object]],
    repeats: int = 15,
    warmup: int = 3,
    device: str | torch.device | None = None,
) -> dict[str, dict]:
    """Time each zero-argument callable ``repeats`` times, interleaved round-robin.

    Returns ``{name: summarize(times)}``; compare candidates with :func:`ratio` or :func:`ratio_summary`.
    """
    if repeats < 1:
        raise ValueError(f"repeats must be a positive number of rounds, got {repeats}")
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: summarize(times) for name, times in samples.items()}


def ratio(stats: dict[str, dict], numerator: str, denominator: str) -> float:
    """``median(numerator) / median(denominator)``: above 1 means the numerator is slower."""
    return stats[numerator]["median_s"] / stats[denominator]["median_s"]


def ratio_summary(stats: dict[str, dict], numerator: str, denominator: str, scale: float = 1.0) -> dict:
    """``scale * numerator / denominator`` round by round: the median and quartiles of the per-round ratios, and
    the ratio of the medians (``of_medians``).

    ``scale`` converts times into the compared quantity (e.g. per-image costs when the two candidates processed
    different numbers of images).
    """
    paired = [scale * a / b for a, b in zip(stats[numerator]["samples_s"], stats[denominator]["samples_s"])]
    q1, median, q3 = statistics.quantiles(paired, n=4, method="inclusive") if len(paired) > 1 else (paired[0],) * 3
    return {"median": median, "q1": q1, "q3": q3, "of_medians": scale * ratio(stats, numerator, denominator),
            "numerator": numerator, "denominator": denominator}


def print_table(title: str, stats: dict[str, dict]) -> None:
    print(f"\n{title}")
    for name, s in stats.items():
        print(f"  {name:<32} median {s['median_s'] * 1e3:9.2f} ms   IQR {s['iqr_s'] * 1e3:7.2f} ms")
