"""Where a dataset comes from: an explicit ``data_dir``, else ``$OTNN_DATA_DIR``, else the Hugging Face hub.

Local files are turned into Arrow once and cached under ``$OTNN_CACHE_DIR`` (default ``~/.cache/otnn_plugin``),
keyed by the path, size and modification time of every source file, so that an edited file rebuilds its cache and
the cache of its previous version is removed.
The hub path is ``datasets.load_dataset``, which keeps its own cache. It runs in datasets' offline mode (that cache
only) when :func:`offline_mode` says so or the hub does not answer a first connection, so that a machine without
network fails, or reads the cache, at once instead of after half a minute of retries.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Callable, Iterable, Iterator

import datasets

DATA_DIR_ENV = "OTNN_DATA_DIR"
CACHE_DIR_ENV = "OTNN_CACHE_DIR"
_OFFLINE_ENVS = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
_TRUE_VALUES = {"1", "ON", "TRUE", "YES"}
#: Bump when the layout of a cached dataset changes, so that old caches are not read.
CACHE_VERSION = 2


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """``cache_dir``, else ``$OTNN_CACHE_DIR``, else ``~/.cache/otnn_plugin``."""
    return Path(cache_dir or os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "otnn_plugin").expanduser()


def offline_mode() -> str | None:
    """The offline variable that is set (e.g. ``"HF_HUB_OFFLINE=1"``), or None: the one test of offline mode for
    data and weights. A variable is set when it is 1, ON, TRUE or YES in any case, as huggingface_hub reads it."""
    for name in _OFFLINE_ENVS:
        if os.environ.get(name, "").upper() in _TRUE_VALUES:
            return f"{name}={os.environ[name]}"
    return None


@contextlib.contextmanager
def _datasets_offline() -> Iterator[None]:
    """Run the body in datasets' offline mode, which it reads from ``datasets.config`` at every call."""
    saved, datasets.config.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE, True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE = saved


def file_identity(paths: Iterable[Path], text: str = "") -> str:
    """A hash of every file's absolute path, size and modification time, and of ``text`` (the content of an index
    file already read, so that an edit within the clock's resolution is still seen). FileNotFoundError names a
    missing file."""
    digest = hashlib.sha256(f"{CACHE_VERSION}\n{text}".encode())
    for path in paths:
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is missing") from None
        digest.update(f"{os.path.abspath(path)}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def cached(
    tag: str, source: Iterable[Path], key: str, build: Callable[[], datasets.Dataset], cache_dir=None
) -> datasets.Dataset:
    """The dataset cached as ``<cache root>/<tag>-<source>-<key>``, built by ``build()`` and saved there first if
    absent. ``source`` is the files or folders the data comes from; ``key`` their :func:`file_identity`.

    The build is saved to a temporary folder and renamed into place, so that an interrupted build or two processes
    building at once never leave a half-written cache. Caches of the same tag and source with another key were built
    from earlier versions of the files: they are removed once the new one is in place.
    """
    root = cache_root(cache_dir)
    origin = hashlib.sha256("\0".join(os.path.abspath(p) for p in source).encode()).hexdigest()[:8]
    prefix = f"{tag}-{origin}-"
    path = root / f"{prefix}{key[:20]}"
    if not (path / "state.json").is_file():
        root.mkdir(parents=True, exist_ok=True)
        staging = root / f".{path.name}.{uuid.uuid4().hex}.tmp"
        try:
            build().save_to_disk(str(staging))
            staging.rename(path)
        except OSError:
            if not (path / "state.json").is_file():  # not a lost race with another builder: a real error
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        stale = re.compile(re.escape(prefix) + "[0-9a-f]{20}")
        for old in root.iterdir():
            if old != path and stale.fullmatch(old.name):
                shutil.rmtree(old, ignore_errors=True)
    return datasets.load_from_disk(str(path))


def locate(name: str, folder: str, marker: str, data_dir: str | os.PathLike | None) -> tuple[Path | None, list[str]]:
    """The local folder of dataset ``name``, and a note of every place looked at.

    A root (``data_dir``, else ``$OTNN_DATA_DIR``) holds the dataset as ``<root>/<folder>``, or is the dataset folder
    itself if it contains a file matching the glob ``marker``. An explicit ``data_dir`` that holds neither raises
    FileNotFoundError; a ``$OTNN_DATA_DIR`` folder that lacks this dataset returns None, so that the hub is tried
    next, but one that does not exist raises FileNotFoundError (a typo must not send us to the hub unseen).
    """
    explicit = data_dir is not None
    root = data_dir if explicit else os.environ.get(DATA_DIR_ENV)
    if not root:
        return None, ["data_dir: not given", f"{DATA_DIR_ENV}: not set"]
    root = Path(root).expanduser()
    if not explicit and not root.is_dir():
        raise FileNotFoundError(f"{DATA_DIR_ENV}={root} is not a folder: set it to the folder that holds {folder}/ "
                                "(or unset it to use the Hugging Face hub)")
    if (root / folder).is_dir():
        return root / folder, []
    if any(root.glob(marker)):
        return root, []
    looked = f"{root / folder}/ and {root}/{marker}"
    if explicit:
        raise FileNotFoundError(
            f"{name}: no local data in data_dir={root}: looked for {looked}; pass the folder that holds {folder}/ "
            f"(or {folder}/ itself)"
        )
    return None, ["data_dir: not given", f"{DATA_DIR_ENV}={root}: no {looked}"]


def from_hub(name: str, repo: str, split: str, tried: list[str], fix: str) -> datasets.Dataset:
    """``datasets.load_dataset(repo, split=split)``, offline (datasets' cache only) when :func:`offline_mode` says so
    or the hub is unreachable; when it fails, one FileNotFoundError naming all that was tried."""
    from ..hub import hub_reachable

    offline = offline_mode() or (None if hub_reachable() else "the hub is unreachable")
    try:
        with _datasets_offline() if offline else contextlib.nullcontext():
            return datasets.load_dataset(repo, split=split)
    except OSError as err:  # ConnectionError, OfflineModeIsEnabled, DatasetNotFoundError, HTTP errors
        hub = f"hub {repo!r}: {type(err).__name__}: {err}" + (f" (offline mode: {offline})" if offline else "")
        raise FileNotFoundError(
            f"{name} {split!r}: no local data and the Hugging Face hub failed. Tried: {'; '.join([*tried, hub])}. "
            f"Fix: pass data_dir= (or set {DATA_DIR_ENV}) to a folder holding {fix}, or load it once online so that "
            "datasets caches it."
        ) from err
