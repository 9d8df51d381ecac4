"""Transport (one gradient) against SmoothGrad (50 noisy gradients): cost and distance (paper Sec. 5.1.1, Table 2).

The paper's point: on an OTNN the gradient already is SmoothGrad's explanation, for 1/50 of the cost; on an
unconstrained network the two differ. Each pair of networks explains the first ``batch`` test images of its
dataset: Fashion-MNIST for each image's label, CelebA for the label Mustache (the paper's Table 2 rows).
SmoothGrad is the paper's (N = 50, sigma = 0.2) in absolute value (``smoothgrad``), compared, as in Table 2, with
Saliency, the absolute gradient (``|transport|``): ``1 - Spearman`` on the raw maps, L2 between maps scaled to unit
norm (raw L2 would compare the two networks' gradient scales rather than their maps). The cost ratio times the
signed gradient against SmoothGrad.

``weights="random"`` uses freshly initialised networks (runs anywhere, says little about trained ones);
``weights="pretrained"`` loads the trained ones (``timm.create_model(..., pretrained=True)``: hub or registry/) and
reports a network without weights as skipped, with the reason.

Run: ``python -m benchmarks.bench_explainers [random|pretrained] [--datasets ...] [--batch N] [--repeats N]``
(data from ``$OTNN_DATA_DIR``).

RISE (Petsiuk et al. 2018): :func:`run_rise` times our RISE against the same forward passes in the default layout
under ``no_grad`` (RISE before ``channels_last`` and ``inference_mode``), bf16 against fp32, and on the exported
OTNNs torch's circular padding against ``circular_pad``;
``python -m benchmarks.bench_explainers --rise-precision`` measures how bf16 forwards change RISE's maps and
scores on the paper configs (:func:`rise_precision`).
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import timm
import torch
from scipy.stats import spearmanr
from torch import nn
from torch.nn import functional as F

import otnn_plugin
from otnn_plugin._files import atomic_write_text
from otnn_plugin.data import label_names, load_dataset, to_tensors
from otnn_plugin.evaluate import build_leaderboard, load_config, prepare, read_results
from otnn_plugin.evaluate.leaderboard import competition_ranks
from otnn_plugin.evaluate.runner import _score, seed_everything
from otnn_plugin.explainers import Rise, explain, rise_masks
from otnn_plugin.explainers._inputs import select_scores
from otnn_plugin.lipschitz import is_otnn
from otnn_plugin.metrics.distance import explanation_distance
from otnn_plugin.orthogonal import CircularConv2d

from .schema import target
from .timing import compare, print_table, ratio, ratio_summary

#: Per dataset: the pair of networks and the label explained (``None``: each image's own class).
PAIRS: dict[str, dict] = {
    "fashion_mnist": {
        "models": {"otnn": "otnn_vgg_fashionmnist_gnp", "unconstrained": "unconstrained_vgg_fashionmnist_gnp"},
        "label": None,
    },
    "celeba": {
        "models": {"otnn": "otnn_vgg_celeba_small.subset_109x89",
                   "unconstrained": "unconstrained_vgg_celeba_small.subset_109x89"},
        "label": "Mustache",
    },
}


def measure(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int, device: str) -> dict:
    """Interleaved timings of both methods, and the distances between the maps of their last runs."""
    maps: dict[str, torch.Tensor] = {}

    def explainer(method: str) -> Callable[[], None]:
        def fn() -> None:
            maps[method] = torch.from_numpy(explain(model, x, y, method))
        return fn

    stats = compare({m: explainer(m) for m in ("transport", "smoothgrad")}, repeats, warmup=1, device=device)
    saliency, smoothgrad = maps["transport"].abs(), maps["smoothgrad"]  # both absolute, as in Table 2
    unit_l2 = explanation_distance(
        F.normalize(saliency.flatten(1), dim=1), F.normalize(smoothgrad.flatten(1), dim=1), "l2"
    )
    return {
        "mean_gradient_norm": saliency.flatten(1).norm(dim=1).mean().item(),
        "stats": stats,
        "smoothgrad_over_transport": ratio(stats, "smoothgrad", "transport"),
        "unit_l2": unit_l2.mean().item(),
        "one_minus_spearman": explanation_distance(saliency, smoothgrad, "spearman").mean().item(),
    }


def _accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, output: int | None) -> float:
    """Share of right decisions: argmax for classes, ``sign f`` of the explained label for attributes."""
    with torch.no_grad():
        scores = model(x)
    if output is None:
        return (scores.argmax(1) == labels).float().mean().item()
    return ((scores[:, output] > 0) == (labels[:, output] > 0.5)).float().mean().item()


def run_pair(dataset: str, weights: str, device: str, batch: int, repeats: int) -> dict:
    """Both networks of ``dataset``'s pair on its first ``batch`` test images."""
    pair = PAIRS[dataset]
    images, labels = to_tensors(load_dataset(dataset, "test").select(range(batch)), device=device)
    output = None if pair["label"] is None else label_names(dataset).index(pair["label"])
    targets = labels if output is None else torch.full((batch,), output, device=device)
    networks = {}
    for family, name in pair["models"].items():
        torch.manual_seed(0)
        try:
            model = timm.create_model(name, pretrained=weights == "pretrained").to(device).eval()
        except FileNotFoundError as err:
            networks[family] = {"model": name, "skipped": str(err)}
            continue
        networks[family] = {"model": name, "accuracy": _accuracy(model, images, labels, output),
                            **measure(model, images, targets, repeats, device)}
    return {"dataset": dataset, "explained": pair["label"] or "each image's class", "networks": networks}


def run(weights: str = "random", device: str = "cpu", batch: int = 32, repeats: int = 3,
        datasets: tuple[str, ...] = tuple(PAIRS)) -> dict:
    """Every pair of ``datasets`` (see :data:`PAIRS`)."""
    if weights not in ("random", "pretrained"):
        raise ValueError(f"weights must be 'random' or 'pretrained', got {weights!r}")
    unknown = sorted(set(datasets) - set(PAIRS))
    if unknown:
        raise ValueError(f"no pair for {', '.join(unknown)}; choose from {', '.join(PAIRS)}")
    return {
        "name": "transport_vs_smoothgrad",
        "weights": weights,
        "device": device,
        "batch": batch,
        "pairs": [run_pair(dataset, weights, device, batch, repeats) for dataset in datasets],
        "target": "smoothgrad_over_transport near 50; distances far lower for the OTNN (paper Table 2)",
    }


# --- RISE ---------------------------------------------------------------------------------------------------------

#: Per case: the exported pair member, its input shape, how many images RISE explains and with how many masks.
RISE_CASES: dict[str, dict] = {
    "fashionmnist/otnn": {"model": "otnn_vgg_fashionmnist_small", "args": {}, "shape": (1, 28, 28)},
    "fashionmnist/unconstrained": {"model": "unconstrained_vgg_fashionmnist_small", "args": {}, "shape": (1, 28, 28)},
    "celeba/otnn": {"model": "otnn_vgg_celeba", "args": {"img_size": (109, 89)}, "shape": (3, 109, 89)},
    "celeba/unconstrained": {"model": "unconstrained_vgg_celeba", "args": {"img_size": (109, 89)},
                             "shape": (3, 109, 89)},
    "celeba/otnn_gnp": {"model": "otnn_vgg_celeba_gnp", "args": {"img_size": (109, 89)}, "shape": (3, 109, 89)},
    "celeba/unconstrained_gnp": {"model": "unconstrained_vgg_celeba_gnp", "args": {"img_size": (109, 89)},
                                 "shape": (3, 109, 89)},
}
RISE_SIZES = {"full": {"fashionmnist": (16, 128), "celeba": (4, 64), "repeats": 3},
              "quick": {"fashionmnist": (2, 16), "celeba": (1, 4), "repeats": 2}}


def _default_layout_forwards(model: nn.Module, x: torch.Tensor, y: torch.Tensor, n_masks: int,
                             batch_size: int = 256) -> torch.Tensor:
    """RISE's forward passes as it ran them before: default layout, ``no_grad``, fp32, ``batch_size`` at a time."""
    masks = rise_masks(n_masks, tuple(x.shape[2:]), device=x.device)
    per_pass = max(1, batch_size // len(x))
    saliency = x.new_zeros((len(x), masks[0].numel()))
    with torch.no_grad():
        for start in range(0, n_masks, per_pass):
            chunk = masks[start:start + per_pass]
            scores = select_scores(model((x[:, None] * chunk[None, :, None]).flatten(0, 1)),
                                   y.repeat_interleave(len(chunk))).view(len(x), -1)
            saliency += scores @ chunk.flatten(1)
    return saliency


def _with_torch_padding(model: nn.Module) -> nn.Module | None:
    """A copy of an exported model whose circular convolutions pad with torch's ``F.pad`` (the export before
    :func:`~otnn_plugin.orthogonal.circular_pad`); ``None`` if it has none."""
    if not any(isinstance(m, CircularConv2d) for m in model.modules()):
        return None
    before = copy.deepcopy(model)
    for module in before.modules():
        if isinstance(module, CircularConv2d):
            module.__class__ = nn.Conv2d  # the same parameters and settings, torch's padding
    return before


def run_rise(quick: bool = False, device: str = "cpu") -> dict:
    """RISE on random-weight networks (costs do not depend on weights): ours / the previous forwards, bf16 / fp32."""
    size = RISE_SIZES["quick" if quick else "full"]
    cases, targets = {}, []
    for case, spec in RISE_CASES.items():
        batch, n_masks = size[case.split("/")[0]]
        torch.manual_seed(0)
        model = timm.create_model(spec["model"], **spec["args"]).to(device).eval()
        model = otnn_plugin.export_vanilla(model) if is_otnn(model) else model
        generator = torch.Generator().manual_seed(0)
        x = torch.rand(batch, *spec["shape"], generator=generator).to(device)
        y = torch.randint(0, model.num_classes, (batch,), generator=generator).to(device)
        torch_padding = _with_torch_padding(model)
        candidates = {
            "default_layout_no_grad": lambda: _default_layout_forwards(model, x, y, n_masks),
            "rise_fp32": lambda: Rise(model).attribute(x, y, n_masks=n_masks),
            "rise_bf16": lambda: Rise(model).attribute(x, y, n_masks=n_masks, precision="bf16"),
        }
        if torch_padding is not None:
            candidates["rise_torch_padding"] = lambda: Rise(torch_padding).attribute(x, y, n_masks=n_masks)
        stats = compare(candidates, repeats=size["repeats"], warmup=1, device=device)
        ratios = {"previous_over_rise": ratio_summary(stats, "default_layout_no_grad", "rise_fp32"),
                  "bf16_over_fp32": ratio_summary(stats, "rise_bf16", "rise_fp32")}
        what = f"`{spec['model']}`, {batch} images x {n_masks} masks"
        targets += [target(case, "previous_over_rise", f"RISE before (default layout, `no_grad`) / RISE now, {what}"),
                    target(case, "bf16_over_fp32", f"RISE bf16 / fp32 forwards, {what}")]
        if torch_padding is not None:
            ratios["torch_padding_over_rise"] = ratio_summary(stats, "rise_torch_padding", "rise_fp32")
            targets.append(target(case, "torch_padding_over_rise",
                                  f"RISE with torch's circular padding / with `circular_pad`, {what}"))
        cases[case] = {"stats": stats, "ratios": ratios}
    return {"name": "rise", "command": "python -m benchmarks --only rise",
            "params": {"device": device, "repeats": size["repeats"], "sizes": size}, "cases": cases,
            "targets": targets}


EVALUATIONS = Path(__file__).resolve().parents[1] / "evaluations"
#: Samples of each paper config the precision study explains (RISE with 4000 masks costs ~1 s per 28x28 sample
#: and ~40 s per 109x89 sample on one CPU thread, in fp32).
PRECISION_SAMPLES = {"fashionmnist": 16, "celeba_mustache": 4}
#: Left out: Robustness-Sr explains every sample again at each step of its search (hours of RISE).
PRECISION_SKIPPED = ("RobustnessSr",)


def _map_differences(fp32: np.ndarray, bf16: np.ndarray) -> dict:
    """Per sample: Spearman correlation of the two maps (one channel) and max |bf16 - fp32| / max |fp32|."""
    first, second = fp32[:, 0].reshape(len(fp32), -1), bf16[:, 0].reshape(len(bf16), -1)
    spearman = [spearmanr(a, b).statistic for a, b in zip(first, second)]
    relative = np.abs(second - first).max(1) / np.abs(first).max(1)
    return {"spearman_min": float(min(spearman)), "spearman_median": float(np.median(spearman)),
            "max_abs_diff_over_max_abs_max": float(relative.max()),
            "max_abs_diff_over_max_abs_median": float(np.median(relative))}


def _rank_changes(name: str, model: str, shifts: dict[str, dict]) -> dict:
    """RISE's mean in the committed 1000-sample leaderboard of ``name``/``model``, moved by each metric's shift (and by
    the shift +- 2 standard errors): which ranks of the metric's row would change, and how far RISE's mean lies from
    the nearest other explainer's (``gaps``)."""
    folder = EVALUATIONS / "results" / f"{name}-{model}"
    try:
        setting = build_leaderboard([read_results(folder)]).settings[0]
    except (OSError, ValueError, KeyError, IndexError) as err:
        return {"error": f"no committed results at {folder}: {err}"}
    directions = {metric.label: metric.direction for metric in setting.metrics}
    changes: dict[str, list] = {}
    gaps: dict[str, float] = {}
    for metric, shift in shifts.items():
        row = {c.explainer: c.mean for c in setting.cells if c.metric == metric and c.model == model and c.rank}
        if "rise" not in row:
            continue
        gaps[metric] = min(abs(mean - row["rise"]) for explainer, mean in row.items() if explainer != "rise")
        before = competition_ranks(row, directions[metric])
        for moved in (shift["mean"], shift["mean"] - 2 * shift["se"], shift["mean"] + 2 * shift["se"]):
            after = competition_ranks({**row, "rise": row["rise"] + moved}, directions[metric])
            if after != before:
                changes.setdefault(metric, []).append({"shift": moved, "before": before, "after": after})
    return {"source": str(folder.relative_to(EVALUATIONS.parent)), "samples": setting.samples,
            "changed": changes, "gaps": gaps}


def _precision_of(name: str, samples: int) -> dict:
    """RISE fp32 and bf16 on the first ``samples`` of a paper config, through the runner's explain and score calls."""
    config = load_config(EVALUATIONS / f"{name}.yaml", samples=samples)
    prepared = prepare(config)
    units = [u for u in config.units() if u.explainer == "rise"
             and config.metrics[u.metric].metric not in PRECISION_SKIPPED]
    maps: dict = defaultdict(lambda: defaultdict(list))
    scores: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    seconds: dict = defaultdict(lambda: defaultdict(float))
    for (batch, model), group in _grouped(units):
        model_net, rows = prepared.models[model], config.batches()[batch]
        x, y = prepared.x[rows], prepared.y[rows]
        for precision in ("fp32", "bf16"):
            kwargs = {**config.explainers["rise"].explain_kwargs(seed=group[0].explain_seed), "precision": precision}
            seed_everything(group[0].explain_seed)
            began = time.perf_counter()
            attributions = explain(model_net, x, y, **kwargs)
            seconds[model][precision] += time.perf_counter() - began
            maps[model][precision].append(attributions)
            for unit in group:
                n = unit.rows.stop - unit.rows.start
                outcome = _score(config.metrics[unit.metric], model_net, x[:n], y[:n], attributions[:n], explain,
                                 kwargs, prepared.device, unit.seed)
                scores[model][unit.metric][precision] += outcome.get("scores", [math.nan] * n)
    models = {}
    for model in maps:
        fp32, bf16 = (np.concatenate(maps[model][p]) for p in ("fp32", "bf16"))
        shifts = {}
        for metric, pair in scores[model].items():
            difference = np.asarray(pair["bf16"], dtype=float) - np.asarray(pair["fp32"], dtype=float)
            difference = difference[np.isfinite(difference)]
            shifts[metric] = {"n": len(difference), "fp32_mean": float(np.nanmean(pair["fp32"])),
                              "mean": float(difference.mean()), "max_abs": float(np.abs(difference).max()),
                              "se": float(difference.std(ddof=1) / math.sqrt(len(difference)))}
        models[model] = {"maps": _map_differences(fp32, bf16), "scores": shifts,
                         "seconds": dict(seconds[model]), "ranks": _rank_changes(name, model, shifts)}
    return {"samples": samples, "rise": config.explainers["rise"].content(), "models": models}


def _grouped(units: list) -> list[tuple[tuple[int, str], list]]:
    groups: dict[tuple[int, str], list] = {}
    for unit in units:
        groups.setdefault((unit.batch, unit.model), []).append(unit)
    return list(groups.items())


def rise_precision(samples: dict[str, int] = PRECISION_SAMPLES) -> dict:
    """How bf16 forwards change RISE on the paper configs (pretrained weights, the configs' RISE settings): maps
    (Spearman, max abs difference), the per-sample scores of every metric that scores RISE (except
    :data:`PRECISION_SKIPPED`), and whether the mean shifts would change a rank of the committed leaderboards."""
    return {"name": "rise_precision", "command": "python -m benchmarks.bench_explainers --rise-precision --threads 1",
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "configs": {name: _precision_of(name, n) for name, n in samples.items()}}


def precision_markdown(study: dict) -> str:
    """The study as a markdown table: one row per config, model and metric."""
    lines = ["### RISE: bf16 / fp32 forwards", "",
             f"`{study['command']}` ({study['threads']} thread(s), torch {study['torch']}): RISE with each paper "
             "config's settings, pretrained weights, the first samples of the config, each scored by every metric "
             "of the config that scores RISE (same seeds for both precisions); Robustness-Sr left out. shift: mean "
             "bf16 - fp32 score (± standard error); ranks: whether RISE's mean in the committed 1000-sample "
             "leaderboard, moved by the shift (and by ± 2 se), changes any rank of the metric's row, and in brackets "
             "how far RISE's mean lies there from the nearest other explainer's.", "",
             "| config | model | samples | map Spearman min (median) | max abs diff / max abs, max (median) | "
             "RISE bf16 / fp32 time | metric | fp32 mean | shift ± se | max abs shift | ranks (gap to the nearest) |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, config in study["configs"].items():
        for model, result in config["models"].items():
            m, changed = result["maps"], result["ranks"].get("changed")
            head = [name, model, str(config["samples"]), f"{m['spearman_min']:.6f} ({m['spearman_median']:.6f})",
                    f"{m['max_abs_diff_over_max_abs_max']:.2e} ({m['max_abs_diff_over_max_abs_median']:.2e})",
                    f"{result['seconds']['bf16'] / result['seconds']['fp32']:.2f}x"]
            for metric, shift in result["scores"].items():
                gap = result["ranks"].get("gaps", {}).get(metric)
                ranks = ("no committed results" if changed is None else
                         "**changed**" if metric in changed else f"unchanged ({gap:.3g})")
                lines.append("| " + " | ".join(head + [
                    metric, f"{shift['fp32_mean']:.4g}", f"{shift['mean']:+.2e} ± {shift['se']:.1e}",
                    f"{shift['max_abs']:.2e}", ranks]) + " |")
                head = [""] * len(head)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="?", default="random", choices=("random", "pretrained"))
    parser.add_argument("--datasets", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--rise-precision", action="store_true",
                        help="measure how bf16 changes RISE (writes benchmarks/results/rise-precision.json and .md)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rise_precision:
        study = rise_precision()
        path = Path(__file__).resolve().parent / "results" / "rise-precision.json"
        atomic_write_text(path, json.dumps(study, indent=1) + "\n")
        atomic_write_text(path.with_suffix(".md"), precision_markdown(study))
        print(precision_markdown(study))
        return
    result = run(args.weights, args.device, args.batch, args.repeats, tuple(args.datasets))
    for pair in result["pairs"]:
        print(f"\n{result['batch']} {pair['dataset']} test images, {result['weights']} weights, "
              f"explaining {pair['explained']}")
        for net in pair["networks"].values():
            if "skipped" in net:
                print(f"\n{net['model']}: skipped ({net['skipped']})")
                continue
            print_table(f"{net['model']} (accuracy {net['accuracy']:.3f})", net["stats"])
            print(f"  smoothgrad / transport cost  {net['smoothgrad_over_transport']:6.1f}x")
            print(f"  mean ||grad f||              {net['mean_gradient_norm']:.3g}")
            print(f"  L2 between unit-norm maps    {net['unit_l2']:.3g}")
            print(f"  1 - Spearman                 {net['one_minus_spearman']:.3g}")


if __name__ == "__main__":
    main()
