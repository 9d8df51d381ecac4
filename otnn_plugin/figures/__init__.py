"""The paper's figures as PNGs: the Koch snowflake demo (Fig. 2) and counterfactual sheets (Fig. 1, 4, 5).

:mod:`.snowflake` and :mod:`.sheets` build :class:`matplotlib.figure.Figure` objects; :func:`save_png` writes
one, and :func:`check_png_path` checks its path before any long work.
"""
from ._images import check_png_path, save_png

__all__ = ["check_png_path", "save_png"]
