"""Fashion-MNIST (paper Sec. 5, appendix A.2.1): 28x28 grey images of 10 clothing classes.

Local source: the four original IDX files (``train-images-idx3-ubyte.gz`` ...), gzipped or not. Hub source:
``zalando-datasets/fashion_mnist``. Both give ``image`` (``Array2D`` uint8 28x28) and ``label`` (``ClassLabel``
with :data:`~otnn_plugin.labels.FASHION_MNIST_CLASSES`), splits ``train`` (60,000) and ``test`` (10,000). The
paper held 10,000 training images out for validation (A.2.1: 50,000 for training); split them off with
``Dataset.train_test_split`` if needed.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
from datasets import Array2D, ClassLabel, Dataset, Features

from ..labels import FASHION_MNIST_CLASSES
from . import register_dataset, sources
from ._arrow import build_dataset

HUB_REPO = "zalando-datasets/fashion_mnist"
FOLDER = "fashion-mnist"
_FILES = {"train": "train-{}-idx{}-ubyte", "test": "t10k-{}-idx{}-ubyte"}
_IDX_UBYTE = 0x08
FEATURES = Features({"image": Array2D((28, 28), "uint8"), "label": ClassLabel(names=list(FASHION_MNIST_CLASSES))})


def read_idx(path: Path) -> np.ndarray:
    """An IDX file of unsigned bytes (gzipped if its name ends in ``.gz``) as a uint8 array of the stored shape."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise ValueError(f"{path}: corrupt gzip stream ({err}); download the file again") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != _IDX_UBYTE:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {raw[:4].hex()}); expected 0000 08 xx")
    header = 4 + 4 * raw[3]  # magic, then one big-endian uint32 per dimension
    if len(raw) < header:
        raise ValueError(f"{path}: truncated IDX file: the header itself is cut; download the file again")
    shape = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    if len(raw) - header != int(np.prod(shape)):
        raise ValueError(
            f"{path}: truncated IDX file: its header promises shape {shape} ({int(np.prod(shape))} bytes of data), "
            f"the file holds {len(raw) - header}; download the file again"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_path(folder: Path, kind: str, ndim: int, split: str) -> Path:
    name = _FILES[split].format(kind, ndim)
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"fashion_mnist {split!r}: {folder / name}.gz is missing (nor is it there unzipped)")


def _read_split(images_path: Path, labels_path: Path) -> Dataset:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1:
        raise ValueError(f"{images_path}, {labels_path}: expected images (N, 28, 28) and labels (N,), "
                         f"got {images.shape} and {labels.shape}")
    if len(images) != len(labels):
        raise ValueError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if labels.max(initial=0) >= len(FASHION_MNIST_CLASSES):
        raise ValueError(f"{labels_path}: label {labels.max()} out of range 0..{len(FASHION_MNIST_CLASSES) - 1}")
    return build_dataset({"image": images, "label": labels.astype(np.int64)}, FEATURES)


def _hub_to_arrays(batch: dict) -> dict:
    return {"image": [np.asarray(image.convert("L")) for image in batch["image"]], "label": batch["label"]}


@register_dataset("fashion_mnist")
def load(split: str, data_dir=None, cache_dir=None) -> Dataset:
    """Split ``train`` or ``test``: from local IDX files if found (see :func:`sources.locate`), else the hub."""
    folder, tried = sources.locate("fashion_mnist", FOLDER, "*-idx?-ubyte*", data_dir)
    if folder is None:
        hub = sources.from_hub("fashion_mnist", HUB_REPO, split, tried, f"{FOLDER}/ with the four IDX .gz files")
        return hub.map(_hub_to_arrays, batched=True, features=FEATURES)
    paths = [_idx_path(folder, "images", 3, split), _idx_path(folder, "labels", 1, split)]
    key = sources.file_identity(paths)
    return sources.cached(f"fashion_mnist-{split}", paths, key, lambda: _read_split(*paths), cache_dir)


def label_names() -> tuple[str, ...]:
    return FASHION_MNIST_CLASSES
