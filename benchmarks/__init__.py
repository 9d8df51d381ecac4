"""Performance suite: every figure is a ratio of two implementations timed side by side in one run."""
