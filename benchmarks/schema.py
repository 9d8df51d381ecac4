"""What every benchmark returns and what ``python -m benchmarks`` writes; :func:`validate` checks both.

A benchmark result::

    {"name": "groupsort2", "command": "python -m benchmarks.bench_groupsort", "params": {...},
     "cases": {case: {"stats": {candidate: timing.summarize(...)}, "ratios": {key: timing.ratio_summary(...)},
                      "values": {key: number}}},      # values: optional, figures that are not timings
     "targets": [target(...), ...]}                    # the rows of the performance table

A suite file: ``{"schema": SCHEMA, "machine", "quick", "command", "started", "seconds", "environment",
"load_average": {"before", "after"}, "benchmarks": {name: result}, "errors": {name: message}}``.
"""
from __future__ import annotations

import math
from typing import Any

__all__ = ["SCHEMA", "OPERATORS", "target", "met", "validate_result", "validate"]

SCHEMA = 1
#: How a measured figure is held against its bound.
OPERATORS = {"<=": lambda value, bound: value <= bound, ">=": lambda value, bound: value >= bound}
_STATS = ("median_s", "min_s", "max_s", "iqr_s", "samples_s")
_RATIO = ("median", "q1", "q3", "of_medians", "numerator", "denominator")
_SUITE = ("schema", "machine", "quick", "command", "started", "seconds", "environment", "load_average",
          "benchmarks", "errors")


def target(case: str, figure: str, what: str, anchor: str = "-", op: str | None = None,
           bound: float | None = None, kind: str = "ratio") -> dict[str, Any]:
    """One row of the table: ``figure`` (a key of the case's ``ratios``, or of its ``values`` when
    ``kind="value"``) held against ``op bound``; ``op=None`` reports the figure without a target."""
    if kind not in ("ratio", "value"):
        raise ValueError(f"kind must be 'ratio' or 'value', got {kind!r}")
    if (op is None) != (bound is None) or (op is not None and op not in OPERATORS):
        raise ValueError(f"a target needs both op (one of {', '.join(OPERATORS)}) and bound, or neither; "
                         f"got op={op!r}, bound={bound!r}")
    return {"case": case, "figure": figure, "kind": kind, "what": what, "anchor": anchor, "op": op, "bound": bound}


def _figure(result: dict[str, Any], row: dict[str, Any]) -> float | None:
    case = result["cases"][row["case"]]
    if row["kind"] == "ratio":
        return case["ratios"][row["figure"]]["median"]
    return case.get("values", {}).get(row["figure"])


def met(result: dict[str, Any], row: dict[str, Any]) -> bool | None:
    """Whether the figure of ``row`` meets its bound; ``None`` without a bound or without a figure."""
    value = _figure(result, row)
    if row["op"] is None or value is None:
        return None
    return OPERATORS[row["op"]](value, row["bound"])


def _require(mapping: Any, keys: tuple[str, ...], where: str) -> None:
    if not isinstance(mapping, dict):
        raise ValueError(f"{where} must be a mapping, got {type(mapping).__name__}")
    missing = [key for key in keys if key not in mapping]
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}")


def _positive(value: Any, where: str) -> None:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{where} must be a finite non-negative number, got {value!r}")


def validate_result(result: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first place where ``result`` breaks the benchmark schema."""
    _require(result, ("name", "command", "params", "cases", "targets"), "benchmark result")
    name = result["name"]
    for case_name, case in result["cases"].items():
        where = f"{name}.cases.{case_name}"
        _require(case, ("stats", "ratios"), where)
        for candidate, stats in case["stats"].items():
            _require(stats, _STATS, f"{where}.stats.{candidate}")
            for key in _STATS[:-1]:
                _positive(stats[key], f"{where}.stats.{candidate}.{key}")
        for key, summary in case["ratios"].items():
            _require(summary, _RATIO, f"{where}.ratios.{key}")
            for field in ("median", "q1", "q3", "of_medians"):
                _positive(summary[field], f"{where}.ratios.{key}.{field}")
            for field in ("numerator", "denominator"):
                if summary[field] not in case["stats"]:
                    raise ValueError(f"{where}.ratios.{key}.{field} names {summary[field]!r}, which was not timed")
    for row in result["targets"]:
        _require(row, ("case", "figure", "kind", "what", "anchor", "op", "bound"), f"{name}.targets")
        if row["case"] not in result["cases"]:
            raise ValueError(f"{name}: a target names case {row['case']!r}, which the result lacks")
        if row["kind"] == "ratio" and row["figure"] not in result["cases"][row["case"]]["ratios"]:
            raise ValueError(f"{name}: a target names ratio {row['figure']!r}, which case {row['case']!r} lacks")


def validate(suite: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first place where a suite file breaks the schema."""
    _require(suite, _SUITE, "suite results")
    if suite["schema"] != SCHEMA:
        raise ValueError(f"suite results have schema {suite['schema']!r}; this code reads schema {SCHEMA}")
    _require(suite["load_average"], ("before", "after"), "load_average")
    for name, result in suite["benchmarks"].items():
        if result.get("name") != name:
            raise ValueError(f"benchmark {name!r} holds a result named {result.get('name')!r}")
        validate_result(result)
