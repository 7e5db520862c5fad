"""The one in-memory form of market data: ``Candles``.

A ``Candles`` holds daily OHLCV candles of a token universe as ``days x tokens``
float64 matrices aligned to ``dates`` (UTC calendar days, ``datetime64[D]``,
sorted and unique) and ``tokens`` (names such as ``"BTCUSDT"``). NaN means "no
candle that day": not yet listed, delisted, or a gap. A token exists on a day
only if it has a candle that day (point-in-time universe).

Arrays are sealed on construction: copied into immutable buffers (``bytes``), so
neither the arrays nor their ``.base`` can be made writable again, the caller's
input arrays stay the caller's, and a slice (``between``, ``head``, ``select``)
keeps no reference to the rows and tokens it left out (the holdout of a universe
cut at the search window is not reachable through ``close.base``). A ``Candles``
can therefore be used as a cache key through its :attr:`fingerprint` without any
risk of a stale cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import weakref
from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
"""The price/volume matrices every ``Candles`` carries, in tidy-column order."""

REGIME_NAMES: tuple[str, ...] = ("bull", "bear", "ranging")
"""Regime labels; ``Candles.regimes`` stores indices into this tuple."""


class UnknownTokenError(KeyError):
    """A token was requested that is not in the universe."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else "unknown token"


def as_day(value: object) -> np.datetime64:
    """Parse a date-like value (``"2021-01-01"``, ``datetime``, ``datetime64``) to ``datetime64[D]``."""
    try:
        return np.datetime64(pd.Timestamp(value).date(), "D")
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a date: {value!r}") from exc


_SEALED: "weakref.WeakValueDictionary[int, np.ndarray]" = weakref.WeakValueDictionary()
"""The flat arrays :func:`_frozen` created over immutable ``bytes``, by ``id`` (to recognise their views)."""


def _frozen(array: np.ndarray) -> np.ndarray:
    """``array`` sealed: read-only, C-contiguous, over an immutable ``bytes`` buffer of exactly its size.

    A view that covers the whole of a buffer sealed earlier (e.g. what ``between`` slices when it
    cuts nothing) is returned as it is; anything else is copied once. Unlike ``setflags(write=False)``
    alone, the result cannot be made writable again (numpy refuses for memory owned by ``bytes``,
    also through ``.base``), and it keeps no larger array reachable through ``.base``.
    """
    owner = array.base
    if (isinstance(owner, np.ndarray) and _SEALED.get(id(owner)) is owner and owner.nbytes == array.nbytes
            and array.flags.c_contiguous):
        return array
    data = np.ascontiguousarray(array)
    flat = np.frombuffer(data.tobytes(), dtype=data.dtype)
    _SEALED[id(flat)] = flat
    return flat.reshape(data.shape)


@dataclass(frozen=True, eq=False)
class Candles:
    """Daily candles of a token universe as ``days x tokens`` matrices.

    Attributes:
        dates: ``(days,)`` ``datetime64[D]``, strictly increasing UTC days.
        tokens: token names, one per column.
        open, high, low, close: ``(days, tokens)`` float64 prices in quote currency
            (USDT for Binance pairs); NaN where the token has no candle that day.
        volume: ``(days, tokens)`` float64 base-asset volume; NaN where no candle.
        name: a label for reports (universe name or file name).
        regimes: optional ``(days,)`` int8 true market regime (index into
            :data:`REGIME_NAMES`), known only for synthetic universes.
        meta: free-form, read-only facts about the universe (e.g. token kinds
            ``{"PAXGUSDT": "gold"}`` under ``meta["kinds"]``, generator seed).
    """

    dates: np.ndarray
    tokens: tuple[str, ...]
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    name: str = "candles"
    regimes: np.ndarray | None = None
    meta: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dates = np.asarray(self.dates).astype("datetime64[D]", copy=False)
        tokens = tuple(str(t) for t in self.tokens)
        if len(set(tokens)) != len(tokens):
            raise ValueError(f"{self.name}: duplicate token names")
        if dates.ndim != 1:
            raise ValueError(f"{self.name}: dates must be one-dimensional")
        if dates.size > 1 and not np.all(np.diff(dates).astype(np.int64) > 0):
            raise ValueError(f"{self.name}: dates must be strictly increasing (sorted, unique)")
        object.__setattr__(self, "dates", _frozen(dates))
        object.__setattr__(self, "tokens", tokens)
        shape = (dates.size, len(tokens))
        for name in FIELDS:
            array = np.asarray(getattr(self, name), dtype=np.float64)
            if array.shape != shape:
                raise ValueError(f"{self.name}: {name} has shape {array.shape}, expected {shape} (days x tokens)")
            object.__setattr__(self, name, _frozen(array))
        if self.regimes is not None:
            regimes = np.asarray(self.regimes, dtype=np.int8)
            if regimes.shape != (dates.size,):
                raise ValueError(f"{self.name}: regimes must have shape ({dates.size},)")
            object.__setattr__(self, "regimes", _frozen(regimes))
        object.__setattr__(self, "meta", dict(self.meta))

    def __reduce__(self) -> tuple:
        """Pickle/copy through the constructor, so an unpickled or deep-copied ``Candles`` is sealed too."""
        return (type(self), (self.dates, self.tokens, *(getattr(self, name) for name in FIELDS), self.name,
                             self.regimes, self.meta))

    # ------------------------------------------------------------------ shape
    @property
    def n_days(self) -> int:
        return int(self.dates.size)

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def shape(self) -> tuple[int, int]:
        """``(days, tokens)``."""
        return self.n_days, self.n_tokens

    @cached_property
    def listed(self) -> np.ndarray:
        """``(days, tokens)`` bool: the token has a candle that day."""
        return _frozen(~np.isnan(self.close))

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 over dates, tokens and all matrices: equal data, equal key."""
        digest = hashlib.sha256()
        digest.update(self.dates.view(np.int64).tobytes())
        digest.update("\x1f".join(self.tokens).encode())
        for name in FIELDS:
            digest.update(getattr(self, name).tobytes())
        if self.regimes is not None:
            digest.update(self.regimes.tobytes())
        return digest.hexdigest()

    def column(self, token: str) -> int:
        """Column index of ``token``; :class:`UnknownTokenError` if absent."""
        try:
            return self._column_index[token]
        except KeyError:
            raise UnknownTokenError(f"{self.name}: unknown token {token!r}") from None

    @cached_property
    def _column_index(self) -> dict[str, int]:
        return {token: i for i, token in enumerate(self.tokens)}

    # ---------------------------------------------------------------- slicing
    def _take(self, rows: slice | np.ndarray, cols: slice | np.ndarray | None = None) -> "Candles":
        cols = slice(None) if cols is None else cols
        tokens = tuple(np.asarray(self.tokens, dtype=object)[cols]) if self.tokens else ()
        return Candles(
            dates=self.dates[rows],
            tokens=tokens,
            **{name: getattr(self, name)[rows][:, cols] for name in FIELDS},
            name=self.name,
            regimes=None if self.regimes is None else self.regimes[rows],
            meta=self.meta,
        )

    def between(self, start: object | None = None, end: object | None = None) -> "Candles":
        """Days with ``start <= date <= end`` (both inclusive, either may be None)."""
        lo = 0 if start is None else int(np.searchsorted(self.dates, as_day(start), side="left"))
        hi = self.n_days if end is None else int(np.searchsorted(self.dates, as_day(end), side="right"))
        return self._take(slice(lo, max(lo, hi)))

    def head(self, n_days: int) -> "Candles":
        """The first ``n_days`` days (everything known at the end of day ``n_days - 1``)."""
        return self._take(slice(0, max(0, int(n_days))))

    def select(self, tokens: Iterable[str]) -> "Candles":
        """A token subset, in the given order; unknown names raise :class:`UnknownTokenError`."""
        wanted = list(tokens)
        missing = [t for t in wanted if t not in self._column_index]
        if missing:
            raise UnknownTokenError(f"{self.name}: unknown token(s) {missing}; the universe has {self.n_tokens} tokens")
        return self._take(slice(None), np.array([self._column_index[t] for t in wanted], dtype=np.intp))

    def sealed(self, end: object, name: str | None = None) -> "Candles":
        """What is knowable at the close of day ``end``: nothing after it, in the arrays or the metadata.

        Days after ``end`` are cut; tokens without a candle up to ``end`` are dropped (their names
        would announce future listings); ``meta`` keeps only ``kinds`` (of the kept tokens) and the
        ``listed``/``delisted`` dates up to ``end``: a generator seed or universe name, which would
        regenerate the future, and later listing events are removed. ``name`` replaces the label
        (e.g. a problem instance's id instead of a synthetic universe's name).
        """
        cut = self.between(None, end).drop_unlisted()
        limit = str(as_day(end))
        kept = set(cut.tokens)
        meta: dict[str, object] = {}
        for key in ("listed", "delisted"):
            events = self.meta.get(key)
            if isinstance(events, Mapping):
                meta[key] = {t: d for t, d in events.items() if t in kept and str(d) <= limit}
        kinds = self.meta.get("kinds")
        if isinstance(kinds, Mapping):
            meta["kinds"] = {t: k for t, k in kinds.items() if t in kept}
        return dataclasses.replace(cut, name=self.name if name is None else name, meta=meta)

    def drop_unlisted(self) -> "Candles":
        """Drop tokens that have no candle at all in this range."""
        keep = np.flatnonzero(self.listed.any(axis=0))
        return self._take(slice(None), keep)

    def day_index(self, date: object) -> int:
        """Index of the last day ``<= date``; ``ValueError`` if ``date`` precedes the first day."""
        i = int(np.searchsorted(self.dates, as_day(date), side="right")) - 1
        if i < 0:
            raise ValueError(f"{self.name}: {date} is before the first day {self.dates[0]}")
        return i

    # ------------------------------------------------------------ conversion
    def to_frame(self) -> pd.DataFrame:
        """Tidy long frame ``token, date, open, high, low, close, volume`` (listed days only)."""
        day, col = np.nonzero(self.listed)
        frame = pd.DataFrame(
            {
                "token": np.asarray(self.tokens, dtype=object)[col] if self.tokens else np.array([], dtype=object),
                "date": self.dates[day],
                **{name: getattr(self, name)[day, col] for name in FIELDS},
            }
        )
        return frame.sort_values(["token", "date"], kind="stable").reset_index(drop=True)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, name: str = "candles", **kwargs: object) -> "Candles":
        """Pivot a tidy frame with columns ``token, date`` (``datetime64[D]``-like) and :data:`FIELDS`.

        The frame must already be validated (one row per token and day); the
        loaders in :mod:`data.loaders` do that and report bad rows.
        """
        dates = np.unique(np.asarray(frame["date"]).astype("datetime64[D]"))
        tokens = sorted(frame["token"].astype(str).unique())
        row = np.searchsorted(dates, np.asarray(frame["date"]).astype("datetime64[D]"))
        col = np.searchsorted(np.asarray(tokens, dtype=object), frame["token"].astype(str).to_numpy())
        matrices = {}
        for field_name in FIELDS:
            matrix = np.full((dates.size, len(tokens)), np.nan)
            matrix[row, col] = frame[field_name].to_numpy(dtype=np.float64)
            matrices[field_name] = matrix
        return cls(dates=dates, tokens=tuple(tokens), name=name, **matrices, **kwargs)

    def __repr__(self) -> str:
        span = f"{self.dates[0]}..{self.dates[-1]}" if self.n_days else "empty"
        return f"Candles({self.name!r}, {self.n_days} days x {self.n_tokens} tokens, {span})"
