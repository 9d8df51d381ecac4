"""Any ImageNet-style image tree, read with Hugging Face ``datasets``' ``imagefolder`` builder and preprocessed as
for ImageNet evaluation.

Layout of the tree (``data_dir``, else ``imagenet/`` under ``$OTNN_DATA_DIR``)::

    train/<class>/<image>                      # the class names are the folder names of train/, sorted
    val/<class>/<image>                        # split "test": test/, else val/, validation/ or valid/
    human_maps/val/<class>/<image stem>.png    # optional: a human importance map per image (ClickMe-style)

Columns: ``image`` (``Array3D`` uint8, ``size x size x 3``), ``label`` (``ClassLabel`` of train/'s folder names, for
both splits), ``image_id`` (the image's path in the tree, e.g. ``val/n01440764/ILSVRC2012_val_00000293.JPEG``)
and, when ``human_maps/<split folder>/`` exists, ``human_map`` (``Array2D`` float32, ``size x size``); then every
image of that split needs a map, a greyscale image (8 or 16 bit) of the image's size, at the image's path with
``.png`` for its extension. :func:`otnn_plugin.data.human_maps` reads them as Quantus's ``s_batch``.

Preprocessing, torchvision's ImageNet evaluation transform: RGB, ``Resize(resize)`` of the shorter side (default
``size / 0.875``, 256 for 224; bilinear, antialiased as PIL resamples), ``CenterCrop(size)``; human maps get the
same resize and crop. ``to_tensors`` gives values in [0, 1], the plugin's convention, with no mean/std normalisation:
dividing by ImageNet's std (about 0.23) would multiply an OTNN's Lipschitz constant in pixel space by about 4.4, and
the mean shift is left to the layers' biases.

The builder lists the files; each image is decoded and preprocessed once (``Dataset.map``, ``num_proc`` processes)
into ``datasets``' cache files under ``$OTNN_CACHE_DIR/imagefolder``, keyed by the path, size and modification time
of every image and map and by ``size`` and ``resize``, so that an edited file is read again. Old versions stay
there: ``datasets``' ``Dataset.cleanup_cache_files`` removes them.

Limitation: the trainer holds a whole split in memory as tensors (:func:`otnn_plugin.data.to_tensors`). That suits a
miniature or a subset; ImageNet's 1.28 million training images at 224x224 (about 190 GB as uint8) need a streaming
loader, which the trainer does not have yet.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import datasets
import numpy as np
from datasets import Array2D, Array3D, ClassLabel, Dataset, Features, Value
from datasets.packaged_modules.imagefolder.imagefolder import ImageFolder
from PIL import Image
from torchvision import transforms

from . import HUMAN_MAP, register_dataset, sources

FOLDER = "imagenet"
TRAIN = "train"
#: Folders that may hold the test split, in order of preference (ImageNet's is ``val/``).
TEST_FOLDERS = ("test", "val", "validation", "valid")
MAPS = "human_maps"
#: torchvision's ImageNet evaluation: resize to size / 0.875 (256 for 224), then crop the centre.
CROP_FRACTION = 0.875
_LAYOUT = "an ImageNet-style tree holds train/<class>/<image> and val/<class>/<image> (or test/)"


def _root(data_dir: str | os.PathLike | None) -> Path:
    """The tree's root: ``data_dir`` or ``data_dir/imagenet``, else ``$OTNN_DATA_DIR/imagenet``; it holds train/."""
    if data_dir is not None:
        candidates = [Path(data_dir).expanduser(), Path(data_dir).expanduser() / FOLDER]
    elif os.environ.get(sources.DATA_DIR_ENV):
        candidates = [Path(os.environ[sources.DATA_DIR_ENV]).expanduser() / FOLDER]
    else:
        raise FileNotFoundError(f"imagefolder: no image tree: pass data_dir= (otnn --data-dir) to its root, or set "
                                f"{sources.DATA_DIR_ENV} to a folder holding {FOLDER}/; {_LAYOUT}")
    for root in candidates:
        if (root / TRAIN).is_dir():
            return root
    raise FileNotFoundError(f"imagefolder: no {TRAIN}/ folder in {' nor in '.join(map(str, candidates))}: {_LAYOUT}")


def _split_folder(root: Path, split: str) -> str:
    folders = (TRAIN,) if split == TRAIN else TEST_FOLDERS
    for folder in folders:
        if (root / folder).is_dir():
            return folder
    raise FileNotFoundError(f"imagefolder: {root} has no {split} split: add test/<class>/<image> or "
                            "val/<class>/<image>")


def _class_folders(folder: Path) -> list[str]:
    """Sub-folder names, sorted, skipping the hidden ones (``.x``, ``__x``) that ``datasets`` skips too."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))


def _classes(root: Path) -> list[str]:
    classes = _class_folders(root / TRAIN)
    if not classes:
        raise FileNotFoundError(f"imagefolder: {root / TRAIN} has no class folders: {_LAYOUT}")
    return classes


def _resize_crop(image: Image.Image, size: int, resize: int) -> Image.Image:
    """torchvision's ImageNet evaluation transform: ``Resize(resize)`` (the shorter side), ``CenterCrop(size)``."""
    resized = transforms.functional.resize(image, resize, transforms.InterpolationMode.BILINEAR)
    return transforms.functional.center_crop(resized, size)


def _map_path(root: Path, image_id: str) -> Path:
    """The human map of the image ``image_id`` (its path in the tree): ``human_maps/<image_id>`` with ``.png``."""
    return (root / MAPS / image_id).with_suffix(".png")


def _decoded(path: Path, mode: str, size: int, resize: int) -> tuple[tuple[int, int], np.ndarray]:
    """The original (width, height) of the image at ``path`` and its ``mode`` pixels resized and cropped."""
    try:
        with Image.open(path) as image:
            return image.size, np.asarray(_resize_crop(image.convert(mode), size, resize))
    except OSError as err:
        raise ValueError(f"{path}: cannot decode the image ({err}); repair or remove it") from None


def _preprocess(batch: dict, root: str, size: int, resize: int, with_maps: bool) -> dict:
    """A batch of image paths decoded, resized and cropped, with their ids and, ``with_maps``, their human maps."""
    images, ids, maps = [], [], []
    for entry in batch["image"]:
        path = Path(entry["path"])
        original, pixels = _decoded(path, "RGB", size, resize)
        images.append(pixels)
        ids.append(path.relative_to(root).as_posix())
        if with_maps:
            map_path = _map_path(Path(root), ids[-1])
            map_size, human = _decoded(map_path, "F", size, resize)
            if map_size != original:
                raise ValueError(f"{map_path}: the human map is {map_size[0]}x{map_size[1]}, its image {path} "
                                 f"{original[0]}x{original[1]}: give every map its image's size")
            maps.append(human)
    return {"image": images, "image_id": ids, **({HUMAN_MAP: maps} if with_maps else {})}


def _check_classes(root: Path, folder: str, classes: list[str]) -> None:
    unknown = sorted(set(_class_folders(root / folder)) - set(classes))
    if unknown:
        raise ValueError(f"imagefolder: {folder}/ has class folder(s) {', '.join(unknown[:5])} that {TRAIN}/ lacks: "
                         f"every class needs training images; remove them or add them to {TRAIN}/")


def _listing(root: Path, folder: str, split: str, classes: list[str], cache: Path) -> Dataset:
    """The builder's rows: the image paths (not decoded) and their labels."""
    if not any(path.suffix.lower() in ImageFolder.EXTENSIONS for path in (root / folder).glob("*/*")):
        raise FileNotFoundError(f"imagefolder: {root / folder} holds no images: {_LAYOUT}")
    features = Features({"image": datasets.Image(decode=False), "label": ClassLabel(names=classes)})
    return datasets.load_dataset(
        "imagefolder", data_dir=str(root), data_files={split: f"{folder}/*/*"}, split=split, features=features,
        drop_labels=False, drop_metadata=True, cache_dir=str(cache),
    )


def _check_maps(root: Path, folder: str, image_ids: list[str]) -> list[Path]:
    paths = [_map_path(root, image_id) for image_id in image_ids]
    missing = [path for path in paths if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"imagefolder: {len(missing)} image(s) of {folder}/ have no human map, e.g. "
                                f"{missing[0]}: give every image of the split a map, or remove {root / MAPS / folder}")
    return paths


@register_dataset("imagefolder")
def load(
    split: str,
    data_dir=None,
    size: int = 224,
    resize: int | None = None,
    num_proc: int | None = None,
    cache_dir=None,
) -> Dataset:
    """Split ``train`` or ``test`` of the tree, every image resized and centre-cropped to ``size x size``."""
    resize = round(size / CROP_FRACTION) if resize is None else resize
    if not (isinstance(size, int) and isinstance(resize, int) and 1 <= size <= resize):
        raise ValueError(f"size={size!r}, resize={resize!r}: give integers with 1 <= size <= resize (the crop is "
                         "taken from the image resized to resize)")
    root = _root(data_dir)
    folder, classes = _split_folder(root, split), _classes(root)
    _check_classes(root, folder, classes)
    cache = sources.cache_root(cache_dir) / "imagefolder"
    listing = _listing(root, folder, split, classes, cache)
    paths = [Path(p) for p in listing.with_format("arrow")[:]["image"].combine_chunks().field("path").to_pylist()]
    image_ids = [path.relative_to(root).as_posix() for path in paths]
    map_paths = _check_maps(root, folder, image_ids) if (root / MAPS / folder).is_dir() else []
    settings = json.dumps({"size": size, "resize": resize, "classes": classes, "maps": bool(map_paths)})
    key = sources.file_identity([*paths, *map_paths], settings)
    features = Features({
        "image": Array3D((size, size, 3), "uint8"), "label": ClassLabel(names=classes), "image_id": Value("string"),
        **({HUMAN_MAP: Array2D((size, size), "float32")} if map_paths else {}),
    })
    return listing.map(
        _preprocess, batched=True, batch_size=64, features=features, num_proc=num_proc,
        new_fingerprint=key[:32],  # datasets appends "_00000_of_00016" per process, and takes 64 characters at most
        fn_kwargs={"root": str(root), "size": size, "resize": resize, "with_maps": bool(map_paths)},
        desc=f"imagefolder {split}: resize {resize}, crop {size}",
    )


def label_names(data_dir=None) -> tuple[str, ...]:
    """The class folder names of train/, sorted: ``label`` ``i`` is the ``i``-th."""
    return tuple(_classes(_root(data_dir)))
