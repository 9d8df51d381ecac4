"""One epoch over each image dataset in batches of 256, read five ways; the figure is images per second (issue 5).

* ``to_tensors``: our path for training: the whole split as float tensors in one read, then slices.
* ``array_rows``: datasets' own ``with_format("torch").iter`` over our explicit ``Array2D``/``Array3D`` features;
  datasets widens integers to int64 there. ``array_rows_uint8`` passes ``dtype=torch.uint8`` to keep bytes.
* ``nested_lists``: the same bytes typed as the nested lists datasets infers from Python values. So slow that it
  is timed on the first ``NESTED_ROWS`` rows only (a CelebA epoch would take half an hour); images/s compare.
* ``jpeg_bytes`` (CelebA): an ``Image()`` column of the original JPEG files, decoded on every pass, as
  ``imagefolder`` would give.

The test splits (10,000 and 2,000 images) keep the run short on a shared machine; ``split="train"`` for more.
Run: ``python -m benchmarks.bench_data`` (reads ``$OTNN_DATA_DIR``, default ``../shared/data``).
"""
from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import torch
from datasets import Dataset, Features, Image
from datasets.table import InMemoryTable

from otnn_plugin.data import load_dataset, to_tensors

from .report import print_result
from .schema import target
from .timing import compare, ratio_summary

COMMAND = "python -m benchmarks.bench_data"
BATCH = 256
QUICK_ROWS = 64
NESTED_ROWS = {"fashion_mnist": 1_000, "celeba": 8}
BASELINES = ("nested_lists", "jpeg_bytes")
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def _rows(dataset: Dataset, **format_kwargs):
    def epoch() -> None:
        for _ in dataset.with_format("torch", **format_kwargs).iter(batch_size=BATCH):
            pass
    return epoch


def _tensors(dataset: Dataset):
    def epoch() -> None:
        x, y = to_tensors(dataset)
        for start in range(0, len(x), BATCH):
            x[start:start + BATCH], y[start:start + BATCH]
    return epoch


def _as_nested_lists(dataset: Dataset) -> Dataset:
    """The image column's Arrow storage without the ArrayXD type: what datasets infers from nested Python lists."""
    table = dataset.with_format("arrow")[:].select(["image"])
    storage = pa.chunked_array([chunk.storage for chunk in table.column("image").chunks])
    return Dataset(InMemoryTable(pa.table({"image": storage})))


def _as_jpeg_bytes(dataset: Dataset, image_dir: Path) -> Dataset:
    files = [{"bytes": (image_dir / name).read_bytes(), "path": None} for name in dataset["image_id"][:]]
    return Dataset.from_dict({"image": files}, features=Features({"image": Image()}))


def run(quick: bool = False, data_dir: str | os.PathLike | None = None, split: str = "test",
        repeats: int | None = None) -> dict:
    """Every way on each dataset's ``split`` (with ``quick``: its first ``QUICK_ROWS`` rows, one nested-list row)."""
    data_dir = Path(data_dir or os.environ.get("OTNN_DATA_DIR") or DEFAULT_DATA_DIR)
    repeats = repeats or (2 if quick else 3)
    cases, targets = {}, []
    for name, nested_rows in NESTED_ROWS.items():
        dataset = load_dataset(name, split, data_dir)
        if quick:
            dataset, nested_rows = dataset.select(range(QUICK_ROWS)), 1
        rows = dict.fromkeys(("to_tensors", "array_rows", "array_rows_uint8", "jpeg_bytes"), len(dataset))
        rows["nested_lists"] = nested_rows
        candidates = {
            "to_tensors": _tensors(dataset),
            "array_rows": _rows(dataset),
            "array_rows_uint8": _rows(dataset, dtype=torch.uint8),
            "nested_lists": _rows(_as_nested_lists(dataset.select(range(nested_rows)))),
        }
        if name == "celeba":
            candidates["jpeg_bytes"] = _rows(_as_jpeg_bytes(dataset, data_dir / "celeba-subset" / "images_89x109"))
        stats = compare(candidates, repeats=repeats, warmup=1)
        cases[name] = {
            "stats": stats,
            "ratios": {  # images/s of each way that reads our Arrow columns over each baseline
                f"{key}_over_{base}": ratio_summary(stats, base, key, scale=rows[key] / rows[base])
                for base in BASELINES if base in stats for key in stats if key not in BASELINES
            },
            "values": {f"{key}_images_per_s": rows[key] / s["median_s"] for key, s in stats.items()},
            "rows": {key: rows[key] for key in stats},
        }
        baseline = "jpeg_bytes" if name == "celeba" else "nested_lists"
        targets.append(target(name, f"to_tensors_over_{baseline}", f"{name} {split} epoch in batches of {BATCH}: "
                              f"`to_tensors` images/s over {baseline.replace('_', ' ')}"))
    return {"name": "dataset_epoch", "command": COMMAND,
            "params": {"split": split, "batch_size": BATCH, "repeats": repeats, "quick": quick},
            "cases": cases, "targets": targets}


if __name__ == "__main__":
    print_result(run())
