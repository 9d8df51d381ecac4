"""Output paths: checked before any work, then written atomically (a reader sees the complete new file or the
previous one, never half of either). Errors name the path the user gave, never a temporary file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "check_output"]


def check_output(path: str | os.PathLike, folder: bool) -> Path:
    """``path`` as a ``Path`` if an output folder (``folder``) or file can be written there, else a ``ValueError``
    naming ``path``. Call it before any work. Nothing is created.

    The path must not be an existing file (for a folder) or folder (for a file), and the nearest existing folder on
    the way to it must let us create files: a temporary file without a name (unlinked at once) is the test, which
    also sees read-only file systems, ACLs and the like, where ``os.access`` guesses.
    """
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise ValueError(f"{path} is a file, not a folder: give a folder (created if absent)" if folder
                         else f"{path} is a folder, not a file: give a file path")
    start = path if folder else path.parent
    existing = next(p for p in (start, *start.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"cannot create {path}: {existing} is a file")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        raise ValueError(f"cannot write to {path}: {err.strerror} in {existing}") from None
    return path


def _naming(path: Path, err: OSError) -> OSError:
    """``err`` as one that names ``path``, not the temporary file beside it."""
    return OSError(err.errno, f"cannot write {path}: {err.strerror or err}")


def atomic_write(path: str | Path, write: Callable[[str], object]) -> None:
    """Run ``write(tmp_path)`` next to ``path``, fsync it, make it world-readable, then rename it over ``path``.

    An ``OSError`` names ``path``, not the temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as err:
        raise _naming(path, err) from None
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results, weights and figures are meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise _naming(path, err) from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
