"""A content-addressed on-disk cache of computed arrays, shared by processes and runs.

Searches run many processes (``--jobs``, several seeds, resumed runs) that would
each recompute the same expensive, deterministic tables (regime-detector chains).
``cached_array`` stores such a table as ``<cache dir>/<namespace>-<sha256>.npy``
where the hash covers the caller's key (data fingerprint and every parameter the
value depends on), the source code of the module that computes it, and the
numpy/numba versions -- so editing the code or upgrading a library can never
serve a stale result. Writes are atomic (temporary file + rename), so concurrent
processes at worst compute the same value twice.

Directory: ``$GEMSEARCH_CACHE`` (default ``~/.cache/gemsearch``); set it to ``off``
to disable. Safe to delete at any time.

Sealing: the run drivers score holdouts inside :func:`no_writes`, so no table computed
from holdout prices is ever written where a later searcher's process could read it.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from contextlib import contextmanager
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Callable, Hashable, Iterator

import numpy as np


_WRITES = [True]
"""Whether :func:`cached_array` may write (switched off inside :func:`no_writes`)."""


@contextmanager
def no_writes() -> Iterator[None]:
    """Within the block, read the cache but write nothing to it (holdout scoring: see the module docstring)."""
    _WRITES.append(False)
    try:
        yield
    finally:
        _WRITES.pop()


def cache_dir() -> Path | None:
    """The cache directory, or None when disabled (``GEMSEARCH_CACHE=off``)."""
    setting = os.environ.get("GEMSEARCH_CACHE", str(Path.home() / ".cache" / "gemsearch"))
    return None if setting.lower() in ("off", "0", "") else Path(setting)


@lru_cache(maxsize=None)
def _code_hash(module: str) -> str:
    digest = hashlib.sha256(Path(sys.modules[module].__file__).read_bytes())
    for package in ("numpy", "numba"):
        try:
            digest.update(f"{package}={version(package)}".encode())
        except PackageNotFoundError:
            pass
    return digest.hexdigest()


def cached_array(namespace: str, module: str, key: Hashable, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``'s result, from disk when an equal ``key`` was computed by the same code of ``module``."""
    directory = cache_dir()
    if directory is None:
        return compute()
    name = hashlib.sha256(f"{_code_hash(module)}|{key!r}".encode()).hexdigest()
    path = directory / f"{namespace}-{name}.npy"
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        pass  # missing or unreadable (e.g. truncated by a crash): recompute and overwrite
    value = compute()
    if not _WRITES[-1]:
        return value
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as handle:
            np.save(handle, value, allow_pickle=False)
        os.replace(handle.name, path)
    except OSError:
        pass  # a read-only or full disk only costs speed
    return value
