"""The results of an evaluation: ``results.jsonl`` (one JSON object a line) and ``examples.npz``.

``results.jsonl`` starts with a ``config`` line (the config's content, hash and evaluated samples). Each run of
``otnn evaluate`` appends a ``session`` line (command, versions, device), then one ``unit`` line per model x
explainer x metric x batch of samples: per-sample scores (``null`` for a non-finite score) or the error, the
metric's wall time and that batch's explanation time. Lines are appended whole, flushed and synced, so a killed
run leaves complete lines plus at most one partial last line, which readers skip and the next run cuts off;
a cell's lines are its batches, and a later line for the same unit replaces an earlier one.

``examples.npz`` holds what the explanation figure (paper Fig. 3) shows: the first samples (``inputs``,
``indices``, ``targets``) and, for each ``<model>/<explainer>``, their channel-mean attributions.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._files import atomic_write_bytes, atomic_write_text
from .config import comparison_hash

__all__ = ["EXAMPLES", "RESULTS", "Results", "Unit", "append_record", "load_examples", "open_results",
           "read_results", "save_example", "weights_conflicts"]

RESULTS = "results.jsonl"
EXAMPLES = "examples.npz"
FORMAT = 1

#: A unit of work: ``(model, explainer, metric, batch)``.
Unit = tuple[str, str, str, int]


@dataclass
class Results:
    """A parsed ``results.jsonl``: the config line, the session lines and the latest line of every unit."""

    path: Path
    header: dict[str, Any]
    sessions: list[dict[str, Any]] = field(default_factory=list)
    units: dict[Unit, dict[str, Any]] = field(default_factory=dict)

    @property
    def config_hash(self) -> str:
        return self.header["config_hash"]

    @property
    def folder(self) -> Path:
        return self.path.parent


def _results_path(path: str | Path) -> Path:
    path = Path(path)
    return path / RESULTS if path.is_dir() else path


def _unit(record: dict[str, Any]) -> Unit:
    return record["model"], record["explainer"], record["metric"], record["batch"]


def read_results(path: str | Path) -> Results:
    """Parse a ``results.jsonl`` (or the folder holding one); a partial last line is skipped."""
    path = _results_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no evaluation results at {path}: run `otnn evaluate CONFIG --out {path.parent}`")
    text = path.read_text()
    lines = text.split("\n")[:-1]  # the part after the last newline is empty, or a line cut by a kill
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise ValueError(f"{path}, line {number}: not a JSON object; the file is damaged") from None
    if not records or records[0].get("event") != "config" or records[0].get("format") != FORMAT:
        raise ValueError(f"{path} is not an otnn results file (format {FORMAT}): its first line must be the config")
    results = Results(path, records[0])
    for record in records[1:]:
        if record.get("event") == "session":
            results.sessions.append(record)
        elif record.get("event") == "unit":
            results.units[_unit(record)] = record
    return results


def weights_conflicts(headers: list[dict[str, Any]]) -> list[str]:
    """The model labels whose weight fingerprints differ between ``headers`` (older results record none)."""
    seen: dict[str, str] = {}
    conflicts = []
    for header in headers:
        for label, fingerprint in header.get("weights", {}).items():
            if seen.setdefault(label, fingerprint) != fingerprint and label not in conflicts:
                conflicts.append(label)
    return conflicts


def _shard_text(header: dict[str, Any]) -> str:
    shard = header.get("shard")
    return "the whole run" if shard is None else f"shard {shard[0]}/{shard[1]}"


def open_results(folder: Path, header: dict[str, Any]) -> Results:
    """The results in ``folder`` for the config of ``header``, created if absent, ready to append to.

    Raises ``ValueError`` when ``folder`` holds results of another comparison (other samples, seeds, explainers or
    metrics), of another device, or of other models than those ``header`` scores. A config that only adds models
    resumes the folder: score the new ones into folders of their own.
    """
    path = Path(folder) / RESULTS
    if path.exists() and not path.is_file():
        raise ValueError(f"{path} exists and is not a file")
    if not path.exists():
        atomic_write_text(path, json.dumps({"event": "config", "format": FORMAT, **header}) + "\n")
        return read_results(path)
    results = read_results(path)
    stored, asked = results.header["config"], header["config"]
    held_comparison = comparison_hash(stored)
    if held_comparison != comparison_hash(asked):
        if held_comparison == comparison_hash({key: value for key, value in asked.items() if key != "plan"}):
            raise ValueError(f"{path} holds results of this config seeded the plan-1 way (before paired seeds): add "
                             "plan: 1 to the config to resume them, or pass another --out")
        raise ValueError(
            f"{path} holds results of another config (hash {results.config_hash}, this one {header['config_hash']}): "
            "pass another --out, or delete that folder to start over"
        )
    if stored.get("device") != asked.get("device"):
        raise ValueError(f"{path} holds results computed with device {stored.get('device')!r}, not "
                         f"{asked.get('device')!r} (devices draw different random numbers): resume with --device "
                         f"{stored.get('device')}, or pass another --out")
    held, scoring = set(results.header.get("weights") or {}), set(header.get("weights") or {})
    if scoring - held:
        raise ValueError(f"{path} holds results of {', '.join(sorted(held))}, not of "
                         f"{', '.join(sorted(scoring - held))}: score those into their own folder (--models ... --out)")
    changed = sorted(label for label in scoring if stored["models"].get(label) != asked["models"].get(label))
    if changed:
        raise ValueError(f"{path} holds results of another {', '.join(changed)} (its model, weights or arguments "
                         "changed in the config): pass another --out, or delete that folder to start over")
    if any(results.header[key] != header[key] for key in ("indices", "targets")):
        raise ValueError(f"{path} holds results of the same config on other samples or targets (drawn by another "
                         "otnn-plugin version): pass another --out, or delete that folder to start over")
    if results.header.get("shard") != header.get("shard"):
        held, asked = (_shard_text(h) for h in (results.header, header))
        raise ValueError(f"{path} holds {held}, not {asked}: give each shard its own --out")
    changed = weights_conflicts([results.header, header])
    if changed:
        raise ValueError(f"{path} holds results of other weights for {', '.join(changed)} (their fingerprint "
                         "changed since the run began): pass another --out, or delete that folder to start over")
    size = path.stat().st_size
    complete = path.read_bytes().rfind(b"\n") + 1
    if complete < size:  # a line cut by a kill: drop it before appending
        with open(path, "r+b") as handle:
            handle.truncate(complete)
    return results


def append_record(results: Results, record: dict[str, Any]) -> None:
    """Append one line to the results file, flushed and synced; unit lines also update ``results.units``."""
    line = json.dumps(record, allow_nan=False) + "\n"
    with open(results.path, "a") as handle:
        handle.write(line)
        handle.flush()
        os.fsync(handle.fileno())
    if record.get("event") == "unit":
        results.units[_unit(record)] = record
    elif record.get("event") == "session":
        results.sessions.append(record)


def load_examples(folder: str | Path) -> dict[str, np.ndarray]:
    """The arrays of ``examples.npz`` in ``folder`` (empty when there is none)."""
    path = Path(folder) / EXAMPLES
    if not path.is_file():
        return {}
    with np.load(path) as arrays:
        return {key: arrays[key] for key in arrays.files}


def save_example(folder: Path, key: str, attributions: np.ndarray, samples: dict[str, np.ndarray]) -> None:
    """Add the channel-mean ``attributions`` ``(n, C, H, W)`` of ``key`` (``model/explainer``) and the ``samples``
    arrays (``inputs``, ``indices``, ``targets``) to ``examples.npz``, rewritten atomically."""
    arrays = {**load_examples(folder), **samples, key: attributions.mean(1).astype(np.float32)}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    atomic_write_bytes(Path(folder) / EXAMPLES, buffer.getvalue())
