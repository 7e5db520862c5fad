"""The one validation path every loader and fetcher goes through.

A parser turns its input (CSV, Parquet, kline rows, DefiLlama JSON) into a *raw*
frame with one row per input row and the columns

* ``token``: token name (e.g. ``"BTCUSDT"``),
* ``time``: open time as Unix ms or µs (told apart by magnitude), an ISO date or
  datetime (UTC unless it carries an offset), or a ``datetime64`` value,
* ``open, high, low, close``: prices in quote currency, ``volume``: base-asset
  volume (for candle sources), or ``price`` (for price-point sources),
* ``line``: where the row is in its input (1-based; for a CSV the header is line 1),
* optionally ``close_time`` (Binance klines) and ``date`` (a redundant day column),
  which are checked against ``time``.

:func:`validate` checks it and returns a *tidy* frame ``token, date, open, high,
low, close, volume, line`` (``date`` is ``datetime64[D]``, one row per token and
UTC day), or raises :class:`DataError` naming the input, the line and the
problem. :func:`merge` unions tidy frames from several inputs. The decision table
(what is rejected, what is repaired) is in ``docs/reference/data.md``, "Loaders and validation".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from data.candles import FIELDS

DAY_MS = 86_400_000
"""One day in milliseconds."""

PRICES: tuple[str, ...] = ("open", "high", "low", "close")

_MS_RANGE = (1e11, 1e14)  # Unix ms from 1973-03-03 to 5138; above that up to 1e17 it is µs


class DataError(ValueError):
    """Bad market data: the message names the input, the line (or row) and the problem."""


@dataclass(frozen=True)
class Origin:
    """Where rows come from, for error messages.

    Attributes:
        name: the file (or e.g. ``"binance BTCUSDT"`` for fetched data).
        unit: what a row number counts: ``"line"`` (text files, header = line 1),
            ``"row"`` (Parquet), ``"price point"`` (DefiLlama JSON), ``"kline"``.
    """

    name: str
    unit: str = "line"

    def error(self, problem: str, at: int | None = None) -> DataError:
        """A :class:`DataError` ``"{name}: {unit} {at}: {problem}"`` (no location when ``at`` is None)."""
        where = f"{self.name}: " if at is None else f"{self.name}: {self.unit} {at}: "
        return DataError(where + problem)


def when(ms: int) -> str:
    """``"2024-01-02"`` for a midnight Unix-ms time, else ``"2024-01-02 01:00:00 UTC"``."""
    stamp = pd.Timestamp(int(ms), unit="ms")
    return str(stamp.date()) if ms % DAY_MS == 0 else f"{stamp} UTC"


class _Rows:
    """The rows of one input under validation; reports the first bad one by its line."""

    def __init__(self, origin: Origin, lines: np.ndarray) -> None:
        self.origin = origin
        self.lines = lines
        self.context: Callable[[int], str] | None = None  # "TOKEN day" once known

    def reject(self, bad: np.ndarray, problem: Callable[[int], str]) -> None:
        """Raise for the earliest row where ``bad`` holds; ``problem(i)`` describes row ``i``."""
        if not bad.any():
            return
        hits = np.flatnonzero(bad)
        first = int(hits[np.argmin(self.lines[hits])])
        text = problem(first)
        if self.context is not None:
            text += f" ({self.context(first)})"
        if hits.size > 1:
            text += f"; {hits.size - 1} more such {self.origin.unit}s"
        raise self.origin.error(text, at=int(self.lines[first]))


def _timestamps_ms(values: pd.Series, rows: _Rows, column: str) -> np.ndarray:
    """Unix ms (int64) from Unix ms/µs numbers, ISO dates/datetimes or ``datetime64`` values."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        stamps = pd.to_datetime(values, utc=True)
        number = pd.Series(np.nan, index=values.index)
    else:
        number = pd.to_numeric(values, errors="coerce")
        text = values.where(number.isna() & values.notna())
        stamps = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    rows.reject(values.isna().to_numpy(), lambda i: f"{column} is missing")
    n = number.to_numpy(dtype=np.float64)
    is_ms = (n >= _MS_RANGE[0]) & (n < _MS_RANGE[1])
    is_us = (n >= _MS_RANGE[1]) & (n < _MS_RANGE[1] * 1000)
    from_stamps = stamps.notna().to_numpy()
    raw = values.to_numpy(dtype=object)
    rows.reject(~(is_ms | is_us | from_stamps),
                lambda i: f"{column} {raw[i]!r} is not a Unix ms/µs timestamp or an ISO date")
    ms = np.where(is_us, np.floor(n / 1000), n)
    if from_stamps.any():
        ms[from_stamps] = stamps[from_stamps].dt.tz_localize(None).to_numpy().astype("datetime64[ms]").astype(np.int64)
    return ms.astype(np.int64)


def _check_daily(raw: pd.DataFrame, ms: np.ndarray, rows: _Rows) -> None:
    """Candles must open at 00:00 UTC and span one day; a ``date`` column must agree."""
    rows.reject(ms % DAY_MS != 0, lambda i: "timestamp is not at 00:00 UTC; only daily candles are accepted")
    if "close_time" in raw:
        span = _timestamps_ms(raw["close_time"], rows, "close_time") - ms + 1
        rows.reject(span != DAY_MS, lambda i: f"close_time is {span[i]} ms after open_time, not one day: not a daily (1d) kline")
    if "date" in raw:
        day = _timestamps_ms(raw["date"], rows, "date")
        rows.reject(day != ms, lambda i: f"date {when(day[i])} does not match the open time {when(ms[i])}")


def _check_order(tokens: np.ndarray, ms: np.ndarray, rows: _Rows) -> None:
    """Each token's rows must have strictly increasing times in input order (no duplicates)."""
    codes, _ = pd.factorize(tokens)
    order = np.lexsort((rows.lines, codes))
    later, earlier = order[1:], order[:-1]
    bad_step = (codes[later] == codes[earlier]) & (ms[later] <= ms[earlier])
    bad = np.zeros(ms.size, dtype=bool)
    bad[later] = bad_step
    previous = np.zeros(ms.size, dtype=np.intp)
    previous[later] = earlier
    unit = rows.origin.unit

    def problem(i: int) -> str:
        j = previous[i]
        if ms[i] == ms[j]:
            return f"duplicate: same token and time as {unit} {rows.lines[j]}"
        return f"out of time order: comes after {when(ms[j])} at {unit} {rows.lines[j]}; a token's rows must be in increasing time"

    rows.reject(bad, problem)


def _numbers(values: pd.Series) -> np.ndarray:
    """``values`` as float64, NaN where not a number; booleans (``True``, ``False``) are not numbers."""
    number = np.array(pd.to_numeric(values, errors="coerce"), dtype=np.float64)  # a copy: written below
    if pd.api.types.is_bool_dtype(values.dtype):
        return np.full(number.shape, np.nan)
    if values.dtype == object:
        number[values.map(lambda v: isinstance(v, (bool, np.bool_))).to_numpy(dtype=bool)] = np.nan
    return number


def _positive(values: pd.Series, column: str, rows: _Rows) -> np.ndarray:
    """Prices as float64; missing, non-numeric, non-finite or non-positive values are rejected."""
    number = _numbers(values)
    raw = values.to_numpy(dtype=object)
    missing = values.isna().to_numpy()
    rows.reject(~(np.isfinite(number) & (number > 0)),
                lambda i: f"{column} is missing" if missing[i] else f"{column} must be a positive finite price, got {raw[i]!r}")
    return number


def _check_ranges(prices: dict[str, np.ndarray], rows: _Rows) -> None:
    """``low <= high`` and ``open, close`` inside ``[low, high]``."""
    high, low = prices["high"], prices["low"]
    rows.reject(high < low, lambda i: f"high {float(high[i])!r} is below low {float(low[i])!r}")
    for name in ("open", "close"):
        value = prices[name]
        rows.reject((value < low) | (value > high),
                    lambda i: f"{name} {float(value[i])!r} is outside [low {float(low[i])!r}, high {float(high[i])!r}]")


def _volume(values: pd.Series, rows: _Rows) -> np.ndarray:
    """Volume as float64; missing volume is repaired to 0.0, anything not finite and >= 0 is rejected."""
    number = _numbers(values)
    missing = values.isna().to_numpy()
    raw = values.to_numpy(dtype=object)
    rows.reject(~missing & ~(np.isfinite(number) & (number >= 0)),
                lambda i: f"volume must be a finite number >= 0, got {raw[i]!r}")
    return np.where(missing, 0.0, number)


def validate(raw: pd.DataFrame, origin: Origin, *, points: bool = False) -> pd.DataFrame:
    """Check a raw frame (see the module docstring) and return the tidy frame.

    The result has columns ``token, date, open, high, low, close, volume, line``
    (``line``: where the candle's row is in the input), in input order.

    Args:
        raw: one row per input row, in input order.
        origin: names the input in error messages.
        points: the rows are price points (column ``price``, any time of day, several a
            day allowed) rather than daily candles: each token's last price of each UTC
            day becomes a candle with ``open = high = low = close = price`` and volume 0.0.

    Raises:
        DataError: for the first bad row, naming ``origin``, the row's line and the problem.
    """
    if raw.empty:
        raise origin.error("no data rows")
    rows = _Rows(origin, raw["line"].to_numpy(dtype=np.int64))
    token = raw["token"]
    rows.reject((token.isna() | (token.astype(str).str.strip() == "")).to_numpy(), lambda i: "token is missing")
    tokens = token.astype(str).str.strip().to_numpy(dtype=object)
    ms = _timestamps_ms(raw["time"], rows, "timestamp")
    rows.context = lambda i: f"{tokens[i]} {when(ms[i])}"
    if not points:
        _check_daily(raw, ms, rows)
    _check_order(tokens, ms, rows)
    if points:
        price = _positive(raw["price"], "price", rows)
        prices = dict.fromkeys(PRICES, price)
        volume = np.zeros(price.size)
    else:
        prices = {name: _positive(raw[name], name, rows) for name in PRICES}
        _check_ranges(prices, rows)
        volume = _volume(raw["volume"], rows)
    frame = pd.DataFrame({"token": tokens, "date": (ms // DAY_MS).astype("datetime64[D]"), **prices,
                          "volume": volume, "line": rows.lines})
    if points:  # times increase within each token, so the last row of a day is its last price
        frame = frame.drop_duplicates(["token", "date"], keep="last").reset_index(drop=True)
    return frame


def merge(parts: Sequence[tuple[Origin, pd.DataFrame]]) -> pd.DataFrame:
    """Union validated frames; a token and day present in several must have identical values.

    Raises:
        DataError: two inputs disagree on a candle (naming both inputs, lines, token, day, field).
    """
    if len(parts) == 1:
        return parts[0][1]
    frame = pd.concat([part.assign(source=k) for k, (_, part) in enumerate(parts)], ignore_index=True)
    key = ["token", "date"]
    first_row = frame.groupby(key, sort=False).cumcount() == 0
    reference = frame[first_row].set_index(key)
    mine = frame.set_index(key)
    theirs = reference.reindex(mine.index)
    differs = (mine[list(FIELDS)].to_numpy() != theirs[list(FIELDS)].to_numpy())
    conflicts = np.flatnonzero(differs.any(axis=1))
    if conflicts.size:
        i = int(conflicts[0])
        field = FIELDS[int(np.argmax(differs[i]))]
        (a_source, a_line, a_value), (b_source, b_line, b_value) = (
            (parts[int(side["source"].iloc[i])][0], int(side["line"].iloc[i]), float(side[field].iloc[i]))
            for side in (theirs, mine))
        token, day = mine.index[i]
        raise DataError(
            f"{a_source.name} ({a_source.unit} {a_line}) and {b_source.name} ({b_source.unit} {b_line}) disagree on "
            f"{token} {pd.Timestamp(day).date()}: {field} {a_value!r} vs {b_value!r} "
            f"({conflicts.size} conflicting candles); overlapping candles of a token must be identical")
    return frame[first_row].drop(columns="source").reset_index(drop=True)
