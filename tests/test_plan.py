"""The typed evaluation plan and the validated settings: configs and recipes built in Python or read from YAML get the
same checks, a config's content round-trips, ``units()`` is what runs, and the JSON Schemas accept the shipped files."""
from __future__ import annotations

import copy
import json
from collections import Counter
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from otnn_plugin.cli import main
from otnn_plugin.cli.schema import schema
from otnn_plugin.evaluate.config import EvalConfig, ExplainerSpec, MetricSpec, load_config, unit_seed
from otnn_plugin.train import Recipe, list_recipes, load_recipe
from otnn_plugin.train.recipe import _recipe_files

from .test_evaluate import CELLS, TINY, UNITS, write_config

EVALUATIONS = Path(__file__).resolve().parents[1] / "evaluations"
SHIPPED = ["quick", "fashionmnist", "celeba_mustache"]


@pytest.mark.parametrize("name", SHIPPED)
def test_content_round_trips_through_from_content(name):
    config = load_config(EVALUATIONS / f"{name}.yaml")
    again = EvalConfig.from_content(config.content(), name=config.name)
    assert again.content() == config.content() and again.content_hash() == config.content_hash()
    assert list(again.units()) == list(config.units())


def test_a_config_built_in_python_gets_the_checks_of_a_yaml_file(tmp_path):
    built = EvalConfig(name="tiny", **copy.deepcopy(TINY))
    assert built.content_hash() == load_config(write_config(tmp_path)).content_hash()
    with pytest.raises(ValidationError, match=r"unknown timm model 'otnn_vgg_fashionmnist_smal' \(did you mean"):
        EvalConfig(**{**TINY, "models": {"OTNN": "otnn_vgg_fashionmnist_smal"}})
    with pytest.raises(ValidationError, match=r"unknown setting of smoothgrad 'n_sample' \(did you mean 'n_samples'"):
        ExplainerSpec(method="smoothgrad", settings={"n_sample": 4})
    with pytest.raises(ValidationError, match=r"unknown parameter of Deletion 'stepz' \(did you mean 'steps'"):
        MetricSpec(metric="Deletion", params={"stepz": 4})
    with pytest.raises(ValidationError, match=r"unknown setting 'sample' \(did you mean 'samples'"):
        EvalConfig(**{**TINY, "sample": 3})
    with pytest.raises(ValidationError, match=r"greater than or equal to 1"):
        EvalConfig(**{**TINY, "batch_size": 0})
    with pytest.raises(ValidationError, match=r"valid integer"):
        EvalConfig(**{**TINY, "seed": True})  # YAML's true is not a seed


def test_units_are_the_plan_batch_by_batch_with_paired_seeds():
    config = EvalConfig(name="tiny", **copy.deepcopy(TINY))
    units = list(config.units())
    assert len(units) == UNITS and {u.cell for u in units} == set(CELLS)
    assert [u.batch for u in units] == sorted(u.batch for u in units)  # batch by batch
    assert Counter(u.cell for u in units) == {cell: 2 for cell in CELLS}
    for unit in units:  # plan 2: the same draws for every model and explainer, so comparisons are paired
        assert unit.explain_seed == unit_seed(0, unit.explainer, unit.batch)
        assert unit.seed == unit_seed(0, unit.metric, unit.batch)
    assert len({(u.metric, u.batch, u.seed) for u in units}) == len({(u.metric, u.batch) for u in units})
    first = units[0]
    assert [u.rows for u in units if u.cell == first.cell] == [slice(0, 4), slice(4, 6)]
    assert {u.model for u in config.units(["Unconstrained"])} == {"Unconstrained"}
    old = EvalConfig(name="tiny", plan=1, **copy.deepcopy(TINY))  # the seeding of results before plan 2
    assert "plan" not in old.content() and config.content()["plan"] == 2
    for unit in old.units():
        assert unit.explain_seed == unit_seed(0, unit.model, unit.explainer, unit.batch)
        assert unit.seed == unit_seed(0, unit.model, unit.explainer, unit.metric, unit.batch)
    assert EvalConfig.from_content(old.content()).plan == 1


def test_a_metric_on_the_first_samples_plans_only_their_rows():
    metrics = copy.deepcopy(TINY["metrics"])
    metrics["deletion_zero"]["samples"] = 3
    config = EvalConfig(**{**TINY, "metrics": metrics})
    rows = [u.rows for u in config.units() if u.cell == ("OTNN", "saliency", "deletion_zero")]
    assert rows == [slice(0, 3)]  # batch 1 holds rows 4-5: nothing to score there
    metrics["deletion_zero"]["samples"] = 50  # covers every sample: the same config as without it
    assert EvalConfig(**{**TINY, "metrics": metrics}).content_hash() == EvalConfig(**TINY).content_hash()


@pytest.mark.parametrize("kind, files", [
    ("evaluation", [EVALUATIONS / f"{name}.yaml" for name in SHIPPED]),
    ("recipe", [_recipe_files()[name] for name in list_recipes()]),
])
def test_json_schema_accepts_the_shipped_files_and_refuses_a_typo(kind, files, capsys):
    assert main(["schema", kind]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(schema(kind)))
    for path in files:
        jsonschema.validate(yaml.safe_load(path.read_text()), printed)
    typo = {**yaml.safe_load(files[0].read_text()), "sampels": 3}
    with pytest.raises(jsonschema.ValidationError, match="sampels"):
        jsonschema.validate(typo, printed)


def test_a_recipe_built_in_python_gets_the_checks_of_a_yaml_file():
    recipe = load_recipe("snowflake_otnn")
    assert Recipe(**recipe.model_dump()) == recipe
    with pytest.raises(ValidationError, match=r"unknown loss 'hkr_multi'"):
        Recipe(**{**recipe.model_dump(), "loss": "hkr_multi"})
    with pytest.raises(ValidationError, match=r"unknown dataset 'snowflakes' \(did you mean 'snowflake'"):
        Recipe(**{**recipe.model_dump(), "dataset": "snowflakes"})
    with pytest.raises(ValueError, match=r"^recipe snowflake_otnn: epochs: input should be greater than or equal to 1"):
        recipe.updated(epochs=0)
    assert recipe.updated(loss_args={"lam": 5.0}).loss_args == {"lam": 5.0}


def test_old_results_of_a_changed_config_say_so_in_one_line(tmp_path, capsys):
    results = tmp_path / "old"
    results.mkdir()
    header = {"event": "config", "format": 1, "name": "tiny", "description": "", "config_hash": "0" * 16,
              "config": {**EvalConfig(**TINY).content(), "metrics": {"gone": {"metric": "Delition"}}},
              "indices": [], "targets": [], "target_names": []}
    (results / "results.jsonl").write_text(json.dumps(header) + "\n")
    assert main(["leaderboard", str(results), "--out", str(tmp_path / "board")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "tiny: metrics.gone.metric: unknown metric 'Delition'" in err, err


def test_the_committed_quick_leaderboard_rebuilds_byte_identical(monkeypatch):
    """The leaderboard is a function of the results: the committed files come back byte for byte."""
    from otnn_plugin.evaluate import build_leaderboard, load_paper_claims, load_paper_numbers, read_results
    from otnn_plugin.evaluate.leaderboard import to_csv, to_json, to_markdown

    monkeypatch.chdir(EVALUATIONS.parent)  # the leaderboard names its results as given
    folder = Path("evaluations/results/quick")
    committed = (folder / "leaderboard.md").read_text()
    command = committed.split("Built by `", 1)[1].split("`", 1)[0]
    board = build_leaderboard([read_results(folder)], load_paper_numbers(), command, load_paper_claims())
    assert to_markdown(board) == committed
    assert to_json(board) == (folder / "leaderboard.json").read_text()
    assert to_csv(board) == (folder / "leaderboard.csv").read_text()


def test_resuming_plan_1_results_with_a_plan_2_config_says_how_in_one_line(tmp_path, data_dir, capsys):
    old = EvalConfig(name="tiny", plan=1, **copy.deepcopy(TINY))
    results = tmp_path / "old"
    results.mkdir()
    header = {"event": "config", "format": 1, "name": "tiny", "description": "", "config_hash": old.content_hash(),
              "config": old.content(), "indices": [], "targets": [], "target_names": []}
    (results / "results.jsonl").write_text(json.dumps(header) + "\n")
    assert main(["evaluate", str(write_config(tmp_path)), "--out", str(results), "--quiet", "--data-dir",
                 str(data_dir)]) == 2
    err = capsys.readouterr().err.splitlines()[-1]  # after the dataset cache's progress, when this test builds it
    assert err.startswith("otnn evaluate: error: ") and "seeded the plan-1 way (before paired seeds): add plan: 1" in err, err
