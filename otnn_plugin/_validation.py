"""Validated settings: the pydantic base of configs and recipes, and pydantic errors as one line."""
from __future__ import annotations

import importlib
from typing import Annotated, Any, Callable, Iterable, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from ._names import unknown_name

__all__ = ["DatasetName", "NonNegativeInt", "PositiveInt", "Settings", "check_keys", "one_line", "one_of", "validated"]

#: Integers as YAML writes them (no ``true`` for 1, no ``"3"``), with their bounds.
PositiveInt = Annotated[StrictInt, Field(ge=1)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]
Model = TypeVar("Model", bound=BaseModel)


def one_of(kind: str, valid: Callable[[], Iterable[str]], listing: bool = True) -> AfterValidator:
    """A pydantic validator: the value must be one of ``valid()`` (called when validating, so that the names load
    lazily), else an ``unknown_name`` error naming the closest one."""

    def check(value: str) -> str:
        names = list(valid())
        if value not in names:
            raise unknown_name(kind, value, names, listing=listing)
        return value

    return AfterValidator(check)


#: A dataset of ``otnn_plugin.data.list_datasets()``.
DatasetName = Annotated[str, one_of("dataset", lambda: importlib.import_module("otnn_plugin.data").list_datasets())]


class Settings(BaseModel):
    """A frozen pydantic model that refuses unknown keys (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


def check_keys(raw: dict, valid: Iterable[str], kind: str = "setting") -> None:
    """Refuse the first key of ``raw`` not in ``valid``, naming the closest valid one."""
    valid = list(valid)
    for key in raw:
        if key not in valid:
            raise unknown_name(kind, key, valid, listing=False)


def one_line(err: ValidationError, context: str = "") -> ValueError:
    """The first error of ``err`` as a one-line ``ValueError``: ``<context><where>: <what>``."""
    first = err.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "value_error":  # one of our validators: its message says what is wrong and how to fix it
        what = str(first["ctx"]["error"]) if "ctx" in first else first["msg"].removeprefix("Value error, ")
    else:
        what = f"{first['msg'][:1].lower()}{first['msg'][1:]}, got {_shown(first.get('input'))}"
    return ValueError(f"{context}{where + ': ' if where else ''}{what}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def validated(cls: type[Model], raw: Any, where: str = "", **options: Any) -> Model:
    """``cls.model_validate(raw, **options)``, its first error as a one-line ``ValueError`` prefixed by ``where``."""
    try:
        return cls.model_validate(raw, **options)
    except ValidationError as err:
        raise one_line(err, where) from None
