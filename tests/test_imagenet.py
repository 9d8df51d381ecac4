"""The ImageNet-scale recipe in miniature: an ImageNet-style tree (3 classes of coloured shapes, 36 images, human maps
for the test split), the VGG-style ImageNet models, the HumanAlignment metric, and one epoch of training and one
evaluation through the ``otnn`` commands."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import yaml
from PIL import Image, ImageDraw

from otnn_plugin.cli import main
from otnn_plugin.data import human_maps, label_names, load_dataset, to_tensors
from otnn_plugin.evaluate.results import load_examples, read_results
from otnn_plugin.metrics import HumanAlignment
from otnn_plugin.metrics.alignment import gaussian_blur, human_alignment
from otnn_plugin.models.vgg import IMAGENET
from otnn_plugin.orthogonal import OrthogonalConv2d
from otnn_plugin.train.recipe import _recipe_files

COLOURS = {"disc": (220, 40, 40), "square": (40, 190, 40), "triangle": (40, 60, 220)}
PER_SPLIT = {"train": 8, "val": 4}
#: Both orientations, so that the shorter side is the height or the width.
SIZES = ((48, 40), (40, 56))
TINY_MODEL = {"img_size": 32, "num_classes": 3, "width_divisor": 8}


def draw(shape: str, size: tuple[int, int], rng: np.random.Generator) -> tuple[Image.Image, Image.Image]:
    """An image of one coloured shape on grey noise, and its mask (the 'human map': 255 on the shape)."""
    width, height = size
    background = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    image, mask = Image.fromarray(background), Image.new("L", size, 0)
    side = int(rng.integers(16, 22))
    left, top = int(rng.integers(4, width - side - 4)), int(rng.integers(4, height - side - 4))
    box = (left, top, left + side, top + side)
    for canvas, fill in ((ImageDraw.Draw(image), COLOURS[shape]), (ImageDraw.Draw(mask), 255)):
        if shape == "disc":
            canvas.ellipse(box, fill=fill)
        elif shape == "square":
            canvas.rectangle(box, fill=fill)
        else:
            canvas.polygon([(left, top + side), (left + side, top + side), (left + side // 2, top)], fill=fill)
    return image, mask


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """train/<shape>/ (8 images each) and val/<shape>/ (4 each) with human_maps/val/ (8 and 16-bit PNGs): 36
    images of 2 sizes."""
    root = tmp_path_factory.mktemp("tree")
    rng = np.random.default_rng(0)
    for split, count in PER_SPLIT.items():
        for shape in COLOURS:
            for index in range(count):
                image, mask = draw(shape, SIZES[index % 2], rng)
                (root / split / shape).mkdir(parents=True, exist_ok=True)
                image.save(root / split / shape / f"{shape}_{index}.png")
                if split == "val":
                    (root / "human_maps" / split / shape).mkdir(parents=True, exist_ok=True)
                    if index % 2:  # a 16-bit map, on its own scale
                        mask = Image.fromarray(np.asarray(mask).astype(np.uint16) * 257)
                    mask.save(root / "human_maps" / split / shape / f"{shape}_{index}.png")
    return root


# ---------------------------------------------------------------- the imagefolder dataset


def test_tree_loads_with_labels_from_folders_and_aligned_human_maps(tree):
    train, test = (load_dataset("imagefolder", split, tree, size=32) for split in ("train", "test"))
    assert label_names("imagefolder", tree) == ("disc", "square", "triangle")
    assert (len(train), len(test)) == (24, 12)
    assert train.features["label"].names == test.features["label"].names == list(COLOURS)
    x, y = to_tensors(test)
    assert x.shape == (12, 3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert test["image_id"][0] == "val/disc/disc_0.png"
    assert human_maps(train) is None  # train/ has no maps
    maps = human_maps(test)
    assert maps.shape == (12, 1, 32, 32) and maps.dtype == torch.float32
    assert maps[0].max() <= 255 < maps[1].max()  # disc_1's map is 16-bit, read on its own scale
    # maps and images were resized and cropped alike: inside each mask the image has its shape's colour
    for image, human, label in zip(x, maps, y):
        inside = human[0] > 0.98 * human.max()
        assert inside.sum() > 20
        colour = torch.tensor(COLOURS[list(COLOURS)[label]]) / 255
        assert (image[:, inside].mean(1) - colour).abs().max() < 0.05


def test_several_processes_preprocess_the_same_rows(tree, tmp_path):
    alone = load_dataset("imagefolder", "test", tree, size=32)
    shared = load_dataset("imagefolder", "test", tree, size=32, num_proc=2, cache_dir=tmp_path)
    assert shared["image_id"] == alone["image_id"]
    assert torch.equal(to_tensors(shared)[0], to_tensors(alone)[0])
    assert torch.equal(human_maps(shared), human_maps(alone))


def test_cli_stats_reads_the_class_folders(tree, capsys):
    assert main(["data", "stats", "imagefolder", "--data-dir", str(tree)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "imagefolder: train 24 rows, test 12 rows"
    assert [line.split() for line in lines[2:]] == [[name, "0.333", "0.333"] for name in COLOURS]


def _broken(tree: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tree, copy)
    change(copy)
    return copy


@pytest.mark.parametrize("change, split, error, message", [
    (lambda root: shutil.rmtree(root / "train"), "train", FileNotFoundError, "no train/ folder in"),
    (lambda root: shutil.rmtree(root / "val"), "test", FileNotFoundError, "has no test split: add test/"),
    (lambda root: shutil.copytree(root / "val" / "disc", root / "val" / "star"), "test", ValueError,
     "val/ has class folder(s) star that train/ lacks"),
    (lambda root: (root / "human_maps" / "val" / "disc" / "disc_1.png").unlink(), "test", FileNotFoundError,
     "1 image(s) of val/ have no human map"),
    (lambda root: Image.new("L", (10, 10)).save(root / "human_maps" / "val" / "disc" / "disc_1.png"), "test",
     ValueError, "give every map its image's size"),
    (lambda root: [p.unlink() for p in (root / "train").glob("*/*")], "train", FileNotFoundError,
     "holds no images"),
    (lambda root: (root / "train" / "disc" / "disc_0.png").write_bytes(b"not a png"), "train", ValueError,
     "disc_0.png: cannot decode the image"),
])
def test_a_broken_tree_is_one_line_saying_what_to_fix(tree, tmp_path, change, split, error, message):
    root = _broken(tree, tmp_path, change)
    with pytest.raises(error, match=message.replace("(", r"\(").replace(")", r"\)")) as raised:
        load_dataset("imagefolder", split, root, size=32)
    assert "\n" not in str(raised.value)


def test_bad_sizes_and_no_tree(monkeypatch):
    with pytest.raises(ValueError, match="1 <= size <= resize"):
        load_dataset("imagefolder", "train", None, size=64, resize=32)
    monkeypatch.delenv("OTNN_DATA_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="no image tree: pass data_dir="):
        label_names("imagefolder")


# ---------------------------------------------------------------- the ImageNet models


def test_vgg_imagenet_layout_and_config():
    widths = [w for stage in IMAGENET.stages for w in stage]
    strides = [2 if i == len(stage) - 1 and s < len(IMAGENET.stages) - 1 else 1
               for s, stage in enumerate(IMAGENET.stages) for i in range(len(stage))]
    twin = timm.create_model("unconstrained_vgg_imagenet")  # full width: built, not run
    assert [(m.out_channels, m.stride[0]) for m in twin.modules() if isinstance(m, torch.nn.Conv2d)] == list(
        zip(widths, strides))
    assert twin.num_classes == 1000 and twin.pretrained_cfg["input_size"] == (3, 224, 224)
    assert twin.pretrained_cfg["mean"] == (0.0, 0.0, 0.0) and twin.pretrained_cfg["crop_pct"] == 0.875
    otnn = timm.create_model("otnn_vgg_imagenet", width_divisor=8)
    convs = [m for m in otnn.modules() if isinstance(m, OrthogonalConv2d)]
    assert [c.out_channels * 8 for c in convs] == widths
    assert [c.kernel_size[0] for c in convs] == [2 if s == 2 else 3 for s in strides]
    assert otnn.feature_info[-1]["reduction"] == 32
    with torch.no_grad():
        assert otnn.eval().forward_features(torch.rand(1, 3, 224, 224)).shape == (1, 64, 7, 7)
    with pytest.raises(ValueError, match="width_divisor must be a positive integer"):
        timm.create_model("otnn_vgg_imagenet", width_divisor=0)


# ---------------------------------------------------------------- HumanAlignment


def alignment(a: np.ndarray, maps: np.ndarray, **params) -> list[float]:
    x = np.zeros((len(a), 3, *maps.shape[-2:]), dtype=np.float32)
    return HumanAlignment(**params)(model=None, x_batch=x, y_batch=np.zeros(len(a), dtype=np.int64), a_batch=a,
                                    s_batch=maps)


def test_human_alignment_known_answers():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 1, 64, 64)).astype(np.float32)
    assert alignment(maps.copy(), maps) == pytest.approx([1.0] * 4)  # the human map itself
    assert alignment(1 - maps, maps) == pytest.approx([-1.0] * 4)  # its ranks reversed
    signed = maps * rng.choice([-1.0, 1.0], maps.shape).astype(np.float32)
    assert alignment(signed, maps[:, 0]) == pytest.approx([1.0] * 4)  # |a| is compared; (N, H, W) maps too
    noise = alignment(rng.random((4, 3, 64, 64)).astype(np.float32), maps)
    assert max(map(abs, noise)) < 0.1  # independent: about 0 (standard error 1/64)
    # channels: the maximum of |a| (Harmonization's saliency) or the sum
    with_constant = np.concatenate([maps, np.full_like(maps, 2.0), np.full_like(maps, 2.0)], axis=1)
    assert alignment(with_constant, maps, channels="max") == [0.0] * 4  # the constant channels: a constant map
    assert alignment(with_constant, maps, channels="sum") == pytest.approx([1.0] * 4, abs=1e-4)
    # sigma blurs the human maps: an explanation equal to the blurred map scores 1 with the same sigma only
    blurred = gaussian_blur(torch.from_numpy(maps[:, 0]), 2.0)[:, None].numpy()
    assert alignment(blurred, maps, sigma=2.0) == pytest.approx([1.0] * 4)
    assert max(alignment(blurred, maps)) < 0.6
    assert gaussian_blur(torch.full((1, 8, 8), 3.0), 1.5) == pytest.approx(torch.full((1, 8, 8), 3.0))
    assert human_alignment(torch.ones(1, 1, 8, 8), torch.rand(1, 8, 8)).item() == 0.0  # a constant map


def test_human_alignment_errors():
    maps = np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32)
    call = dict(model=None, x_batch=np.zeros((2, 3, 8, 8), np.float32), y_batch=np.zeros(2, np.int64), a_batch=maps)
    with pytest.raises(ValueError, match="pass them as s_batch"):
        HumanAlignment()(**call)
    with pytest.raises(ValueError, match="do not match explanations"):
        HumanAlignment()(**call, s_batch=maps[:, :, :4])
    with pytest.raises(ValueError, match="sigma must be a blur width"):
        HumanAlignment(sigma=-1)
    with pytest.raises(ValueError, match="channels must be one of max, sum"):
        HumanAlignment(channels="mean")


# ---------------------------------------------------------------- one epoch and one evaluation through the commands


def test_one_epoch_and_one_evaluation_through_the_commands(tree, tmp_path):
    shipped = yaml.safe_load(_recipe_files()["imagenet_otnn"].read_text())
    recipe = tmp_path / "imagenet_tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        **shipped, "model_args": TINY_MODEL, "dataset_args": {"size": 32}, "batch_size": 8, "grad_norm_samples": 4,
        "diagnostic_samples": 12, "registry_name": "otnn_vgg_imagenet.tiny"}))
    run, registry = tmp_path / "run", tmp_path / "registry"
    assert main(["train", "--recipe", str(recipe), "--epochs", "1", "--data-dir", str(tree), "--out", str(run),
                 "--registry", "--registry-dir", str(registry), "--device", "cpu", "--quiet"]) == 0
    start, epoch = (json.loads(line) for line in (run / "log.jsonl").read_text().splitlines())
    assert (start["train_size"], start["test_size"], epoch["epoch"]) == (24, 12, 1)
    assert set(epoch["test"]["certified_accuracy"]) == {"0.141", "0.5", "1"}
    assert epoch["test"]["mean_grad_norm"] <= 1 + 1e-3
    weights = registry / "otnn_vgg_imagenet.tiny" / "model.safetensors"
    assert weights.is_file()

    config = tmp_path / "imagenet_tiny_eval.yaml"
    config.write_text(yaml.safe_dump({
        "dataset": "imagefolder", "dataset_args": {"size": 32}, "split": "test", "samples": 12, "batch_size": 6,
        "device": "cpu",
        "models": {"OTNN": {"model": "otnn_vgg_imagenet", "weights": str(weights), "args": TINY_MODEL},
                   "Unconstrained": {"model": "unconstrained_vgg_imagenet", "weights": "random", "args": TINY_MODEL}},
        "explainers": {"saliency": {}},
        "metrics": {"human_alignment": {"metric": "HumanAlignment", "channels": "sum"},
                    "human_alignment_blur": {"metric": "HumanAlignment", "sigma": 2.0}},
    }))
    out = tmp_path / "eval"
    assert main(["evaluate", str(config), "--samples", "12", "--data-dir", str(tree), "--out", str(out),
                 "--quiet"]) == 0
    results = read_results(out)
    assert len(results.units) == 2 * 2 * 2  # models x metrics x batches
    for record in results.units.values():
        assert record["status"] == "ok" and all(-1 <= s <= 1 for s in record["scores"])
    # the runner gave each sample its own human map: the scores of the first samples, recomputed from the saved
    # explanations (channel means of |grad|, whose ranks are those of the channel sums) and the dataset's maps
    examples = load_examples(out)
    maps = human_maps(load_dataset("imagefolder", "test", tree, size=32).select(examples["indices"].tolist()))
    expected = human_alignment(torch.from_numpy(examples["OTNN/saliency"]), maps, channels="sum").tolist()
    recorded = results.units[("OTNN", "saliency", "human_alignment", 0)]["scores"][:len(expected)]
    assert recorded == pytest.approx(expected, abs=1e-6)
    assert (out / "leaderboard.md").read_text().count("human_alignment") >= 1
