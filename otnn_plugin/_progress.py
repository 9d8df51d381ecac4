"""Progress bars that redraw in place on a terminal and stay short in log files."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterable, Iterator

from tqdm.auto import tqdm

__all__ = ["progress_bar", "datasets_bars_hidden"]

#: Seconds between two redraws when stderr is a file or a pipe (a terminal redraws every 0.1 s).
LOG_INTERVAL_S = 60.0


class _LogBar(tqdm):
    """A bar for log files: new postfixes and descriptions wait for the next timed redraw instead of forcing one."""

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **kwargs) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(iterable: Iterable | None = None, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, off when not ``enabled``; redrawn at most once a minute when stderr is not a
    terminal (postfix and description updates included), so that a run writing to a log adds a few lines, not
    thousands of carriage-return frames."""
    if sys.stderr.isatty():
        return tqdm(iterable, disable=not enabled, mininterval=0.1, **kwargs)
    return _LogBar(iterable, disable=not enabled, mininterval=LOG_INTERVAL_S, **kwargs)


@contextlib.contextmanager
def datasets_bars_hidden(hidden: bool = True) -> Iterator[None]:
    """Hide the Hugging Face ``datasets`` progress bars (e.g. "Saving the dataset" while an Arrow cache is built) in
    the body, when ``hidden``: a ``--quiet`` command prints none of its own bars, nor its libraries'."""
    if not hidden:
        yield
        return
    import datasets

    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if shown:
            datasets.enable_progress_bars()
