"""Training throughput of ``otnn train`` in 1 process against 2 gloo CPU processes under ``torchrun``.

Workload: recipe ``fashionmnist_small_otnn`` (BCOP OTNN, global batch 128) on ``train_limit`` images for 2 epochs;
the figure is the second epoch's training images/s that the run logs (test scoring, start-up and the first epoch
left out). Candidates, run one after the other in each round: one process with 1 thread, one process with 2
threads, and ``torchrun --standalone --nproc_per_node 2`` (1 thread per process, torchrun's default). Ratios are
per-round speed-ups of the 2 processes; on a machine shared with other jobs they measure what was free.

Run: ``python -m benchmarks.bench_distributed [--quick]`` (data from ``$OTNN_DATA_DIR``); writes
``benchmarks/results/<machine>-distributed.json`` and ``.md``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from otnn_plugin._files import atomic_write_text
from otnn_plugin.train.trainer import LOG

from .__main__ import REPO, RESULTS, run_suite
from .report import render_markdown
from .schema import target
from .timing import ratio_summary, summarize

COMMAND = "python -m benchmarks.bench_distributed"
RECIPE = "fashionmnist_small_otnn"
SIZES = {"full": {"train_limit": 1024, "rounds": 3}, "quick": {"train_limit": 256, "rounds": 1}}
#: Candidate -> the command line before ``train``.
LAUNCHERS = {
    "1_process_1_thread": [sys.executable, "-m", "otnn_plugin", "--threads", "1"],
    "1_process_2_threads": [sys.executable, "-m", "otnn_plugin", "--threads", "2"],
    "2_processes": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    "-m", "otnn_plugin", "--threads", "1"],
}


def _epoch_seconds(launcher: list[str], train_limit: int, scratch: Path) -> float:
    """Seconds of the second epoch's training (train_limit / its logged images/s)."""
    out = scratch / f"run{len(list(scratch.iterdir()))}"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([*launcher, "train", "--recipe", RECIPE, "--epochs", "2", "--train-limit",
                           str(train_limit), "--test-limit", "64", "--device", "cpu", "--quiet", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(launcher[1:])} train failed: {(done.stderr.strip() or '?').splitlines()[-1]}")
    last = json.loads((out / LOG).read_text().splitlines()[-1])
    return train_limit / last["images_per_second"]


def run(quick: bool = False, device: str = "cpu") -> dict:
    if device != "cpu":
        raise ValueError(f"bench_distributed measures gloo CPU processes, not {device}")
    size = SIZES["quick" if quick else "full"]
    samples: dict[str, list[float]] = {name: [] for name in LAUNCHERS}
    with tempfile.TemporaryDirectory(prefix="otnn-bench-distributed-") as scratch:
        for _ in range(size["rounds"]):
            for name, launcher in LAUNCHERS.items():
                samples[name].append(_epoch_seconds(launcher, size["train_limit"], Path(scratch)))
    stats = {name: summarize(times) for name, times in samples.items()}
    case = {"stats": stats, "ratios": {
        "speedup_over_1_thread": ratio_summary(stats, "1_process_1_thread", "2_processes"),
        "speedup_over_2_threads": ratio_summary(stats, "1_process_2_threads", "2_processes"),
    }, "values": {f"{name}_images_per_s": size["train_limit"] / s["median_s"] for name, s in stats.items()}}
    what = f"`{RECIPE}`, batch 128, {size['train_limit']} images"
    targets = [
        target("cpu", "speedup_over_1_thread", f"images/s, 2 gloo processes (1 thread each) / 1 process with 1 "
               f"thread, {what}", "ideal: 2x"),
        target("cpu", "speedup_over_2_threads", "images/s, 2 gloo processes (1 thread each) / 1 process with 2 "
               "threads"),
        *(target("cpu", f"{name}_images_per_s", f"training images/s, {name.replace('_', ' ')}", kind="value")
          for name in LAUNCHERS),
    ]
    return {"name": "distributed", "command": COMMAND, "params": {"recipe": RECIPE, **size},
            "cases": {"cpu": case}, "targets": targets}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{SIZES['quick']['train_limit']} images, 1 round")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for <machine>-distributed.json and .md")
    args = parser.parse_args(argv)
    command = " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])])
    suite = run_suite(["distributed"], args.quick, "cpu", command, {"distributed": run})
    if suite["errors"]:
        print(f"error: {suite['errors']['distributed']}", file=sys.stderr)
        return 1
    path = args.out / f"{suite['machine']}-distributed{'-quick' if args.quick else ''}.json"
    atomic_write_text(path, json.dumps(suite, indent=1) + "\n")
    atomic_write_text(path.with_suffix(".md"), render_markdown(suite, source=os.path.relpath(path, REPO)))
    print(path.with_suffix(".md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
