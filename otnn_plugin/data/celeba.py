"""CelebA aligned faces with binary attributes (paper Sec. 5, appendix A.2.1, Table 5).

Columns: ``image`` (RGB, H x W x 3 uint8), ``image_id``, then one ``Value("bool")`` column per attribute, named as
CelebA and the hub's ``flwrlabs/celeba`` name it (``ds.features["Mustache"]``): the paper's 22 attributes in the
paper's order (:data:`~otnn_plugin.labels.CELEBA_PAPER_ATTRIBUTES`) by default, all 40 with ``attributes="all"``,
or any list of attribute names; :func:`attribute_names` gives them. The features are the same from both sources
(but for ``image``, see below); ``to_tensors`` stacks the attribute columns into the (N, L) label tensor.

* Local source: a folder (``celeba-subset/`` under the data root) holding an aligned-image folder
  (``img_align_celeba/`` or ``images_89x109/``, or ``image_dir=``) and an attribute file in CelebA's own format
  (``list_attr_celeba*.txt``, or ``attr_file=``): the row count, the 40 attribute names, then one row of
  ``<image name> <40 values of -1/1>`` per image. Without ``attr_file``, the first file whose row count matches its
  first line is used (``list_attr_celeba.txt`` first), so that a truncated file is passed over. Every listed image
  must exist and decode, all at one size. ``image`` is ``Array3D`` at that size (109x89 for the shared subset).
  Split (deterministic, in file order, like CelebA's own partition): the first 80% of the rows are ``train``, the
  last 20% ``test`` (8,000 / 2,000 for the shared 10,000 images, all from CelebA's train partition).
* Hub source: ``flwrlabs/celeba`` (CelebA's own partition: 162,770 train / 19,962 test images at 218x178).
  ``image`` stays an ``Image()`` feature there (decoded on access; as ``Array3D`` it would take 19 GB), and
  ``image_id`` is ``flwrlabs/celeba/<split>/<row>`` (the hub keeps no file names).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from datasets import Dataset, Value, concatenate_datasets
from PIL import Image

from ..labels import CELEBA_ATTRIBUTES, CELEBA_PAPER_ATTRIBUTES
from . import register_dataset, sources
from ._arrow import build_dataset

HUB_REPO = "flwrlabs/celeba"
FOLDER = "celeba-subset"
ATTRIBUTE_FILE = "list_attr_celeba.txt"
IMAGE_DIRS = ("img_align_celeba", "images_89x109")
TEST_FRACTION = 0.2
#: Features of every column but ``image``: the hub's ``flwrlabs/celeba`` types its attributes ``bool``.
FEATURES = {"image_id": Value("string"), **dict.fromkeys(CELEBA_ATTRIBUTES, Value("bool"))}


def attribute_names(attributes: str | Sequence[str] = "paper") -> tuple[str, ...]:
    """``"paper"`` (22, paper's order), ``"all"`` (40, file order) or a sequence of CelebA attribute names."""
    if isinstance(attributes, str):
        presets = {"paper": CELEBA_PAPER_ATTRIBUTES, "all": CELEBA_ATTRIBUTES}
        if attributes not in presets:
            raise ValueError(f"attributes={attributes!r}: use 'paper', 'all' or a list of CelebA attribute names")
        return presets[attributes]
    names = tuple(attributes)
    unknown = [name for name in names if name not in CELEBA_ATTRIBUTES]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"attributes={list(names)}: give distinct CelebA attribute names; unknown: {unknown}; "
                         f"known: {', '.join(CELEBA_ATTRIBUTES)}")
    return names


def read_attributes(path: Path, text: str | None = None) -> tuple[list[str], np.ndarray]:
    """Image names and their 40 attributes as bool (N, 40) from a file in CelebA's ``list_attr`` format
    (``text``: its content, if already read)."""
    lines = (path.read_text() if text is None else text).strip().splitlines()
    if len(lines) < 2 or not lines[0].strip().isdigit():
        raise ValueError(f"{path}: not a CelebA attribute file: the first line must be the row count, "
                         "the second the 40 attribute names")
    if tuple(lines[1].split()) != CELEBA_ATTRIBUTES:
        raise ValueError(f"{path}, line 2: expected the 40 CelebA attribute names in CelebA's order, "
                         f"got {len(lines[1].split())} names starting {lines[1].split()[:3]}")
    rows = [line.split() for line in lines[2:]]
    width = 1 + len(CELEBA_ATTRIBUTES)
    for number, row in enumerate(rows, start=3):
        if len(row) != width:
            raise ValueError(f"{path}, line {number}: {len(row)} columns, expected {width} "
                             "(image name and 40 values of -1/1)")
    if len(rows) != int(lines[0]):
        raise ValueError(f"{path}: truncated: line 1 announces {int(lines[0])} rows, the file has {len(rows)}")
    table = np.array(rows)
    if not np.isin(table[:, 1:], ("-1", "1")).all():
        number = 3 + int(np.argmin(np.isin(table[:, 1:], ("-1", "1")).all(axis=1)))
        raise ValueError(f"{path}, line {number}: attribute values must be -1 or 1")
    names = table[:, 0].tolist()
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: an image is listed twice")
    return names, table[:, 1:] == "1"


def _is_complete(path: Path) -> bool:
    """True when the first line of a CelebA attribute file counts its rows: a cheap check against truncation."""
    count, _, rest = path.read_text().strip().partition("\n")
    return count.strip().isdigit() and int(count) == rest.count("\n")  # lines after the header line


def _attribute_file(folder: Path, attr_file: str | None) -> Path:
    if attr_file is not None:
        path = folder / attr_file
        if not path.is_file():
            raise FileNotFoundError(f"celeba: attribute file {path} is missing")
        return path
    candidates = sorted(folder.glob("list_attr_celeba*.txt"), key=lambda p: (p.name != ATTRIBUTE_FILE, p.name))
    if not candidates:
        raise FileNotFoundError(f"celeba: no attribute file {folder / ATTRIBUTE_FILE} (CelebA's list_attr format)")
    for path in candidates:
        if _is_complete(path):
            return path
    raise ValueError(f"celeba: every attribute file in {folder} is truncated (row count on line 1 does not match "
                     f"the rows): {', '.join(p.name for p in candidates)}; fix one, or pass attr_file=")


def _image_dir(folder: Path, image_dir: str | None) -> Path:
    names = (image_dir,) if image_dir is not None else IMAGE_DIRS
    for name in names:
        if (folder / name).is_dir():
            return folder / name
    raise FileNotFoundError(f"celeba: no image folder {' or '.join(str(folder / n) for n in names)}")


def _decode_images(paths: list[Path]) -> np.ndarray:
    """All images as one (N, H, W, 3) uint8 array; ValueError names an image that fails or differs in size."""
    images = None
    for index, path in enumerate(paths):
        try:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
        except OSError as err:
            raise ValueError(f"{path}: cannot decode the image ({err})") from None
        if images is None:
            images = np.empty((len(paths), *pixels.shape), dtype=np.uint8)
        if pixels.shape != images.shape[1:]:
            raise ValueError(f"{path}: image is {pixels.shape[1]}x{pixels.shape[0]}, but {paths[0].name} is "
                             f"{images.shape[2]}x{images.shape[1]}; all images must have one size")
        images[index] = pixels
    return images


def _local(folder: Path, attr_file: str | None, image_dir: str | None, cache_dir) -> Dataset:
    """Every listed image with its 40 attribute columns, from the Arrow cache (built on first use)."""
    attr_path, images = _attribute_file(folder, attr_file), _image_dir(folder, image_dir)
    text = attr_path.read_text()
    names, attributes = read_attributes(attr_path, text)
    paths = [images / name for name in names]
    try:
        key = sources.file_identity([attr_path, *paths], text)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"celeba: {err}, but {attr_path} lists it; restore it, or use an attribute file "
                                "that lists only the images you have (attr_file=)") from None

    def build() -> Dataset:
        columns = {"image": _decode_images(paths), "image_id": names, **dict(zip(CELEBA_ATTRIBUTES, attributes.T))}
        return build_dataset(columns, FEATURES, fingerprint=key)

    return sources.cached(f"celeba-{images.name}", [attr_path, images], key, build, cache_dir)


def _split_rows(dataset: Dataset, split: str) -> Dataset:
    n_train = len(dataset) - round(len(dataset) * TEST_FRACTION)
    rows = range(n_train) if split == "train" else range(n_train, len(dataset))
    return dataset.select(rows)  # a contiguous range: a zero-copy slice, no indices mapping


@register_dataset("celeba")
def load(
    split: str,
    data_dir=None,
    attributes: str | Sequence[str] = "paper",
    attr_file: str | None = None,
    image_dir: str | None = None,
    cache_dir=None,
) -> Dataset:
    """Split ``train`` or ``test`` with a column per chosen attribute: local files if found, else the hub."""
    names = attribute_names(attributes)
    folder, tried = sources.locate("celeba", FOLDER, "list_attr_celeba*.txt", data_dir)
    if folder is None:
        fix = f"{FOLDER}/ with an aligned-image folder and {ATTRIBUTE_FILE}"
        hub = sources.from_hub("celeba", HUB_REPO, split, tried, fix)
        image_ids = build_dataset({"image_id": [f"{HUB_REPO}/{split}/{row}" for row in range(len(hub))]}, FEATURES)
        return concatenate_datasets(
            [hub.select_columns(["image"]), image_ids, hub.select_columns(list(names))], axis=1
        )
    rows = _split_rows(_local(folder, attr_file, image_dir, cache_dir), split)
    return rows.select_columns(["image", "image_id", *names])


label_names = attribute_names
