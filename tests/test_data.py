"""Datasets: the shared local data, the hub path (mocked at ``datasets.load_dataset``), corrupt files, snowflakes,
the CelebA augmentation and ``otnn data``."""
from __future__ import annotations

import gzip
import re
import shutil
import struct
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

import otnn_plugin.cli as cli
from otnn_plugin.data import celeba, label_columns, label_names, label_rates, list_datasets, load_dataset, to_tensors
from otnn_plugin.data.snowflake import koch_snowflake
from otnn_plugin.data.transforms import celeba_augment, fashion_mnist_augment
from otnn_plugin.labels import CELEBA_ATTRIBUTES, CELEBA_PAPER_ATTRIBUTES, FASHION_MNIST_CLASSES


@pytest.fixture(autouse=True)
def _no_env_sources(monkeypatch, tmp_path):
    """No test reads $OTNN_DATA_DIR unless it sets it, and none writes to the user's cache."""
    monkeypatch.delenv("OTNN_DATA_DIR", raising=False)
    monkeypatch.setenv("OTNN_CACHE_DIR", str(tmp_path / "default-cache"))
    for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def celeba_splits(data_dir, dataset_cache) -> dict[str, datasets.Dataset]:
    """Both splits of the shared CelebA subset; the Arrow cache is built once for the whole module."""
    return {split: load_dataset("celeba", split, data_dir, cache_dir=dataset_cache) for split in ("train", "test")}


def attribute_rows(data_dir: Path) -> dict[str, list[int]]:
    """The shared 10,000-row attribute file, parsed here independently: name -> 40 values of -1/1."""
    lines = (data_dir / "celeba-subset" / "list_attr_celeba_000001-010000.txt").read_text().splitlines()
    return {line.split()[0]: [int(v) for v in line.split()[1:]] for line in lines[2:]}


# ---------------------------------------------------------------- registry and bad arguments


def test_list_datasets_and_label_names():
    assert list_datasets() == ["celeba", "fashion_mnist", "imagefolder", "snowflake"]
    assert label_names("fashion_mnist") == FASHION_MNIST_CLASSES
    assert label_names("celeba") == CELEBA_PAPER_ATTRIBUTES
    assert label_names("celeba", attributes="all", attr_file=None) == CELEBA_ATTRIBUTES
    assert label_names("celeba", attributes=["Male", "Young"]) == ("Male", "Young")
    assert label_names("snowflake") == ("outer", "inner")


@pytest.mark.parametrize("call, message", [
    (lambda: load_dataset("mnist", "train"), "unknown dataset 'mnist'"),
    (lambda: load_dataset("snowflake", "valid"), "unknown split 'valid'"),
    (lambda: load_dataset("snowflake", "train", depth_max=3), "unknown option(s) depth_max"),
    (lambda: load_dataset("snowflake", "train", n=3), "even integer"),
    (lambda: load_dataset("snowflake", "train", depth=9), "depth=9"),
    (lambda: label_names("celeba", attributes="most"), "attributes='most'"),
    (lambda: label_names("celeba", attributes=["Male", "Tall"]), "unknown: ['Tall']"),
])
def test_bad_arguments_raise_clear_value_errors(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# ---------------------------------------------------------------- Fashion-MNIST on the shared files


def raw_idx(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def test_fashion_mnist_local_rows_labels_and_pixels(data_dir, dataset_cache):
    folder = data_dir / "fashion-mnist"
    train = load_dataset("fashion_mnist", "train", data_dir, cache_dir=dataset_cache)
    test = load_dataset("fashion_mnist", "test", folder, cache_dir=dataset_cache)  # the dataset folder itself
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.features["label"].names == list(FASHION_MNIST_CLASSES)
    assert train.features["image"] == datasets.Array2D((28, 28), "uint8")

    x, y = to_tensors(train)
    assert x.shape == (60_000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    labels = np.frombuffer(raw_idx(folder / "train-labels-idx1-ubyte.gz"), np.uint8, offset=8)  # 8-byte header
    assert torch.equal(y, torch.from_numpy(labels.astype(np.int64)))
    pixels = raw_idx(folder / "t10k-images-idx3-ubyte.gz")[16 + 5 * 784: 16 + 6 * 784]  # 16-byte header, 6th image
    expected = torch.tensor(list(pixels), dtype=torch.float32).view(1, 28, 28) / 255
    assert torch.equal(to_tensors(test)[0][5], expected)
    assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.99
    assert torch.allclose(label_rates(train), torch.full((10,), 6_000 / 60_000, dtype=torch.float64))

    row = train.with_format("torch")[0]  # rows are usable through datasets' own formatting
    assert row["image"].shape == (28, 28) and row["label"].item() == labels[0]


def write_idx(path: Path, array: np.ndarray, cut: int = 0) -> Path:
    """An IDX file of unsigned bytes, gzipped, with its last ``cut`` bytes of data dropped."""
    data = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.write_bytes(gzip.compress(data[: len(data) - cut]))
    return path


@pytest.fixture
def tiny_fashion(tmp_path) -> Path:
    folder = tmp_path / "fashion-mnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (5, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", np.array([9, 0, 3, 1, 7], np.uint8))
    return folder


def test_fashion_mnist_tiny_folder_loads(tiny_fashion, tmp_path):
    dataset = load_dataset("fashion_mnist", "train", tmp_path)
    assert len(dataset) == 5 and to_tensors(dataset)[1].tolist() == [9, 0, 3, 1, 7]


def test_truncated_idx_is_an_error_naming_the_file(tiny_fashion, tmp_path):
    path = write_idx(tiny_fashion / "train-images-idx3-ubyte.gz", np.zeros((5, 28, 28), np.uint8), cut=100)
    with pytest.raises(ValueError, match=re.escape(f"{path}: truncated IDX file") + ".*3920 bytes.*holds 3820"):
        load_dataset("fashion_mnist", "train", tmp_path)
    assert not any((tmp_path / "default-cache").iterdir()), "a failed build must leave no cache, not even a part"


def test_cut_gzip_stream_is_an_error_naming_the_file(tiny_fashion, tmp_path):
    path = tiny_fashion / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(ValueError, match=re.escape(f"{path}: corrupt gzip stream")):
        load_dataset("fashion_mnist", "test", tmp_path)


def test_missing_idx_file_and_mismatched_counts(tiny_fashion, tmp_path):
    (tiny_fashion / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz is missing"):
        load_dataset("fashion_mnist", "test", tmp_path)
    write_idx(tiny_fashion / "train-labels-idx1-ubyte.gz", np.array([1, 2, 3], np.uint8))
    with pytest.raises(ValueError, match="holds 5 images but .*train-labels-idx1-ubyte.gz 3 labels"):
        load_dataset("fashion_mnist", "train", tmp_path)


# ---------------------------------------------------------------- CelebA on the shared subset


def test_celeba_local_split_is_8000_2000_in_file_order(celeba_splits):
    train, test = celeba_splits["train"], celeba_splits["test"]
    assert (len(train), len(test)) == (8_000, 2_000)
    assert train.features["image"] == datasets.Array3D((109, 89, 3), "uint8")
    assert train.column_names == ["image", "image_id", *CELEBA_PAPER_ATTRIBUTES]
    assert label_columns(train) == list(CELEBA_PAPER_ATTRIBUTES) and len(label_columns(train)) == 22
    assert train.features["Mustache"] == datasets.Value("bool")  # the names are in the features, as on the hub
    assert train["image_id"][:] == [f"{i:06d}.jpg" for i in range(1, 8_001)]
    assert test["image_id"][:] == [f"{i:06d}.jpg" for i in range(8_001, 10_001)]


def test_celeba_first_row_decodes_with_its_attributes(celeba_splits, data_dir):
    row = celeba_splits["train"].with_format("numpy")[0]
    assert row["image_id"] == "000001.jpg"
    pixels = np.asarray(Image.open(data_dir / "celeba-subset" / "images_89x109" / "000001.jpg").convert("RGB"))
    assert np.array_equal(row["image"], pixels)
    values = attribute_rows(data_dir)["000001.jpg"]
    expected = [int(values[CELEBA_ATTRIBUTES.index(name)] == 1) for name in CELEBA_PAPER_ATTRIBUTES]
    assert [int(row[name]) for name in CELEBA_PAPER_ATTRIBUTES] == expected
    positive = {name for name, value in zip(CELEBA_PAPER_ATTRIBUTES, expected) if value}
    assert positive == {"Attractive", "Brown_Hair", "Heavy_Makeup", "Mouth_Slightly_Open", "Smiling",
                        "Wearing_Earrings", "Wearing_Lipstick", "Young"}  # CelebA's row 000001.jpg


def test_celeba_all_40_attributes_and_tensors(data_dir, dataset_cache, celeba_splits):
    test = load_dataset("celeba", "test", data_dir, attributes="all", cache_dir=dataset_cache)
    x, y = to_tensors(test)
    assert x.shape == (2_000, 3, 109, 89) and x.dtype == torch.float32 and y.shape == (2_000, 40)
    rows = attribute_rows(data_dir)
    expected = torch.tensor([[v == 1 for v in rows[f"{i:06d}.jpg"]] for i in range(8_001, 10_001)], dtype=torch.float32)
    assert torch.equal(y, expected)
    pixels = np.array(Image.open(data_dir / "celeba-subset" / "images_89x109" / "008001.jpg").convert("RGB"))
    assert torch.equal(x[0], torch.from_numpy(pixels).permute(2, 0, 1).float() / 255)
    assert torch.equal(label_rates(test).float(), expected.double().mean(0).float())


def test_celeba_label_tensor_follows_label_names_on_shuffled_rows(celeba_splits, data_dir):
    rows = celeba_splits["train"].shuffle(seed=0).select(range(50))  # an indices mapping over the Arrow table
    _, y = to_tensors(rows)
    attributes = attribute_rows(data_dir)
    columns = [CELEBA_ATTRIBUTES.index(name) for name in label_names("celeba")]
    assert y.dtype == torch.float32
    assert y.tolist() == [[float(attributes[name][c] == 1) for c in columns] for name in rows["image_id"][:]]


def test_celeba_cache_is_reused(data_dir, dataset_cache, celeba_splits, monkeypatch):
    def no_decoding(paths):
        raise AssertionError("the Arrow cache should have been used")

    monkeypatch.setattr(celeba, "_decode_images", no_decoding)
    assert len(load_dataset("celeba", "train", data_dir, cache_dir=dataset_cache)) == 8_000


# ---------------------------------------------------------------- CelebA: tiny synthetic folders, corrupt files


def write_attributes(path: Path, rows: dict[str, list[int]], count: int | None = None) -> Path:
    lines = [str(len(rows) if count is None else count), " ".join(CELEBA_ATTRIBUTES)]
    lines += [name + "".join(f" {v:2d}" for v in values) for name, values in rows.items()]
    path.write_text("\r\n".join(lines) + "\r\n")  # CRLF, like CelebA's own file
    return path


@pytest.fixture
def tiny_celeba(tmp_path) -> Path:
    """Five 6x8 JPEGs and a matching attribute file; attribute k of image i is 1 when (i + k) % 3 == 0."""
    folder = tmp_path / "celeba-subset"
    (folder / "images_89x109").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = {}
    for i in range(5):
        pixels = rng.integers(0, 256, (8, 6, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / "images_89x109" / f"{i + 1:06d}.jpg")
        rows[f"{i + 1:06d}.jpg"] = [1 if (i + k) % 3 == 0 else -1 for k in range(40)]
    write_attributes(folder / "list_attr_celeba.txt", rows)
    return folder


def tiny_labels(dataset: datasets.Dataset) -> list[list[int]]:
    return to_tensors(dataset)[1].int().tolist()


def test_tiny_celeba_split_labels_and_rebuild_on_change(tiny_celeba, tmp_path):
    train = load_dataset("celeba", "train", tmp_path, attributes=["5_o_Clock_Shadow", "Attractive"])
    test = load_dataset("celeba", "test", tmp_path, attributes="all")
    assert len(train) == 4 and len(test) == 1  # round(5 * 0.2) = 1 test row, the last one
    assert tiny_labels(train) == [[int((i + k) % 3 == 0) for k in (0, 2)] for i in range(4)]
    assert test["image_id"][:] == ["000005.jpg"]
    cache = tmp_path / "default-cache"
    other_source = tiny_celeba / "list_attr_celeba_000001-000005.txt"
    shutil.copy(tiny_celeba / "list_attr_celeba.txt", other_source)
    load_dataset("celeba", "test", tmp_path, attr_file=other_source.name)
    caches = set(cache.iterdir())
    assert len(caches) == 2  # one per attribute file
    rows = {f"{i + 1:06d}.jpg": [1] * 40 for i in range(5)}
    write_attributes(tiny_celeba / "list_attr_celeba.txt", rows)  # the source changes: a new cache is built
    assert tiny_labels(load_dataset("celeba", "test", tmp_path)) == [[1] * 22]
    now = set(cache.iterdir())
    assert len(now - caches) == 1 and len(now) == 2, "the edited file's old cache is removed, the other file's kept"
    assert tiny_labels(load_dataset("celeba", "test", tmp_path, attr_file=other_source.name)) != [[1] * 22]
    assert set(cache.iterdir()) == now, "the other attribute file's cache was reused"


def test_truncated_attribute_file_is_passed_over_when_a_complete_one_exists(tiny_celeba, tmp_path):
    full = (tiny_celeba / "list_attr_celeba.txt").read_text()
    (tiny_celeba / "list_attr_celeba_000001-000005.txt").write_text(full)
    (tiny_celeba / "list_attr_celeba.txt").write_text(full.replace("5", "202599", 1))  # as in the shared folder
    assert len(load_dataset("celeba", "train", tmp_path)) == 4
    with pytest.raises(ValueError, match="celeba.txt: truncated: line 1 announces 202599 rows, the file has 5$"):
        load_dataset("celeba", "train", tmp_path, attr_file="list_attr_celeba.txt")


def test_attribute_file_with_a_wrong_column_count(tiny_celeba, tmp_path):
    path = tiny_celeba / "list_attr_celeba.txt"
    lines = path.read_text().splitlines()
    lines[4] = " ".join(lines[4].split()[:-1])  # the third image loses its last attribute
    path.write_text("\n".join(lines))
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 5: 40 columns, expected 41")):
        load_dataset("celeba", "train", tmp_path)


def test_image_listed_but_absent(tiny_celeba, tmp_path):
    (tiny_celeba / "images_89x109" / "000003.jpg").unlink()
    with pytest.raises(FileNotFoundError, match="000003.jpg is missing, but .*list_attr_celeba.txt lists it"):
        load_dataset("celeba", "test", tmp_path)


def test_undecodable_or_odd_sized_image(tiny_celeba, tmp_path):
    broken = tiny_celeba / "images_89x109" / "000004.jpg"
    broken.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=re.escape(f"{broken}: cannot decode")):
        load_dataset("celeba", "train", tmp_path)
    Image.new("RGB", (7, 8)).save(broken)
    with pytest.raises(ValueError, match="000004.jpg: image is 7x8, but 000001.jpg is 6x8"):
        load_dataset("celeba", "train", tmp_path)
    assert not any((tmp_path / "default-cache").iterdir()), "a failed build must leave no cache, not even a part"


# ---------------------------------------------------------------- the hub path, mocked at datasets.load_dataset


class FakeHub:
    """Stands in for ``datasets.load_dataset``: small datasets shaped like the hub's, and a log of calls."""

    def __init__(self, error: Exception | None = None):
        self.calls, self.error = [], error
        self.rng = np.random.default_rng(0)

    def __call__(self, repo: str, split: str | None = None, **kwargs) -> datasets.Dataset:
        self.calls.append((repo, split))
        if self.error is not None:
            raise self.error
        if repo == "zalando-datasets/fashion_mnist":
            self.pixels = self.rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
            hub_names = ["T - shirt / top", *FASHION_MNIST_CLASSES[1:]]  # the hub spells class 0 with spaces
            return datasets.Dataset.from_dict(
                {"image": [Image.fromarray(p) for p in self.pixels], "label": [9, 0, 4]},
                features=datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=hub_names)}),
            )
        self.attributes = self.rng.random((4, 40)) < 0.5
        columns = {"image": [Image.new("RGB", (178, 218), (i, 0, 0)) for i in range(4)], "celeb_id": [7, 7, 8, 9]}
        columns |= {name: self.attributes[:, k].tolist() for k, name in enumerate(CELEBA_ATTRIBUTES)}
        return datasets.Dataset.from_dict(columns)


def test_hub_is_used_without_local_data(monkeypatch):
    hub = FakeHub()
    monkeypatch.setattr(datasets, "load_dataset", hub)
    fashion = load_dataset("fashion_mnist", "train")
    assert hub.calls == [("zalando-datasets/fashion_mnist", "train")]
    assert fashion.features["label"].names == list(FASHION_MNIST_CLASSES)
    x, y = to_tensors(fashion)
    assert y.tolist() == [9, 0, 4] and torch.equal(x[:, 0], torch.from_numpy(hub.pixels).float() / 255)

    faces = load_dataset("celeba", "test", attributes=["Male", "Bald"])
    assert hub.calls[-1] == ("flwrlabs/celeba", "test")
    columns = [CELEBA_ATTRIBUTES.index("Male"), CELEBA_ATTRIBUTES.index("Bald")]
    x, y = to_tensors(faces)
    assert torch.equal(y, torch.from_numpy(hub.attributes[:, columns]).float())
    assert x.shape == (4, 3, 218, 178) and torch.equal(x[:, 0, 0, 0], torch.arange(4.0) / 255)
    assert faces["image_id"][:] == [f"flwrlabs/celeba/test/{i}" for i in range(4)]


def test_celeba_features_are_the_same_from_local_files_and_the_hub(monkeypatch, tiny_celeba, tmp_path):
    local = load_dataset("celeba", "train", tmp_path, attributes=["Mustache", "Male"])
    monkeypatch.setattr(datasets, "load_dataset", FakeHub())
    hub = load_dataset("celeba", "train", attributes=["Mustache", "Male"])
    assert local.column_names == hub.column_names == ["image", "image_id", "Mustache", "Male"]
    expected = {"image_id": datasets.Value("string"), "Mustache": datasets.Value("bool"), "Male": datasets.Value("bool")}
    for faces in (local, hub):  # the image is Array3D locally and a decoded-on-access Image() from the hub
        assert {name: feature for name, feature in faces.features.items() if name != "image"} == expected
        assert label_columns(faces) == ["Mustache", "Male"]


def test_data_dir_env_without_the_dataset_falls_through_to_hub(monkeypatch, tmp_path):
    hub = FakeHub()
    monkeypatch.setattr(datasets, "load_dataset", hub)
    monkeypatch.setenv("OTNN_DATA_DIR", str(tmp_path))
    assert len(load_dataset("fashion_mnist", "test")) == 3 and len(hub.calls) == 1
    with pytest.raises(FileNotFoundError, match=re.escape(f"no local data in data_dir={tmp_path}")):
        load_dataset("fashion_mnist", "test", data_dir=tmp_path)  # an explicit data_dir never falls through
    assert len(hub.calls) == 1


def test_data_dir_env_is_read(monkeypatch, tiny_fashion, tmp_path):
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(error=AssertionError("the hub must not be called")))
    monkeypatch.setenv("OTNN_DATA_DIR", str(tmp_path))
    assert len(load_dataset("fashion_mnist", "train")) == 5


def test_offline_without_local_data_is_one_clear_error(monkeypatch):
    offline = ConnectionError("Couldn't reach 'flwrlabs/celeba' on the Hub (OfflineModeIsEnabled)")
    monkeypatch.setattr(datasets, "load_dataset", FakeHub(error=offline))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError) as caught:
        load_dataset("celeba", "train")
    message = str(caught.value)
    for part in ("data_dir: not given", "OTNN_DATA_DIR: not set", "hub 'flwrlabs/celeba'", "OfflineModeIsEnabled",
                 "offline mode: HF_HUB_OFFLINE=1", "Fix: pass data_dir="):
        assert part in message
    assert "\n" not in message and caught.value.__cause__ is offline


# ---------------------------------------------------------------- Koch snowflakes (Fig. 2)


def test_koch_snowflake_vertices():
    assert [len(koch_snowflake(d)) for d in range(4)] == [3, 12, 48, 192]
    star = koch_snowflake(1)  # depth 1 is a hexagram: tips at the circumradius, inner corners at 1/sqrt(3)
    radii = np.linalg.norm(star, axis=1)
    assert np.allclose(radii[0::2], 1.0) and np.allclose(radii[1::2], 1 / np.sqrt(3))


def test_snowflake_classes_are_balanced_seeded_and_separable():
    train = load_dataset("snowflake", "train", n=1000, depth=3, size=2.0)
    x, y = to_tensors(train)
    assert x.shape == (1000, 2) and x.dtype == y.dtype == torch.float32
    assert set(y.tolist()) == {-1.0, 1.0} and y.sum() == 0
    radius = x.norm(dim=1)
    assert radius[y == 1].max() <= 2.0 * 0.5 + 1e-6 < 2.0 / np.sqrt(3) - 1e-6 <= radius[y == -1].min()
    assert radius[y == -1].max() <= 2.0 + 1e-6
    again = to_tensors(load_dataset("snowflake", "train", n=1000, depth=3, size=2.0))[0]
    other = to_tensors(load_dataset("snowflake", "test", n=1000, depth=3, size=2.0))[0]
    assert torch.equal(x, again) and not torch.equal(x, other)
    noisy = to_tensors(load_dataset("snowflake", "train", n=1000, depth=3, size=2.0, noise=0.05))[0]
    assert 0.01 < (noisy - x).norm(dim=1).mean() < 0.1


# ---------------------------------------------------------------- CelebA augmentation (paper A.2.1)


def coordinate_image(n: int, height: int = 12, width: int = 10) -> torch.Tensor:
    """Pixel (i, j) of every image and channel holds (i * width + j + 1) / (height * width + 1): all distinct."""
    grid = torch.arange(height * width, dtype=torch.float32).view(height, width) + 1
    return (grid / (height * width + 1)).expand(n, 3, height, width).clone()


def test_augment_crop_and_flip_are_shifted_windows():
    x = coordinate_image(32)
    out = celeba_augment(x, torch.Generator().manual_seed(0), shift=2, brightness=0.0, contrast=(1.0, 1.0))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    flips = 0
    for image, result in zip(padded, out):  # find each sample's window by brute force over the 5 x 5 offsets
        windows = [image[:, dy:dy + 12, dx:dx + 10] for dy in range(5) for dx in range(5)]
        plain = any(torch.allclose(result, w, atol=1e-6) for w in windows)
        mirrored = any(torch.allclose(result, w.flip(2), atol=1e-6) for w in windows)
        assert plain or mirrored
        flips += mirrored and not plain
    assert 4 < flips < 28  # flips happen about half the time


def test_augment_brightness_contrast_and_range():
    x = torch.full((64, 3, 9, 7), 0.5)
    bright = celeba_augment(x, torch.Generator().manual_seed(1), shift=0, brightness=0.1, contrast=(1.0, 1.0))
    delta = bright - 0.5
    assert torch.allclose(delta, delta[:, :1, :1, :1].expand_as(delta), atol=1e-6)  # one offset per image
    assert delta.abs().max() <= 0.1 + 1e-6 and delta.std() > 0.02
    x = 0.4 + 0.2 * torch.rand(64, 3, 9, 7)
    contrasted = celeba_augment(x, torch.Generator().manual_seed(2), shift=0, brightness=0.0, contrast=(0.5, 0.9))
    assert torch.allclose(contrasted.mean(dim=(2, 3)), x.mean(dim=(2, 3)), atol=1e-5)  # flip keeps the mean
    ratio = contrasted.std(dim=(2, 3)) / x.std(dim=(2, 3))
    assert 0.5 - 1e-4 <= ratio.min() and ratio.max() <= 0.9 + 1e-4
    strong = celeba_augment(torch.rand(64, 3, 9, 7), brightness=0.9, contrast=(0.0, 3.0))
    assert strong.min() >= 0 and strong.max() <= 1


def test_augment_is_reproducible_and_checks_its_input():
    x = torch.rand(8, 3, 16, 12)
    first = celeba_augment(x, torch.Generator().manual_seed(3))
    assert torch.equal(first, celeba_augment(x, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, celeba_augment(x, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match=r"float batch \(N, C, H, W\)"):
        celeba_augment((x * 255).to(torch.uint8))


def test_fashion_mnist_augment_only_shifts_and_flips():
    """Not in the paper: windows of the padded image, mirrored or not, with every pixel value kept as it was."""
    x = coordinate_image(32)[:, :1]
    out = fashion_mnist_augment(x, torch.Generator().manual_seed(5))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    for image, result in zip(padded, out):
        windows = [image[:, dy:dy + 12, dx:dx + 10] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(result, w) or torch.equal(result, w.flip(2)) for w in windows)
    assert not torch.equal(out, x)


def test_augment_is_refused_where_a_dataset_has_none(data_dir):
    from otnn_plugin.train import load_recipe, prepare

    with pytest.raises(ValueError, match="snowflake has no augmentation .*set augment: false"):
        prepare(load_recipe("snowflake_otnn", augment=True, epochs=1, train_limit=64, test_limit=32), device="cpu",
                data_dir=data_dir)


# ---------------------------------------------------------------- otnn data


@pytest.fixture
def otnn(monkeypatch):
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "data") if "data" not in cli.COMMANDS else cli.COMMANDS)
    return cli.main


def test_cli_stats_prints_rows_and_positive_rates(otnn, capsys, data_dir, dataset_cache, celeba_splits, monkeypatch):
    monkeypatch.setenv("OTNN_CACHE_DIR", str(dataset_cache))
    assert otnn(["data", "stats", "celeba", "--data-dir", str(data_dir)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "celeba: train 8,000 rows, test 2,000 rows" and len(lines) == 2 + 22
    rows = list(attribute_rows(data_dir).values())
    male = CELEBA_ATTRIBUTES.index("Male")
    train_rate = sum(r[male] == 1 for r in rows[:8000]) / 8000
    test_rate = sum(r[male] == 1 for r in rows[8000:]) / 2000
    assert lines[2 + CELEBA_PAPER_ATTRIBUTES.index("Male")].split() == ["Male", f"{train_rate:.3f}", f"{test_rate:.3f}"]


def test_cli_list_and_errors(otnn, capsys):
    assert otnn(["data", "list"]) == 0
    assert capsys.readouterr().out.split() == list_datasets()
    assert otnn(["data", "stats", "snowflake", "--attributes", "all"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "unknown option(s) attributes" in error
