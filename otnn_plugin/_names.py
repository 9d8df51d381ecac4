"""Errors for unknown names (models, losses, recipes, settings, metrics) that suggest the closest valid one."""
from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["unknown_name"]


def unknown_name(kind: str, name: object, valid: Iterable[str], context: str = "", listing: bool = True) -> ValueError:
    """A ``ValueError`` for an unknown ``name``, with the closest valid one (difflib) and, if asked, all of them."""
    valid = sorted(valid)
    close = difflib.get_close_matches(str(name), valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    choices = f"; valid: {', '.join(valid)}" if listing and valid else ""
    return ValueError(f"{context}unknown {kind} {name!r}{hint}{choices}")
