"""Issue 9: evaluation configs, the resumable side-by-side runner, and the leaderboards (paper Tables 1-4, 10-12)."""
from __future__ import annotations

import copy
import csv
import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import otnn_plugin
import otnn_plugin.evaluate.runner as runner
from otnn_plugin import is_otnn
from otnn_plugin.cli import main
from otnn_plugin.cli.evaluate import default_out
from otnn_plugin.evaluate import build_leaderboard, load_config, load_paper_numbers, prepare, read_results
from otnn_plugin.evaluate.config import metric_class
from otnn_plugin.evaluate.leaderboard import competition_ranks
from otnn_plugin.evaluate.results import open_results
from otnn_plugin.explainers import EXPLAIN_METHODS, explain
from otnn_plugin.metrics import Deletion

from .conftest import REPO

EVALUATIONS = REPO / "evaluations"

#: Two random-init models, 6 samples in batches of 4 (so 2 batches per cell), three explainers, four metrics.
TINY = {
    "dataset": "fashion_mnist",
    "samples": 6,
    "batch_size": 4,
    "models": {
        "OTNN": {"model": "otnn_vgg_fashionmnist_small", "weights": "random"},
        "Unconstrained": {"model": "unconstrained_vgg_fashionmnist_small", "weights": "random"},
    },
    "explainers": {"saliency": {}, "smoothgrad": {"n_samples": 4}, "gradcam": {}},
    "metrics": {
        "deletion_zero": {"metric": "Deletion", "baseline": "zero", "steps": 4},
        "stability_l2": {"metric": "Stability", "nb_samples": 2, "explainers": ["saliency", "smoothgrad"]},
        "distance_smoothgrad_l2": {"metric": "ExplanationDistance", "reference": {"method": "smoothgrad",
                                                                                  "n_samples": 4},
                                   "abs": True, "explainers": ["saliency"]},
        "sparseness": {"metric": "quantus.Sparseness"},
    },
}
#: (model, explainer, metric) cells of TINY, and its units (cells x 2 batches).
CELLS = [(m, e, k) for m in TINY["models"] for e in TINY["explainers"] for k, spec in TINY["metrics"].items()
         if e in spec.get("explainers", [e])]
UNITS = 2 * len(CELLS)


def write_config(folder: Path, name: str = "tiny", **changes) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **changes}, sort_keys=False))
    return path


def unit_scores(out: Path) -> dict:
    return {unit: record.get("scores") for unit, record in read_results(out).units.items()}


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory, data_dir) -> tuple[Path, Path]:
    """TINY evaluated once from the command line: (config, results folder)."""
    folder = tmp_path_factory.mktemp("evaluated")
    config, out = write_config(folder), folder / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 0
    return config, out


# --- end to end -----------------------------------------------------------------------------------------------------

def test_every_output_file_is_written(evaluated):
    config, out = evaluated
    for name in ("results.jsonl", "examples.npz", "leaderboard.md", "leaderboard.csv", "leaderboard.json",
                 "leaderboard.html"):
        assert (out / name).stat().st_size > 0, name
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert figures == sorted(["tiny_explanations.png", *(f"tiny_{m}.png" for m in TINY["metrics"])])
    for figure in figures:
        assert (out / "figures" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_record_config_hash_versions_and_times(evaluated):
    config, out = evaluated
    results = read_results(out)
    assert results.config_hash == load_config(config).content_hash()
    assert results.header["config"]["samples"] == 6 and len(results.header["indices"]) == 6
    (session,) = results.sessions
    assert session["environment"]["torch"] == torch.__version__
    assert session["environment"]["otnn-plugin"] == otnn_plugin.__version__  # also from an uninstalled source tree
    assert {"quantus", "captum", "timm", "deel-torchlip", "device"} <= set(session["environment"])
    assert session["command"].startswith("otnn evaluate ")
    assert set(session["export_max_abs_difference"]) == {"OTNN"}  # the OTNN ran as export_vanilla
    assert session["export_max_abs_difference"]["OTNN"] < 1e-5
    assert len(results.units) == UNITS
    for record in results.units.values():
        assert record["status"] == "ok" and record["seconds"] > 0 and len(record["scores"]) in (4, 2)


def test_scores_match_a_direct_metric_call(evaluated, data_dir):
    """The runner's Deletion scores for the OTNN's saliency are those of calling the metric by hand."""
    config, out = evaluated
    prepared = prepare(load_config(config), data_dir)
    model, x, y = prepared.models["OTNN"], prepared.x[:4], prepared.y[:4]
    a = explain(model, x, y, "saliency")
    expected = Deletion(baseline="zero", steps=4)(model=model, x_batch=x, y_batch=y, a_batch=a)
    recorded = read_results(out).units[("OTNN", "saliency", "deletion_zero", 0)]["scores"]
    np.testing.assert_allclose(recorded, expected, rtol=1e-6, atol=1e-9)


def test_leaderboard_statistics_and_ranks(evaluated):
    config, out = evaluated
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert len(rows) == len(CELLS)
    results = read_results(out)
    for row in rows:
        assert row["status"] == "ok" and int(row["n"]) == 6
        cell = (row["model"], row["explainer"], row["metric"])
        scores = [s for b in range(2) for s in results.units[(*cell, b)]["scores"]]
        assert float(row["mean"]) == pytest.approx(np.mean(scores), rel=1e-9, abs=1e-12)
        assert float(row["se"]) == pytest.approx(np.std(scores, ddof=1) / np.sqrt(6), rel=1e-9, abs=1e-12)
    for model in TINY["models"]:
        deletion = {r["explainer"]: r for r in rows if r["model"] == model and r["metric"] == "deletion_zero"}
        by_mean = sorted(deletion, key=lambda e: float(deletion[e]["mean"]))  # lower is better
        assert [int(deletion[e]["rank"]) for e in by_mean] == sorted(int(deletion[e]["rank"]) for e in deletion)
        assert deletion[by_mean[0]]["rank"] == "1"
    # The paper's Table 10 values sit beside ours, with the paper's own rank.
    paper = {(r["model"], r["explainer"]): r for r in rows if r["metric"] == "deletion_zero"}
    assert float(paper[("OTNN", "saliency")]["paper"]) == 0.20 and paper[("OTNN", "saliency")]["paper_rank"] == "4"
    assert float(paper[("Unconstrained", "gradcam")]["paper"]) == 0.33
    markdown = (out / "leaderboard.md").read_text()
    assert "paper Table 10" in markdown and "| explainer | OTNN | Rk | paper | Unconstrained | Rk | paper |" in markdown
    board = json.loads((out / "leaderboard.json").read_text())
    (setting,) = board["settings"]
    assert setting["config_hash"] == results.config_hash and setting["wall_seconds"] >= 0


def test_an_unfinished_run_is_ranked_on_the_samples_every_cell_has_scored(evaluated, tmp_path):
    _, out = evaluated
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    one_more = ("OTNN", "saliency", "deletion_zero")
    kept = [r for r in lines if r["event"] != "unit" or r["batch"] == 0
            or (r["model"], r["explainer"], r["metric"]) == one_more]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    (setting,) = build_leaderboard([read_results(tmp_path)]).settings
    for cell in setting.cells:
        row = [c for c in setting.cells if (c.model, c.metric) == (cell.model, cell.metric)]
        if (cell.model, cell.metric) == one_more[::2]:  # one cell has scored 6 samples, the others 4
            assert cell.rank is None
            continue
        assert cell.status == "incomplete" and cell.n == 4 and cell.n_expected == 6
        direction = next(m.direction for m in setting.metrics if m.label == cell.metric)
        assert cell.rank == competition_ranks({c.explainer: c.mean for c in row}, direction)[cell.explainer]
    assert setting.samples_text == "6 samples (4 scored)"  # the headings say how far the run has got


def test_examples_hold_every_model_and_explainer(evaluated):
    _, out = evaluated
    with np.load(out / "examples.npz") as examples:
        keys = set(examples.files)
        assert examples["inputs"].shape == (4, 1, 28, 28) and examples["targets"].shape == (4,)
        assert examples["OTNN/saliency"].shape == (4, 28, 28)
    assert {f"{m}/{e}" for m in TINY["models"] for e in TINY["explainers"]} <= keys


# --- resume ---------------------------------------------------------------------------------------------------------

def test_a_killed_run_resumes_without_recomputing_finished_units(evaluated, tmp_path, data_dir, monkeypatch):
    config, reference = evaluated
    out = tmp_path / "out"
    written, real_append = [], runner.append_record

    def killed_after_seven_units(results, record):
        real_append(results, record)
        if record["event"] == "unit":
            written.append(record)
            if len(written) == 7:
                raise KeyboardInterrupt

    monkeypatch.setattr(runner, "append_record", killed_after_seven_units)
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 130
    with open(out / "results.jsonl", "a") as handle:  # a kill in the middle of a line
        handle.write('{"event": "unit", "model": "OT')
    monkeypatch.setattr(runner, "append_record", real_append)

    calls = []

    def counting_explain(model, inputs, targets, method, **kwargs):
        calls.append((is_otnn(model), method, len(inputs)))
        return explain(model, inputs, targets, method, **kwargs)

    monkeypatch.setattr("otnn_plugin.explainers.explain", counting_explain)
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 0
    results = read_results(out)
    assert len(results.sessions) == 2
    assert sum(1 for r in results.units.values() if r["session"] == 1) == UNITS - 7
    # The first 7 units were batch 0 (4 samples) of the OTNN's saliency (4 metrics) and smoothgrad (3 metrics).
    # Its saliency is explained again on batch 1 only (2 samples), then around it for Stability (2 x 2 neighbours).
    assert [n for otnn, method, n in calls if otnn and method == "saliency"] == [2, 4]
    assert calls[0] == (True, "gradcam", 4)  # where it stopped: the OTNN's next explainer on batch 0
    assert unit_scores(out) == unit_scores(reference)  # resumed == uninterrupted, unit by unit
    assert (out / "results.jsonl").read_text().endswith("\n")


def test_results_of_another_config_are_not_mixed(evaluated, tmp_path, data_dir, capsys):
    config, out = evaluated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    other = write_config(tmp_path, seed=1)
    assert main(["evaluate", str(other), "--out", str(copy), "--quiet", "--data-dir", str(data_dir)]) == 2
    assert "holds results of another config" in capsys.readouterr().err


def test_a_control_added_to_the_config_joins_the_comparison(evaluated, tmp_path, data_dir, capsys):
    """Adding a model leaves the others' results valid: the old folder resumes with nothing to do, the new model goes
    to its own folder (even on another device), and the leaderboard merges both into one setting."""
    config, out = evaluated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    models = {**TINY["models"], "Linear": {"model": "linear_fashionmnist", "weights": "random"}}
    wider = write_config(tmp_path, models=models)
    assert main(["evaluate", str(wider), "--models", "OTNN", "Unconstrained", "--out", str(copy), "--quiet",
                 "--data-dir", str(data_dir), "--no-leaderboard"]) == 0
    assert unit_scores(copy) == unit_scores(out)  # nothing recomputed
    assert main(["evaluate", str(wider), "--out", str(copy), "--quiet", "--data-dir", str(data_dir)]) == 2
    assert "score those into their own folder" in capsys.readouterr().err  # Linear would join a folder without it
    control = tmp_path / "linear"
    assert main(["evaluate", str(wider), "--models", "Linear", "--device", "cpu", "--out", str(control), "--quiet",
                 "--data-dir", str(data_dir), "--no-leaderboard"]) == 0
    (setting,) = build_leaderboard([read_results(copy), read_results(control)]).settings
    assert set(setting.models) == {"OTNN", "Unconstrained", "Linear"} and ", " in setting.config_hash
    assert {c.status for c in setting.cells if c.model == "Linear" and c.explainer == "saliency"} == {"ok"}
    header = read_results(control).header
    with pytest.raises(ValueError, match="resume with --device cpu"):
        open_results(control, {**header, "config": {**header["config"], "device": "cuda"}})
    other = {**models, "Linear": {"model": "linear_fashionmnist", "weights": "random", "args": {"num_classes": 10}}}
    renamed = tmp_path / "renamed"
    assert main(["evaluate", str(write_config(tmp_path, name="other", models=other)), "--models", "Linear", "--out",
                 str(renamed), "--quiet", "--data-dir", str(data_dir), "--no-leaderboard"]) == 0
    with pytest.raises(ValueError, match="give Linear two models"):
        build_leaderboard([read_results(control), read_results(renamed)])


@pytest.mark.parametrize("key", ["indices", "targets"])
def test_results_of_other_samples_are_not_mixed(evaluated, tmp_path, data_dir, capsys, key):
    config, out = evaluated
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    lines = (copy / "results.jsonl").read_text().split("\n")
    header = json.loads(lines[0])
    header[key] = header[key][::-1]  # as if drawn in another order, or labelled another way
    assert header[key] != json.loads(lines[0])[key]
    (copy / "results.jsonl").write_text("\n".join([json.dumps(header), *lines[1:]]))
    assert main(["evaluate", str(config), "--out", str(copy), "--quiet", "--data-dir", str(data_dir)]) == 2
    assert "on other samples" in capsys.readouterr().err


def test_samples_are_kept_in_draw_order(evaluated, data_dir):
    """The first rows of a run are the whole run of a smaller config: a random subset, not the lowest indices."""
    config, out = evaluated
    indices = read_results(out).header["indices"]
    assert indices != sorted(indices)
    assert prepare(load_config(config, samples=3), data_dir).indices == indices[:3]


# --- a metric on fewer samples, and runs split by model -------------------------------------------------------------

def test_a_metric_with_its_own_samples_scores_only_the_first_rows(evaluated, tmp_path, data_dir):
    _, reference = evaluated
    metrics = copy.deepcopy(TINY["metrics"])
    metrics["deletion_zero"]["samples"] = 5  # all of batch 0 (4 samples), one of batch 1
    config, out = write_config(tmp_path, metrics=metrics), tmp_path / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 0
    units, expected = read_results(out).units, read_results(reference).units
    for model in TINY["models"]:
        for explainer in TINY["explainers"]:
            cell = (model, explainer, "deletion_zero")
            assert len(units[(*cell, 0)]["scores"]) == 4 and len(units[(*cell, 1)]["scores"]) == 1
            assert units[(*cell, 1)]["scores"] == expected[(*cell, 1)]["scores"][:1]  # same seed, same sample
            assert units[(*cell, 0)]["scores"] == expected[(*cell, 0)]["scores"]
    rows = list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))
    assert {(r["n"], r["samples"], r["status"]) for r in rows if r["metric"] == "deletion_zero"} == {("5", "5", "ok")}
    assert {r["n"] for r in rows if r["metric"] != "deletion_zero"} == {"6"}
    assert "lower is better ↓, first 5 samples" in (out / "leaderboard.md").read_text()
    # Capped at the config's samples: a metric asking for all of them (or more) is the plain metric.
    metrics["deletion_zero"]["samples"] = 6
    assert load_config(write_config(tmp_path, metrics=metrics)).content_hash() == load_config(
        write_config(tmp_path, name="plain")).content_hash()


def test_stability_metrics_sharing_a_seed_explain_their_neighbours_once(tmp_path, data_dir, monkeypatch):
    stability = {"metric": "Stability", "nb_samples": 3, "seed": 5, "explainers": ["smoothgrad"]}
    metrics = {"stability_l2": {**stability, "distance": "l2"},
               "stability_spearman": {**stability, "distance": "spearman"}}
    config = write_config(tmp_path, samples=4, models={"OTNN": TINY["models"]["OTNN"]},
                          explainers={"smoothgrad": {"n_samples": 4}}, metrics=metrics)
    calls = []

    def counting_explain(model, inputs, targets, method, **kwargs):
        calls.append(len(inputs))
        return explain(model, inputs, targets, method, **kwargs)

    monkeypatch.setattr("otnn_plugin.explainers.explain", counting_explain)
    out = tmp_path / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                 "--no-leaderboard"]) == 0
    assert calls == [4, 4 * 3]  # the batch, then its 12 neighbours, once for both metrics
    monkeypatch.undo()
    prepared = prepare(load_config(config), data_dir)
    model, x, y = prepared.models["OTNN"], prepared.x, prepared.y
    kwargs = {"method": "smoothgrad", "n_samples": 4, "seed": runner.unit_seed(0, "smoothgrad", 0)}
    a = explain(model, x, y, **kwargs)
    units = read_results(out).units
    for distance in ("l2", "spearman"):
        expected = metric_class("Stability")(nb_samples=3, seed=5, distance=distance, disable_warnings=True)(
            model=model, x_batch=x, y_batch=y, a_batch=a, explain_func=explain, explain_func_kwargs=kwargs)
        recorded = units[("OTNN", "smoothgrad", f"stability_{distance}", 0)]["scores"]
        np.testing.assert_allclose(recorded, expected, rtol=1e-5, atol=1e-7)


def test_quantus_metrics_forward_the_same_perturbations_once_for_every_explainer(tmp_path, data_dir, monkeypatch):
    """Plan 2 seeds each explainer's call of a metric alike, so Quantus's FaithfulnessCorrelation draws the same
    subsets for every explainer: the runner forwards them once, and every score equals a fresh Quantus call's."""
    faithfulness = {"metric": "quantus.FaithfulnessCorrelation", "nr_runs": 5, "subset_size": 40,
                    "perturb_baseline": "black", "normalise": False}
    config = write_config(tmp_path, samples=4, models={"OTNN": TINY["models"]["OTNN"]},
                          explainers={"saliency": {}, "gradient_x_input": {}},
                          metrics={"faithfulness_correlation": faithfulness})
    calls = {"forwards": 0, "computed": 0}

    class Counting(runner._RememberingModel):
        def forward(self, x):
            before = len(self.outputs)
            output = super().forward(x)
            calls["forwards"] += 1
            calls["computed"] += len(self.outputs) - before
            return output

    monkeypatch.setattr(runner, "_RememberingModel", Counting)
    out = tmp_path / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                 "--no-leaderboard"]) == 0
    assert calls["computed"] == 1 + 5 and calls["forwards"] == 2 * calls["computed"]  # the inputs, then 5 runs
    prepared = prepare(load_config(config), data_dir)
    model, x, y = prepared.models["OTNN"], prepared.x, prepared.y
    units = read_results(out).units
    spec = load_config(config).metrics["faithfulness_correlation"]
    for method in ("saliency", "gradient_x_input"):
        fresh = runner._score(spec, model, x, y, explain(model, x, y, method), explain, {"method": method},
                              prepared.device, runner.unit_seed(0, "faithfulness_correlation", 0))
        assert fresh["status"] == "ok"
        assert units[("OTNN", method, "faithfulness_correlation", 0)]["scores"] == fresh["scores"]  # bit for bit


def test_a_metric_with_bad_samples_gives_one_line(tmp_path, capsys):
    metrics = copy.deepcopy(TINY["metrics"])
    metrics["deletion_zero"]["samples"] = 0
    assert main(["evaluate", str(write_config(tmp_path, metrics=metrics)), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metrics.deletion_zero.samples: input should be greater than or equal to 1, got 0" in err


def test_a_run_split_by_model_merges_into_the_whole_leaderboard(evaluated, tmp_path, data_dir, capsys):
    config, reference = evaluated
    folders = []
    for model in TINY["models"]:
        assert main(["evaluate", str(config), "--models", model, "--quiet", "--data-dir", str(data_dir),
                     "--no-leaderboard"]) == 0
        folders.append(default_out(config, None, False, [model]))
        assert folders[-1] == config.parent / "results" / f"tiny-{model}"
        assert {unit[0] for unit in read_results(folders[-1]).units} == {model}
    assert main(["leaderboard", *map(str, folders), "--out", str(tmp_path / "merged")]) == 0

    def means(folder: Path) -> dict:
        rows = csv.DictReader(io.StringIO((folder / "leaderboard.csv").read_text()))
        return {(r["model"], r["explainer"], r["metric"]): (r["status"], r["mean"], r["rank"]) for r in rows}

    assert means(tmp_path / "merged") == means(reference)
    assert (tmp_path / "merged" / "figures" / "tiny_explanations.png").is_file()

    def diagnostics(folder: Path) -> dict:  # each split run recorded its own model's; the merge has them all
        return json.loads((folder / "leaderboard.json").read_text())["settings"][0]["diagnostics"]

    assert diagnostics(tmp_path / "merged") == diagnostics(reference)
    assert len(diagnostics(reference)) == len(TINY["models"])
    capsys.readouterr()
    assert main(["evaluate", str(config), "--models", "OTN", "--quiet", "--data-dir", str(data_dir)]) == 2
    assert "unknown model label 'OTN' (did you mean 'OTNN'?)" in capsys.readouterr().err


# --- failures -------------------------------------------------------------------------------------------------------

def test_failing_cells_are_recorded_and_the_run_goes_on(tmp_path, data_dir, monkeypatch, capsys):
    explainers = {**TINY["explainers"], "gradcam": {"layer": "no.such.layer"}}
    config, out = write_config(tmp_path, explainers=explainers), tmp_path / "out"
    calls = []
    real_score = Deletion.score

    def fails_once(self, net, x, y, a):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real_score(self, net, x, y, a)

    monkeypatch.setattr(Deletion, "score", fails_once)
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert "failed: OTNN x saliency x deletion_zero" in err and "failed: OTNN x gradcam x sparseness" in err
    rows = {(r["model"], r["explainer"], r["metric"]): r
            for r in csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text()))}
    assert rows[("OTNN", "saliency", "deletion_zero")]["error"] == "RuntimeError: boom"
    assert rows[("OTNN", "saliency", "deletion_zero")]["mean"] == ""
    assert "has no submodule 'no.such.layer'" in rows[("Unconstrained", "gradcam", "deletion_zero")]["error"]
    failed = {cell for cell, row in rows.items() if row["status"] == "failed"}
    assert failed == {("OTNN", "saliency", "deletion_zero")} | {
        (m, "gradcam", k) for m in TINY["models"] for k in ("deletion_zero", "sparseness")}
    assert all(row["status"] == "ok" for cell, row in rows.items() if cell not in failed)
    units = read_results(out).units
    assert ("OTNN", "saliency", "deletion_zero", 1) not in units  # the rest of a failed cell is skipped
    assert "failed: RuntimeError: boom" in (out / "leaderboard.md").read_text()

    # A resumed run leaves failed cells alone; --retry-failed computes them again.
    n_calls = len(calls)
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 1
    assert len(calls) == n_calls
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                 "--retry-failed"]) == 1  # gradcam still fails
    assert read_results(out).units[("OTNN", "saliency", "deletion_zero", 1)]["status"] == "ok"


# --- bad configs ----------------------------------------------------------------------------------------------------

def _bad(tmp_path: Path, change: str) -> Path:
    """TINY with one mistake."""
    if change == "syntax":
        path = write_config(tmp_path)
        path.write_text(path.read_text().replace("samples: 6", "samples: [6"))
        return path
    models, explainers, metrics = (copy.deepcopy(TINY[k]) for k in ("models", "explainers", "metrics"))
    changes = {"models": models, "explainers": explainers, "metrics": metrics}
    if change == "metric":
        metrics["deletion_zero"]["metric"] = "Delition"
    elif change == "parameter":
        metrics["deletion_zero"]["stepz"] = metrics["deletion_zero"].pop("steps")
    elif change == "explainer":
        explainers["salency"] = explainers.pop("saliency")
    elif change == "setting":
        explainers["smoothgrad"] = {"n_sample": 4}
    elif change == "model":
        models["OTNN"]["model"] = "otnn_vgg_fashionmnist_smal"
    elif change == "weights_file":
        models["OTNN"]["weights"] = "missing/otnn.safetensors"
    elif change == "label":
        changes["label"] = "Mustache"
    return write_config(tmp_path, **changes)


@pytest.mark.parametrize("change, message", [
    ("syntax", "is not valid YAML: line "),
    ("metric", "unknown metric 'Delition' (did you mean 'Deletion'?)"),
    ("parameter", "unknown parameter of Deletion 'stepz' (did you mean 'steps'?)"),
    ("explainer", "unknown explanation method 'salency' (did you mean 'saliency'?)"),
    ("setting", "unknown setting of smoothgrad 'n_sample' (did you mean 'n_samples'?)"),
    ("model", "unknown timm model 'otnn_vgg_fashionmnist_smal' (did you mean 'otnn_vgg_fashionmnist_small'?)"),
    ("weights_file", "weights file"),
    ("label", "unknown label 'Mustache'"),
])
def test_a_bad_config_gives_one_line_and_exit_code_2(tmp_path, change, message, capsys):
    config, out = _bad(tmp_path, change), tmp_path / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("otnn evaluate: error: ") and message in err, err
    assert not out.exists()


def test_missing_pretrained_weights_give_one_line(tmp_path, data_dir, monkeypatch, capsys):
    from otnn_plugin import hub

    monkeypatch.setenv("OTNN_REGISTRY", str(tmp_path / "empty_registry"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.hub_reachable.cache_clear()
    models = {"OTNN": {"model": "otnn_vgg_fashionmnist_small", "weights": "pretrained"}}
    config, out = write_config(tmp_path, models=models), tmp_path / "out"
    assert main(["evaluate", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no pretrained weights for 'otnn_vgg_fashionmnist_small'" in err
    assert not out.exists()
    hub.hub_reachable.cache_clear()


def test_weights_from_a_file_are_loaded(tmp_path, data_dir):
    import timm
    from safetensors.torch import save_file

    torch.manual_seed(3)
    model = timm.create_model("unconstrained_vgg_fashionmnist_small").eval()
    save_file(model.state_dict(), str(tmp_path / "twin.safetensors"))
    models = {"Twin": {"model": "unconstrained_vgg_fashionmnist_small", "weights": "twin.safetensors"}}
    prepared = prepare(load_config(write_config(tmp_path, models=models)), data_dir)
    x = torch.as_tensor(prepared.x)
    with torch.no_grad():  # on the CPU, where the saved model is, for a bit-for-bit comparison
        assert torch.equal(prepared.models["Twin"].cpu()(x), model(x))
    models = {"Twin": {"model": "otnn_vgg_fashionmnist_small", "weights": "twin.safetensors"}}
    with pytest.raises(ValueError, match="does not hold weights of otnn_vgg_fashionmnist_small"):
        prepare(load_config(write_config(tmp_path, models=models)), data_dir)


def test_results_fingerprint_the_loaded_weights_not_their_export(tmp_path, data_dir):
    """An OTNN is scored as ``export_vanilla`` of itself, whose QR-built kernels change in the last bits with the
    thread count; the fingerprint in the results is of the weights as loaded, so a run resumes under any threads."""
    import timm
    from safetensors.torch import save_file

    from otnn_plugin._fingerprint import weights_fingerprint

    torch.manual_seed(5)
    model = timm.create_model("otnn_vgg_fashionmnist_small").eval()
    save_file(model.state_dict(), str(tmp_path / "otnn.safetensors"))
    models = {"OTNN": {"model": "otnn_vgg_fashionmnist_small", "weights": "otnn.safetensors"}}
    prepared = prepare(load_config(write_config(tmp_path, models=models)), data_dir)
    assert "OTNN" in prepared.export_differences  # scored as its export
    assert weights_fingerprint(prepared.models["OTNN"]) != weights_fingerprint(model)
    assert prepared.fingerprints == {"OTNN": weights_fingerprint(model)}
    assert runner._header(prepared, None)["weights"] == prepared.fingerprints


# --- shipped configs and the paper's numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["quick", "fashionmnist", "celeba_mustache"])
def test_shipped_configs_validate(name):
    config = load_config(EVALUATIONS / f"{name}.yaml")
    assert {e.method for e in config.explainers.values()} == set(EXPLAIN_METHODS)
    assert {"otnn", "unconstrained"} <= {m.family for m in config.models.values()} <= {"otnn", "unconstrained", "linear"}
    paper = load_paper_numbers()
    assert set(paper.metrics) <= set(config.metrics)
    for metric in config.metrics.values():  # a metric shown beside the paper's goes the paper's way
        if metric.label in paper.metrics:
            assert metric.direction == paper.metrics[metric.label]["direction"], metric.label
    if name != "quick":
        assert config.samples == 1000  # paper A.4.2
        smoke = load_config(EVALUATIONS / f"{name}.yaml", samples=8, weights="random")
        assert smoke.samples == 8 and all(m.weights == "random" for m in smoke.models.values())
        assert smoke.content_hash() != config.content_hash()
        assert default_out(EVALUATIONS / f"{name}.yaml", 8, False) == EVALUATIONS / "results" / f"{name}-samples8"


def test_multilabel_samples_are_explained_for_their_own_side_of_the_label(tmp_path, data_dir):
    """Each face is scored on -f_Mustache without a mustache and on f_Mustache with one (as a class, per sample)."""
    from otnn_plugin.data import label_names, load_dataset, to_tensors

    size = {"img_size": [109, 89]}
    models = {"OTNN": {"model": "otnn_vgg_celeba_small", "weights": "random", "args": size},
              "Unconstrained": {"model": "unconstrained_vgg_celeba_small", "weights": "random", "args": size}}
    metrics = {"deletion_zero": {"metric": "Deletion", "baseline": "zero", "steps": 2},
               "robustness_sr": {"metric": "RobustnessSr", "steps": 2, "n_iterations": 2, "n_bisections": 2},
               "faithfulness": {"metric": "quantus.FaithfulnessCorrelation", "nr_runs": 2, "subset_size": 100}}
    path = write_config(tmp_path, dataset="celeba", label="Mustache", samples=40, batch_size=20, models=models,
                        explainers={"saliency": {}, "gradient_x_input": {}}, metrics=metrics)
    prepared = prepare(load_config(path), data_dir)
    _, labels = to_tensors(load_dataset("celeba", "test", data_dir).select(prepared.indices))
    column = list(label_names("celeba")).index("Mustache")
    mustache = labels[:, column]
    assert prepared.target_names == ["no Mustache", "Mustache"]
    assert prepared.y.tolist() == mustache.long().tolist() and 0 < prepared.y.sum() < len(prepared.y)
    x = torch.as_tensor(prepared.x[:20])
    for model in prepared.models.values():
        with torch.no_grad():
            sides, f = model(x), model.model(x)[:, column]
        assert torch.equal(sides, torch.stack([-f, f], dim=1)) and not model.training
        assert explain(model, x, prepared.y[:20], method="gradcam").shape == x.shape  # found from feature_info
    summary = runner.run_evaluation(prepared, tmp_path / "out", progress=False)
    assert summary.failed_cells == [] and summary.computed == 2 * 2 * 3 * 2  # models x explainers x metrics x batches
    header = read_results(tmp_path / "out").header
    assert header["targets"] == prepared.y.tolist() and header["target_names"] == ["no Mustache", "Mustache"]


def test_paper_numbers_reproduce_the_printed_saliency_ranks():
    """Tables 1, 10 and 11 print the rank of Saliency; recomputing it checks the transcription and the ranking."""
    paper = load_paper_numbers()
    checked = 0
    for name, entry in paper.metrics.items():
        for dataset, ranks in entry.get("saliency_rank", {}).items():
            for family, printed in ranks.items():
                row = paper.row(name, dataset, paper.datasets[dataset].get("label"), family)
                assert competition_ranks(row, entry["direction"])["saliency"] == printed, (name, dataset, family)
                checked += 1
    assert checked == 20
    assert paper.row("jpeg_complexity", "celeba", "Mustache", "otnn") == {"saliency": 9.48}
    assert paper.row("jpeg_complexity", "celeba", "Smiling", "otnn") == {}  # the paper's CelebA numbers: Mustache
    assert paper.row("stability_l2", "fashion_mnist", None, "unconstrained") == {
        "integrated_gradients": 3.7e-3, "saliency": 1.6e-1, "smoothgrad": 1.1e-3}


def test_competition_ranks_by_hand():
    assert competition_ranks({"a": 0.3, "b": 0.1, "c": 0.3, "d": 0.5}, "lower") == {"b": 1, "a": 2, "c": 2, "d": 4}
    assert competition_ranks({"a": 0.3, "b": 0.1, "c": 0.3, "d": 0.5}, "higher") == {"d": 1, "a": 2, "c": 2, "b": 4}


def test_metric_names_and_directions():
    assert metric_class("quantus.PixelFlipping").__name__ == "PixelFlipping"
    with pytest.raises(ValueError, match=r"did you mean 'quantus.PixelFlipping'"):
        metric_class("quantus.PixelFliping")


# --- leaderboard command --------------------------------------------------------------------------------------------

def test_leaderboard_merges_results_of_one_config_and_separates_others(evaluated, tmp_path, data_dir, capsys):
    config, out = evaluated
    board = build_leaderboard([read_results(out), read_results(out)])
    assert len(board.settings) == 1 and len(board.settings[0].cells) == len(CELLS)
    other = write_config(tmp_path, name="other", samples=4, explainers={"saliency": {}},
                         metrics={"deletion_zero": TINY["metrics"]["deletion_zero"]})
    assert main(["evaluate", str(other), "--out", str(tmp_path / "other"), "--quiet", "--data-dir", str(data_dir),
                 "--no-leaderboard"]) == 0
    assert not (tmp_path / "other" / "leaderboard.md").exists()
    assert main(["leaderboard", str(out), str(tmp_path / "other"), "--out", str(tmp_path / "both")]) == 0
    combined = json.loads((tmp_path / "both" / "leaderboard.json").read_text())
    assert [s["name"] for s in combined["settings"]] == ["tiny", "other"]
    assert (tmp_path / "both" / "figures" / "other_explanations.png").is_file()
    capsys.readouterr()
    assert main(["leaderboard", str(out), str(tmp_path / "other")]) == 2
    assert "pass --out" in capsys.readouterr().err


# --- the HTML page in a real browser --------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_PROBE = ("<script>window.addEventListener('load', () => { const images = [...document.images];"
          " document.body.dataset.images = images.length;"
          " document.body.dataset.decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;"
          " document.body.dataset.tables = document.querySelectorAll('table').length;"
          " document.body.dataset.rows = document.querySelectorAll('table.metric tbody tr').length; });</script>")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine (Debian: apt-get install -y chromium)")
def test_html_page_renders_in_headless_chromium(evaluated, tmp_path):
    _, out = evaluated
    page = (out / "leaderboard.html").read_text()
    assert "src=\"http" not in page and "<link" not in page  # self-contained
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom",
         probe.as_uri()], capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    body = dom[dom.index("<body"):dom.index(">", dom.index("<body"))]
    figures = 1 + len(TINY["metrics"])
    assert f'data-images="{figures}"' in body and f'data-decoded="{figures}"' in body, body
    assert f'data-tables="{3 + len(TINY["metrics"])}"' in body  # facts, diagnostics, claims, then one per metric
    rows = sum(len(spec.get("explainers", TINY["explainers"])) for spec in TINY["metrics"].values())
    assert f'data-rows="{rows}"' in body
    assert "deletion_zero: Deletion(baseline='zero', steps=4), lower is better" in dom


# --- sharded runs ---------------------------------------------------------------------------------------------------

def _cells(board) -> list[tuple]:
    return [(c.metric, c.model, c.explainer, c.status, c.n, c.mean, c.se, c.rank) for s in board.settings
            for c in s.cells]


def test_two_shards_merge_into_the_unsharded_leaderboard(evaluated, tmp_path, data_dir, capsys):
    config, whole = evaluated
    shards = [tmp_path / f"shard{i}" for i in range(2)]
    for i, out in enumerate(shards):
        assert main(["evaluate", str(config), "--shard", f"{i}/2", "--out", str(out), "--quiet", "--data-dir",
                     str(data_dir), "--no-leaderboard"]) == 0
    assert {unit[3] for unit in read_results(shards[1]).units} == {1}  # TINY has 2 batches: one per shard
    merged = build_leaderboard([read_results(out) for out in shards])
    assert _cells(merged) == _cells(build_leaderboard([read_results(whole)]))
    assert all(c.status == "ok" for c in merged.settings[0].cells)
    capsys.readouterr()
    assert main(["leaderboard", str(whole), str(shards[0]), "--out", str(tmp_path / "both")]) == 2
    assert "both scored OTNN, Unconstrained on the same samples" in capsys.readouterr().err
    assert main(["evaluate", str(config), "--shard", "1/2", "--out", str(shards[0]), "--quiet", "--data-dir",
                 str(data_dir)]) == 2
    assert "holds shard 0/2, not shard 1/2: give each shard its own --out" in capsys.readouterr().err


def test_torchrun_ranks_are_shards(monkeypatch, tmp_path):
    from otnn_plugin.cli.evaluate import default_out, launched_shard
    from otnn_plugin.evaluate.config import Shard

    assert launched_shard() is None
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    assert launched_shard() == Shard(2, 3) and launched_shard(Shard(0, 2)) == Shard(0, 2)
    assert default_out(tmp_path / "c.yaml", None, False, None, Shard(2, 3)) == tmp_path / "results" / "c-shard2of3"
    with pytest.raises(ValueError, match=r"shard 2/2: give I/N with 0 <= I < N"):
        Shard.parse("2/2")
