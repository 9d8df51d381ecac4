"""``python -m benchmarks``: every benchmark in one process, results in ``benchmarks/results/<machine>.json`` + ``.md``.

Each benchmark module's ``run(quick=..., device=...)`` returns a result in the shape :mod:`benchmarks.schema`
describes; a benchmark that raises is recorded under ``errors`` and the others still run (exit code 1 then).
``--quick`` runs tiny sizes in a few seconds (a smoke test of the suite, not figures to quote) and writes
``<machine>-quick.json``. The markdown table is :func:`benchmarks.report.render_markdown` of the JSON file.

Ratios hold up on a busy machine as long as the candidates share it alike, but every extra thread that waits on
a core held by another job adds a scheduling delay to each parallel operation: on a CPU shared with other work,
``--threads 1`` gives the steadier figures. The load average before and after is recorded with the results.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import re
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from otnn_plugin._environment import cpu_name
from otnn_plugin._files import atomic_write_text, check_output
from otnn_plugin._progress import progress_bar

from .report import render_markdown
from .schema import SCHEMA, target, validate_result
from .timing import ratio_summary

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parents[1]


def _explainers(quick: bool, device: str) -> dict[str, Any]:
    """``bench_explainers.run`` (random weights: costs do not depend on them) in the suite's result shape;
    ``quick``: two Fashion-MNIST images only."""
    bench = importlib.import_module("benchmarks.bench_explainers")
    raw = bench.run("random", device, batch=2 if quick else 32, repeats=2 if quick else 3,
                    datasets=("fashion_mnist",) if quick else tuple(bench.PAIRS))
    cases, targets = {}, []
    for pair in raw["pairs"]:
        for family, network in pair["networks"].items():
            if "skipped" in network:
                continue
            case = f"{pair['dataset']}/{family}"
            cases[case] = {
                "stats": network["stats"],
                "ratios": {"smoothgrad_over_transport": ratio_summary(network["stats"], "smoothgrad", "transport")},
                "values": {key: network[key] for key in ("unit_l2", "one_minus_spearman", "mean_gradient_norm")},
            }
            targets.append(target(case, "smoothgrad_over_transport", f"SmoothGrad (N = 50) / `transport`, "
                                  f"`{network['model']}`, {raw['batch']} images", "50 passes", ">=", 40.0))
    return {"name": "explainers", "command": "python -m benchmarks.bench_explainers",
            "params": {"weights": raw["weights"], "batch": raw["batch"], "device": device},
            "cases": cases, "targets": targets}


def _module_run(module: str, uses_device: bool = True) -> Callable[[bool, str], dict[str, Any]]:
    def run(quick: bool, device: str) -> dict[str, Any]:
        bench = importlib.import_module(f"benchmarks.{module}")
        return bench.run(quick=quick, device=device) if uses_device else bench.run(quick=quick)
    return run


#: Benchmark name -> ``run(quick, device)``. Modules are imported when run, so one broken module costs one row.
BENCHMARKS: dict[str, Callable[[bool, str], dict[str, Any]]] = {
    "groupsort2": _module_run("bench_groupsort"),
    "export_inference": _module_run("bench_export"),
    "training": _module_run("bench_train"),
    "explainers": _explainers,
    "rise": lambda quick, device: importlib.import_module("benchmarks.bench_explainers").run_rise(quick, device),
    "metrics_vs_quantus": _module_run("bench_metrics"),
    "dataset_epoch": _module_run("bench_data", uses_device=False),
    "evaluate_quick": lambda quick, device: importlib.import_module("benchmarks.bench_evaluate").run(),
    "evaluate_slices": lambda quick, device: importlib.import_module("benchmarks.bench_evaluate").run_slices(
        quick, device),
}


def _commit() -> str | None:
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def environment(device: str) -> dict[str, Any]:
    """Versions, threads and hardware the figures were measured with."""
    return {
        "python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
        "cpu": cpu_name(), "cores": os.cpu_count(), "device": device,
        "device_name": torch.cuda.get_device_name(device) if torch.device(device).type == "cuda" else None,
        "commit": _commit(),
    }


def machine_name(env: dict[str, Any]) -> str:
    """A file-name slug of the hardware: GPU name for CUDA runs, else CPU model and core count."""
    label = env["device_name"] or f"{env['cpu']} {env['cores']}cpu"
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")


def run_suite(names: list[str], quick: bool, device: str, command: str,
              benchmarks: dict[str, Callable[[bool, str], dict[str, Any]]] = BENCHMARKS) -> dict[str, Any]:
    """Run the benchmarks ``names`` (of ``benchmarks``) in order; the suite results (see :mod:`benchmarks.schema`)."""
    env = environment(device)
    started, began, load_before = datetime.now(timezone.utc), time.perf_counter(), list(os.getloadavg())
    results, errors = {}, {}
    for name in (bar := progress_bar(names, desc="benchmarks", unit="benchmark")):
        bar.set_postfix_str(name)
        try:
            result = benchmarks[name](quick, device)
            validate_result(result)
        except Exception as err:  # noqa: BLE001 -- one failing benchmark is reported, the others still run
            errors[name] = f"{type(err).__name__}: {err}"
            continue
        if result["name"] != name:
            errors[name] = f"ValueError: the benchmark returned a result named {result['name']!r}"
            continue
        results[name] = result
    return {
        "schema": SCHEMA, "machine": machine_name(env), "quick": quick, "command": command,
        "started": started.isoformat(timespec="seconds"), "seconds": time.perf_counter() - began,
        "environment": env, "load_average": {"before": load_before, "after": list(os.getloadavg())},
        "benchmarks": results, "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the suite runs, in seconds")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"benchmarks to run (default: all of "
                        f"{', '.join(BENCHMARKS)})")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <machine>.json and .md")
    parser.add_argument("--machine", help="name of the results files (default: from the hardware)")
    args = parser.parse_args(argv)
    try:
        names = args.only or list(BENCHMARKS)
        unknown = [name for name in names if name not in BENCHMARKS]
        if unknown:
            raise ValueError(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        if args.threads is not None:
            if args.threads < 1:
                raise ValueError(f"--threads must be a positive number, got {args.threads}")
            torch.set_num_threads(args.threads)
        if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--device {args.device} asked for, but this machine has no CUDA GPU: use --device cpu")
        check_output(args.out, folder=True)
        command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
        suite = run_suite(names, args.quick, args.device, command.strip())
        stem = (args.machine or suite["machine"]) + ("-quick" if args.quick else "")
        suite["machine"] = args.machine or suite["machine"]
        json_path = args.out / f"{stem}.json"
        atomic_write_text(json_path, json.dumps(suite, indent=1) + "\n")
        source = os.path.relpath(json_path, REPO) if json_path.resolve().is_relative_to(REPO) else str(json_path)
        atomic_write_text(json_path.with_suffix(".md"), render_markdown(suite, source=source))
    except (ValueError, KeyError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {json_path} and {json_path.with_suffix('.md').name}"
          + (f"; failed: {', '.join(suite['errors'])}" if suite["errors"] else ""))
    return 1 if suite["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
