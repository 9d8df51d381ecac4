"""The paper's datasets as Hugging Face ``datasets.Dataset``: Fashion-MNIST, CelebA and two Koch snowflakes, and any
ImageNet-style image tree (``imagefolder``, with optional human importance maps).

    ds = load_dataset("celeba", "train")    # local files (data_dir, else $OTNN_DATA_DIR), else the hub
    x, y = to_tensors(ds)                    # the whole split: float32 NCHW in [0, 1], and the labels
    rows = ds.with_format("torch", dtype=torch.uint8)  # or row by row; without dtype, datasets widens to int64

Where data comes from and how it is cached: :mod:`.sources`; each dataset's columns, splits and options: its
module (:mod:`.fashion_mnist`, :mod:`.celeba`, :mod:`.snowflake`, :mod:`.imagefolder`). Training
augmentations (``augment: true``), by dataset: :data:`.transforms.AUGMENTATIONS`.
"""
from __future__ import annotations

import inspect
import os
from types import ModuleType
from typing import Callable

import numpy as np
import torch
from datasets import ClassLabel, Dataset, Image, Value

from .._registry import Registry, import_submodules
from ._arrow import column_to_numpy, stack_columns

__all__ = [
    "DATASETS", "HUMAN_MAP", "SPLITS", "human_maps", "label_columns", "label_names", "label_rates", "list_datasets",
    "load_dataset", "register_dataset", "to_tensors",
]

SPLITS = ("train", "test")
#: The column of human importance maps (ClickMe-style), in datasets that have them.
HUMAN_MAP = "human_map"
#: Every dataset's ``load(split, data_dir=None, **options)`` by name, filled by importing this package's modules: a
#: dataset is a module whose ``load`` is decorated with ``@register_dataset("name")`` and that defines
#: ``label_names(**options)`` (with ``data_dir`` among them where the names are read from the data).
DATASETS: Registry[Callable[..., Dataset]] = Registry("dataset", load=import_submodules(__name__))
register_dataset = DATASETS.register


def list_datasets() -> list[str]:
    return DATASETS.names()


def _checked(name: str, options: dict) -> ModuleType:
    module = inspect.getmodule(DATASETS.get(name))
    known = [p for p in inspect.signature(module.load).parameters if p not in ("split", "data_dir")]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(f"{name}: unknown option(s) {', '.join(unknown)}; its options are: {', '.join(known)}")
    return module


def load_dataset(name: str, split: str, data_dir: str | os.PathLike | None = None, **options) -> Dataset:
    """Split ``train`` or ``test`` of dataset ``name`` (see :func:`list_datasets`).

    ``data_dir`` is the folder holding ``fashion-mnist/`` and ``celeba-subset/`` (or one dataset's folder itself; an
    image tree's root for ``imagefolder``); without it, ``$OTNN_DATA_DIR``, then the Hugging Face hub. ``options``
    are the dataset's: ``cache_dir`` for the image datasets; ``attributes``, ``attr_file``, ``image_dir`` for CelebA;
    ``size``, ``resize``, ``num_proc`` for ``imagefolder``; ``n``, ``seed``, ``depth``, ``size``, ``inner_ratio``,
    ``noise`` for the snowflakes.
    """
    module = _checked(name, options)
    if split not in SPLITS:
        raise ValueError(f"{name}: unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    return module.load(split, data_dir, **options)


def label_names(name: str, data_dir: str | os.PathLike | None = None, **options) -> tuple[str, ...]:
    """Names of the classes (Fashion-MNIST; an image tree's class folders, found as :func:`load_dataset` finds it
    from ``data_dir``), of the label columns in order (CelebA's attributes), or of labels -1 and +1 (snowflake).
    Takes the same options as :func:`load_dataset` and uses those that matter (``attributes``)."""
    module = _checked(name, options)
    wanted = inspect.signature(module.label_names).parameters
    given = {**options, "data_dir": data_dir}
    return module.label_names(**{key: value for key, value in given.items() if key in wanted})


def label_columns(dataset: Dataset) -> list[str]:
    """The label columns of a multilabel dataset, in column order: its ``Value("bool")`` features, one per label
    (CelebA: one per attribute, named as the attribute, as on the hub); empty for a dataset with one ``label``."""
    return [name for name, feature in dataset.features.items() if feature == Value("bool")]


def _images(dataset: Dataset) -> np.ndarray:
    if isinstance(dataset.features["image"], Image):  # the hub's CelebA keeps JPEGs; datasets decodes them
        return np.stack(dataset.with_format("numpy")["image"][:])
    return column_to_numpy(dataset, "image")


def to_tensors(dataset: Dataset, device: str | torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole dataset as ``(x, y)`` tensors on ``device``, read from Arrow buffers without a loop over rows.

    Images: ``x`` float32 (N, C, H, W) in [0, 1] (paper A.2.1), converted on ``device`` after a uint8 transfer;
    ``y`` int64 (N,) from ``label``, or float32 (N, L) of 0/1 from the :func:`label_columns` in their order (for
    :func:`load_dataset`'s CelebA, that of :func:`label_names`). Snowflake: ``x`` float32 (N, 2), ``y`` float32
    (N,) of -1/+1.
    """
    columns, labels = dataset.column_names, label_columns(dataset)
    if "point" in columns:
        points, classes = column_to_numpy(dataset, "point"), column_to_numpy(dataset, "label")
        return torch.from_numpy(points).to(device), torch.from_numpy(classes).to(device, torch.float32)
    if "image" not in columns or not ("label" in columns or labels):
        raise ValueError(f"to_tensors needs columns image and label (or boolean label columns), or point and "
                         f"label; got {columns}")
    images = torch.from_numpy(_images(dataset)).to(device)
    images = images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()
    x = images.to(torch.float32).div_(255)
    if labels:
        return x, torch.from_numpy(stack_columns(dataset, labels)).to(device, torch.float32)
    return x, torch.from_numpy(column_to_numpy(dataset, "label")).to(device, torch.int64)


def human_maps(dataset: Dataset) -> torch.Tensor | None:
    """The :data:`HUMAN_MAP` column as float32 (N, 1, H, W), Quantus's ``s_batch`` layout, or None for a dataset
    without human maps."""
    if HUMAN_MAP not in dataset.column_names:
        return None
    return torch.from_numpy(column_to_numpy(dataset, HUMAN_MAP)).unsqueeze(1)


def label_rates(dataset: Dataset) -> torch.Tensor:
    """Positive rate of every :func:`label_columns` column (CelebA, paper Table 5), or the share of every class of
    ``label`` in :func:`label_names` order (for the snowflake: -1, then +1); float64, read from Arrow only."""
    if columns := label_columns(dataset):
        return torch.from_numpy(stack_columns(dataset, columns).mean(axis=0, dtype=np.float64))
    labels = column_to_numpy(dataset, "label")
    feature = dataset.features["label"]
    classes, count = (labels, feature.num_classes) if isinstance(feature, ClassLabel) else (labels > 0, 2)
    return torch.from_numpy(np.bincount(classes.astype(np.int64), minlength=count) / max(len(labels), 1))
