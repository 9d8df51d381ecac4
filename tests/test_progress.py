"""Issue 19: progress bars redraw in place on a terminal and stay short in logs."""
from __future__ import annotations

import io

from otnn_plugin._progress import LOG_INTERVAL_S, progress_bar


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_few_frames_where_a_terminal_is_redrawn_often(monkeypatch):
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    bar = progress_bar(range(20000), desc="work", file=log)
    assert bar.mininterval == LOG_INTERVAL_S
    for _ in bar:
        pass
    assert log.getvalue().count("\r") <= 3  # the first and last frames
    log.truncate(0)
    bar = progress_bar(total=5000, file=log)
    for step in range(5000):  # as the trainer and the evaluation runner do at every step
        bar.set_description(f"batch {step}")
        bar.set_postfix(loss=f"{step:.4f}")
        bar.set_postfix_str(str(step))
        bar.update(1)
    bar.close()
    assert log.getvalue().count("\r") <= 3
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert progress_bar(range(3), file=io.StringIO()).mininterval == 0.1


def test_a_disabled_bar_writes_nothing(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    for _ in progress_bar(range(100), enabled=False, file=stream):
        pass
    assert stream.getvalue() == ""
