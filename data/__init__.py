"""Market data: the ``Candles`` container, file loaders, fetchers, and the synthetic universes.

``load_universe(spec)`` is the one entry point drivers use: a named synthetic
universe (``synthetic``, ``synthetic-small``, ``bear-basket``) or a path to a data
file or folder.
"""

from __future__ import annotations

from pathlib import Path

from data.candles import REGIME_NAMES, Candles, UnknownTokenError
from data.validation import DataError


SURVIVORS = ":survivors"
"""Suffix of a universe spec that keeps only the tokens still listed on its last day (survivorship bias)."""


def survivors(candles: Candles) -> Candles:
    """The tokens with a candle on the last day: the universe a vendor's 'current list' would give."""
    alive = [t for t, listed in zip(candles.tokens, candles.listed[-1]) if listed] if candles.n_days else []
    return candles.select(alive)


def load_universe(spec: str, seed: int = 0) -> Candles:
    """A named synthetic universe drawn with ``seed``, or the candles in the file/folder ``spec``.

    ``"<spec>:survivors"`` keeps only the tokens still listed on the last day (see :func:`survivors`).
    """
    from data import loaders, synthetic

    if spec.endswith(SURVIVORS):
        return survivors(load_universe(spec[: -len(SURVIVORS)], seed=seed))
    if spec in synthetic.UNIVERSES:
        return synthetic.generate(spec, seed=seed)
    if Path(spec).exists():
        return loaders.load_path(spec)
    raise DataError(
        f"{spec!r} is neither a named universe ({', '.join(sorted(synthetic.UNIVERSES))}) nor an existing file or folder"
        f" (append {SURVIVORS!r} for its survivors only)"
    )


__all__ = ["Candles", "DataError", "REGIME_NAMES", "SURVIVORS", "UnknownTokenError", "load_universe", "survivors"]
