"""Fixed-shape numpy arrays to and from Arrow columns, without per-row Python work.

Images are stored as datasets' ``Array2D``/``Array3D`` and vectors (points) as fixed-size lists: explicit shapes that
iterate several times faster than the nested lists datasets infers from Python values.
"""
from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa
from datasets import Array2D, Array3D, Dataset, DatasetInfo, Features, List, Value
from datasets.table import InMemoryTable

_ARRAY_FEATURES = {2: Array2D, 3: Array3D}


def _flat(values: np.ndarray) -> pa.Array:
    """A 1-D Arrow view of a numpy array's buffer (no copy once contiguous)."""
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), values.size, [None, pa.py_buffer(values)])


def _array_column(values: np.ndarray) -> tuple[pa.Array, Array2D | Array3D]:
    shape = values.shape[1:]
    feature = _ARRAY_FEATURES[len(shape)](shape=shape, dtype=str(values.dtype))
    storage = _flat(values)
    for axis in range(values.ndim - 1, 0, -1):  # datasets stores ArrayXD as nested lists, innermost axis first
        offsets = np.arange(int(np.prod(values.shape[:axis])) + 1, dtype=np.int32) * values.shape[axis]
        storage = pa.ListArray.from_arrays(_flat(offsets), storage)
    return pa.ExtensionArray.from_storage(feature(), storage), feature


def build_dataset(
    columns: dict[str, np.ndarray | list], features: dict | None = None, fingerprint: str | None = None
) -> Dataset:
    """An in-memory dataset with explicit features.

    Arrays of 3 or 4 dimensions become ``Array2D``/``Array3D`` rows and 2-D arrays fixed-size lists; every other
    column takes its feature from ``features`` (e.g. ``ClassLabel``, ``Value("string")``). ``fingerprint`` defaults
    to a random one: datasets would otherwise hash the whole table.
    """
    features = dict(features or {})
    arrays = {}
    for name, values in columns.items():
        if isinstance(values, np.ndarray) and values.ndim >= 3:
            arrays[name], features[name] = _array_column(values)
        elif isinstance(values, np.ndarray) and values.ndim == 2:
            arrays[name] = pa.FixedSizeListArray.from_arrays(_flat(values), values.shape[1])
            features[name] = List(Value(str(values.dtype)), length=values.shape[1])
        else:
            arrays[name] = pa.array(values)
    features = Features({name: features[name] for name in columns})
    table = pa.table(arrays).cast(features.arrow_schema)
    info = DatasetInfo(features=features)
    return Dataset(InMemoryTable(table), info=info, fingerprint=fingerprint or uuid.uuid4().hex)


def _value_dtype(arrow_type: pa.DataType) -> np.dtype:
    if isinstance(arrow_type, pa.ExtensionType):
        arrow_type = arrow_type.storage_type
    while pa.types.is_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type):
        arrow_type = arrow_type.value_type
    return np.dtype(arrow_type.to_pandas_dtype())


def column_to_numpy(dataset: Dataset, name: str) -> np.ndarray:
    """Column ``name`` of an ``Array2D``/``Array3D``, fixed-size list or scalar feature as one (N, *shape) array."""
    feature = dataset.features[name]
    shape = tuple(getattr(feature, "shape", None) or ((feature.length,) if isinstance(feature, List) else ()))
    column = dataset.with_format("arrow")[:][name]  # applies any indices mapping left by shuffle() or select()
    parts = [np.empty((0, *shape), dtype=_value_dtype(column.type))]
    for chunk in column.chunks:
        flat = chunk.storage if isinstance(chunk, pa.ExtensionArray) else chunk
        for _ in shape:
            flat = flat.flatten()
        parts.append(flat.to_numpy(zero_copy_only=False).reshape(len(chunk), *shape))
    return np.concatenate(parts)  # one copy: writable, and owned by numpy rather than a memory-mapped file


def stack_columns(dataset: Dataset, names: list[str]) -> np.ndarray:
    """Scalar columns ``names`` side by side as one (N, len(names)) array, reading only those columns."""
    table = dataset.select_columns(names).with_format("arrow")[:]  # applies any indices mapping
    return np.stack([table.column(name).to_numpy() for name in names], axis=1)
