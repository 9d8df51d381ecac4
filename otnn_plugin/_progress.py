"""Progress bars that redraw in place on a terminal and stay short in log files."""
from __future__ import annotations

import sys
from typing import Any, Iterable

from tqdm.auto import tqdm

__all__ = ["progress_bar"]

#: Seconds between two redraws when stderr is a file or a pipe (a terminal redraws every 0.1 s).
LOG_INTERVAL_S = 60.0


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when not ``enabled``; redrawn at most once a minute when stderr is not a
    terminal, so that a run writing to a log adds a few lines, not thousands of carriage-return frames."""
    interactive = sys.stderr.isatty()
    return tqdm(iterable, disable=not enabled, mininterval=0.1 if interactive else LOG_INTERVAL_S, **kwargs)
