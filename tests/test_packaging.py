"""The package outside the source tree: a wheel built from the checkout, installed into a folder of its own and run
from another folder, carries the shipped evaluation configs and paper numbers and reads pretrained weights from
``$OTNN_REGISTRY`` (offline: no hub)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from .conftest import REPO

SHIPPED_CONFIGS = sorted(p.stem for p in (REPO / "evaluations").glob("*.yaml")
                         if p.name not in ("paper_numbers.yaml", "paper_claims.yaml"))


def _run(args: list[str], cwd: Path, site: Path, registry: Path | None = None, timeout: int = 120):
    """``python ARGS`` in ``cwd`` with only the installed wheel (``site``) ahead of the environment's packages."""
    env = {k: v for k, v in os.environ.items() if k not in ("OTNN_REGISTRY", "PYTHONPATH")}
    env.update(PYTHONPATH=str(site), HF_HUB_OFFLINE="1", **({"OTNN_REGISTRY": str(registry)} if registry else {}))
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of this checkout, built without network; setuptools' build folders go to a temporary folder
    (``DIST_EXTRA_CONFIG``), not into the checkout."""
    tmp = tmp_path_factory.mktemp("wheel")
    (tmp / "build.cfg").write_text(f"[build]\nbuild_base = {tmp / 'build'}\n[egg_info]\negg_base = {tmp}\n")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist"),
         str(REPO)],
        env={**os.environ, "DIST_EXTRA_CONFIG": str(tmp / "build.cfg")}, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (tmp / "dist").glob("otnn_plugin-*.whl")
    return wheel


@pytest.fixture(scope="module")
def site(wheel, tmp_path_factory) -> Path:
    """The wheel installed (without dependencies) into a folder of its own."""
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return target


def test_the_wheel_holds_every_module_and_the_shipped_yaml_files_only(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "otnn_plugin").rglob("*.py")}
    recipes = {p.relative_to(REPO).as_posix() for p in (REPO / "otnn_plugin" / "train" / "recipes").glob("*.yaml")}
    assert modules | recipes <= names, sorted(modules | recipes - names)
    shipped = {n for n in names if n.startswith("otnn_plugin/evaluations/")}
    assert shipped == {f"otnn_plugin/evaluations/{p.name}" for p in (REPO / "evaluations").glob("*.yaml")}


SCRIPT = """
import json, os, timm, otnn_plugin
from otnn_plugin import _shipped, hub
from otnn_plugin.evaluate import load_config, load_paper_numbers
from otnn_plugin.cli.evaluate import config_file
from otnn_plugin.evaluate.leaderboard import PAPER_NUMBERS
facts = dict(package=otnn_plugin.__file__, configs=_shipped.list_configs(), quick=str(_shipped.config_path("quick")),
             paper=str(PAPER_NUMBERS), paper_source=load_paper_numbers().source, registry=str(hub.registry_dir()),
             quick_models=[m.model for m in load_config(_shipped.config_path("quick")).models.values()])
try:
    config_file("quik")
except ValueError as err:
    facts["typo"] = str(err)
try:
    timm.create_model("otnn_mlp_snowflake", pretrained=True)
except FileNotFoundError as err:
    facts["error"] = str(err)
os.environ["OTNN_REGISTRY"] = {registry!r}
facts["file"] = timm.create_model("otnn_mlp_snowflake", pretrained=True).pretrained_cfg["file"]
print(json.dumps(facts))
"""


def test_the_installed_wheel_ships_its_configs_and_reads_weights_from_otnn_registry(site, tmp_path):
    done = _run(["-c", SCRIPT.format(registry=str(REPO / "registry"))], tmp_path, site)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.splitlines()[-1])
    assert Path(facts["package"]).is_relative_to(site), facts["package"]
    assert facts["configs"] == SHIPPED_CONFIGS
    assert Path(facts["quick"]).is_relative_to(site) and Path(facts["paper"]).is_relative_to(site)
    assert facts["paper_source"] == yaml.safe_load((REPO / "evaluations" / "paper_numbers.yaml").read_text())["source"]
    assert facts["quick_models"] == ["otnn_vgg_fashionmnist_gnp", "unconstrained_vgg_fashionmnist_gnp",
                                     "linear_fashionmnist"]
    assert facts["typo"].startswith("unknown evaluation config 'quik' (did you mean 'quick'?)"), facts["typo"]
    assert facts["registry"] == "None"  # a wheel has no registry of its own
    error = facts["error"]
    assert "\n" not in error and "no pretrained weights for 'otnn_mlp_snowflake'" in error, error
    assert "set OTNN_REGISTRY to a folder holding the registry" in error and "(offline: HF_" in error, error
    assert facts["file"] == str(REPO / "registry" / "otnn_mlp_snowflake" / "model.safetensors")


def test_otnn_evaluate_runs_a_shipped_config_by_name_from_the_wheel(site, tmp_path, data_dir):
    """A one-model, one-explainer, one-metric cut of quick.yaml, dropped into the installed package as ``mini``."""
    installed = shutil.copytree(site, tmp_path / "site")
    quick = yaml.safe_load((installed / "otnn_plugin" / "evaluations" / "quick.yaml").read_text())
    mini = {**quick, "models": {"OTNN": quick["models"]["OTNN"]}, "explainers": {"saliency": {}},
            "metrics": {"deletion_uniform": quick["metrics"]["deletion_uniform"]}}
    (installed / "otnn_plugin" / "evaluations" / "mini.yaml").write_text(yaml.safe_dump(mini))
    work = tmp_path / "work"
    work.mkdir()

    argv = ["-m", "otnn_plugin", "evaluate", "mini", "--samples", "2", "--quiet", "--device", "cpu",
            "--data-dir", str(data_dir)]
    done = _run(argv, work, installed, registry=REPO / "registry")
    assert done.returncode == 0, done.stderr
    out = work / "evaluations" / "results" / "mini-samples2"
    assert (out / "results.jsonl").is_file() and (out / "leaderboard.md").is_file()
    board = json.loads((out / "leaderboard.json").read_text())
    assert board["paper_source"] == yaml.safe_load((REPO / "evaluations" / "paper_numbers.yaml").read_text())["source"]
    assert not (installed / "otnn_plugin" / "evaluations" / "results").exists()


# --- in the checkout ---------------------------------------------------------------------------------------------


def test_a_shipped_name_reads_the_checkouts_evaluations_folder():
    from otnn_plugin.cli.evaluate import config_file, default_out

    assert config_file("quick") == (REPO / "evaluations" / "quick.yaml", Path("evaluations", "quick.yaml"))
    assert default_out(config_file("quick")[1], 2, False) == Path("evaluations", "results", "quick-samples2")
    assert config_file("evaluations/quick.yaml") == (Path("evaluations/quick.yaml"),) * 2


def test_otnn_registry_is_read_before_the_hub_and_a_given_file_is_left_to_timm(tmp_path, monkeypatch):
    import timm

    from otnn_plugin import hub

    registry = tmp_path / "registry"
    shutil.copytree(REPO / "registry" / "otnn_mlp_snowflake", registry / "otnn_mlp_snowflake")
    monkeypatch.setenv("OTNN_REGISTRY", str(registry))
    monkeypatch.setattr(hub, "hub_reachable", lambda: pytest.fail("the hub must not be asked"))
    model = timm.create_model("otnn_mlp_snowflake", pretrained=True)
    assert model.pretrained_cfg["file"] == str(registry / "otnn_mlp_snowflake" / "model.safetensors")
    assert model.pretrained_cfg["hf_hub_id"] == "otnn-plugin/otnn_mlp_snowflake"

    monkeypatch.setenv("OTNN_REGISTRY", str(tmp_path / "empty"))
    given = str(REPO / "registry" / "otnn_mlp_snowflake" / "model.safetensors")
    model = timm.create_model("otnn_mlp_snowflake", pretrained=True, pretrained_cfg_overlay={"file": given})
    assert model.pretrained_cfg["file"] == given


def test_timm_lists_as_pretrained_exactly_the_registry_models(monkeypatch):
    import timm

    from otnn_plugin import hub

    monkeypatch.delenv("OTNN_REGISTRY", raising=False)
    assert sorted(timm.list_models(["otnn_*", "unconstrained_*", "linear_*"], pretrained=True)) == hub.registry_models()
