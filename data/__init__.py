"""Market data: the ``Candles`` container, file loaders, fetchers, and the synthetic universes.

``load_universe(spec)`` is the one entry point drivers use: a named synthetic
universe (``synthetic``, ``synthetic-small``, ``bear-basket``) or a path to a data
file or folder.
"""

from __future__ import annotations

from pathlib import Path

from data.candles import REGIME_NAMES, Candles, UnknownTokenError
from data.validation import DataError


def load_universe(spec: str, seed: int = 0) -> Candles:
    """A named synthetic universe drawn with ``seed``, or the candles in the file/folder ``spec``."""
    from data import loaders, synthetic

    if spec in synthetic.UNIVERSES:
        return synthetic.generate(spec, seed=seed)
    if Path(spec).exists():
        return loaders.load_path(spec)
    raise DataError(
        f"{spec!r} is neither a named universe ({', '.join(sorted(synthetic.UNIVERSES))}) nor an existing file or folder"
    )


__all__ = ["Candles", "DataError", "REGIME_NAMES", "UnknownTokenError", "load_universe"]
