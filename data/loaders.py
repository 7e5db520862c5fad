"""Load daily market data files into a :class:`~data.candles.Candles`, validating every row.

One entry point, :func:`load_path`, reads a file or a directory of files; each
file's format is detected from its contents (gzip and zip are unwrapped first):

* **tidy** CSV or Parquet ``token,timestamp,open,high,low,close,volume`` with
  ``timestamp`` the candle's open time in Unix ms (or µs) UTC or an ISO date;
* **single-token** CSV: the same without ``token`` (e.g. ``btcusdt_daily.csv``:
  ``date,open_time,open,high,low,close,volume``), and Binance kline CSVs with a
  header row (``open_time,open,...,close_time,...``);
* **Binance kline** CSV without a header (data.binance.vision daily klines: 12
  columns ``open_time, open, high, low, close, volume, close_time, quote_volume,
  count, taker_buy_volume, taker_buy_quote_volume, ignore``), open times in ms or
  µs (Binance spot files use µs since 2025), alone or as the single member of a zip;
* **DefiLlama** price-chart JSON (``coins.llama.fi/chart`` or ``/prices/historical``).

Prices are in quote currency, volume in base-asset units, days are UTC days. A
single-token file takes its token from ``token=`` or from the file name: the part
before the first ``-`` or ``_``, upper-cased (``BTCUSDT-1d-2024-01.zip`` and
``btcusdt_daily.csv`` give ``BTCUSDT``). DefiLlama coins are named by
``coin_names`` (``{"coingecko:hyperliquid": "HYPEUSD"}``), else ``token=`` for a
single coin, else their symbol + ``"USD"``.

All formats go through :func:`data.validation.validate`; bad input raises
:class:`DataError` naming the file, the line and the problem. The decision table
is in ``docs/reference/data.md``, "Loaders and validation".
"""

from __future__ import annotations

import gzip
import io
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from data.candles import FIELDS, Candles, as_day
from data.validation import DAY_MS, DataError, Origin, merge, validate

__all__ = ["DataError", "DATA_SUFFIXES", "KLINE_COLUMNS", "defillama_frame", "klines_frame", "load_path", "write_tidy"]

KLINE_COLUMNS: tuple[str, ...] = (
    "open_time", "open", "high", "low", "close", "volume", "close_time", "quote_volume", "count",
    "taker_buy_volume", "taker_buy_quote_volume", "ignore",
)
"""The 12 fields of a Binance kline (REST ``/api/v3/klines`` array and data.binance.vision CSV)."""

DATA_SUFFIXES: frozenset[str] = frozenset({".csv", ".gz", ".zip", ".parquet", ".json"})
"""Files in a directory that :func:`load_path` reads; other files (README.md, ...) are ignored."""

_TIME_COLUMNS = ("timestamp", "open_time", "date")  # first present is the candle's open time


# --------------------------------------------------------------------------- entry point
def load_path(
    path: str | Path,
    *,
    tokens: Iterable[str] | None = None,
    start: object | None = None,
    end: object | None = None,
    name: str | None = None,
    token: str | None = None,
    coin_names: Mapping[str, str] | None = None,
) -> Candles:
    """Load a data file, or every data file of a directory merged into one universe.

    Args:
        path: a file in any supported format, or a directory; in a directory every
            file with a suffix in :data:`DATA_SUFFIXES` is read (not recursively).
        tokens: keep only these tokens, in this order; names not in the data raise.
        start, end: keep days ``start <= day <= end`` (inclusive, date-like, either may be None).
        name: the universe's name (default: the file or directory name).
        token: the token name of a single-token file (overrides the file name).
        coin_names: DefiLlama coin id -> token name.

    Returns:
        Candles whose ``dates`` are the days on which at least one kept token has a candle.

    Raises:
        DataError: unreadable or invalid input, unknown tokens, or nothing left in range.
    """
    path = Path(path)
    if path.is_dir():
        if token is not None:
            raise DataError(f"{path}: token= names a single-token file, not a directory")
        files = sorted(p for p in path.iterdir()
                       if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise DataError(f"{path}: no data files ({', '.join(sorted(DATA_SUFFIXES))}) in this directory")
    elif path.is_file():
        files = [path]
    else:
        raise DataError(f"{path}: no such file or directory")
    frame = merge([_read_file(file, token, coin_names or {}) for file in files])
    wanted = [tokens] if isinstance(tokens, str) else (None if tokens is None else list(dict.fromkeys(tokens)))
    frame = _restrict(frame, str(path), wanted, start, end)
    candles = Candles.from_frame(frame, name=name or path.name)
    return candles if wanted is None else candles.select(wanted)


def _restrict(frame: pd.DataFrame, label: str, tokens: list[str] | None, start: object, end: object) -> pd.DataFrame:
    """Keep the requested tokens and days; refuse unknown tokens and empty results."""
    if tokens is not None:
        known = set(frame["token"])
        unknown = [t for t in tokens if t not in known]
        if not tokens:
            raise DataError(f"{label}: tokens= is empty")
        if unknown:
            raise DataError(f"{label}: unknown token(s) {unknown}; the data has {sorted(known)}")
        frame = frame[frame["token"].isin(tokens)]
    first, last = _day(start, label, "start"), _day(end, label, "end")
    if first is not None and last is not None and first > last:
        raise DataError(f"{label}: start {first} is after end {last}")
    if first is not None:
        frame = frame[frame["date"] >= first]
    if last is not None:
        frame = frame[frame["date"] <= last]
    span = f"between {first or 'the first day'} and {last or 'the last day'}"
    if frame.empty:
        raise DataError(f"{label}: no candles {span}")
    absent = [t for t in tokens or () if t not in set(frame["token"])]
    if absent:
        raise DataError(f"{label}: no candles {span} for {absent}")
    return frame


def _day(value: object, label: str, what: str) -> np.datetime64 | None:
    if value is None:
        return None
    try:
        return as_day(value)
    except ValueError:
        raise DataError(f"{label}: {what} {value!r} is not a date") from None


# --------------------------------------------------------------------------- one file
def _read_file(path: Path, token: str | None, coin_names: Mapping[str, str]) -> tuple[Origin, pd.DataFrame]:
    """Detect the file's format from its bytes and return its validated tidy frame."""
    data, origin, inner_name = _unwrap(path)
    if not data.strip():
        raise origin.error("file is empty")
    if data[:4] == b"PAR1":
        origin = Origin(origin.name, unit="row")
        frame = _read_parquet(data, origin)
        return origin, _from_columns(frame, origin, token, inner_name, lines=np.arange(len(frame)) + 1)
    if data.lstrip()[:1] in (b"{", b"["):
        origin = Origin(origin.name, unit="price point")
        return origin, defillama_frame(_read_json(data, origin), origin, coin_names=coin_names, token=token)
    return origin, _read_csv(data, origin, token, inner_name)


def _unwrap(path: Path) -> tuple[bytes, Origin, str]:
    """The file's bytes, gunzipped or taken from a one-member zip; the origin and the inner file name."""
    origin = Origin(str(path))
    try:
        data = path.read_bytes()
        if data[:2] == b"\x1f\x8b":
            return gzip.decompress(data), origin, path.name
        if data[:4] == b"PK\x03\x04":
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                members = [m for m in archive.namelist() if not m.endswith("/")]
                if len(members) != 1:
                    raise origin.error(f"a zip must hold exactly one data file, found {members}")
                return archive.read(members[0]), Origin(f"{path}[{members[0]}]"), members[0]
    except (OSError, EOFError, zlib.error, zipfile.BadZipFile) as exc:
        raise origin.error(f"cannot read: {exc}") from None
    return data, origin, path.name


def _read_parquet(data: bytes, origin: Origin) -> pd.DataFrame:
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise origin.error(f"cannot read Parquet: {exc}") from None


def _read_json(data: bytes, origin: Origin) -> object:
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise origin.error(f"invalid JSON: {exc}") from None


def _read_csv(data: bytes, origin: Origin, token: str | None, file_name: str) -> pd.DataFrame:
    """A CSV with a header row (tidy or single-token), or a headerless Binance kline CSV."""
    first_line = data.split(b"\n", 1)[0].decode("utf-8-sig", errors="replace").strip()
    if not first_line:
        raise origin.error("line is empty; expected a header row or a Binance kline", at=1)
    headerless = not pd.to_numeric(pd.Series(first_line.split(",")), errors="coerce").isna().any()
    try:
        frame = pd.read_csv(io.BytesIO(data), header=None if headerless else 0, skip_blank_lines=False,
                            encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise origin.error(f"malformed CSV: {exc}") from None
    if not isinstance(frame.index, pd.RangeIndex):  # pandas took the extra leading field(s) as an index
        raise origin.error(f"malformed CSV: the first data row has more fields than the header "
                           f"({frame.index.nlevels + frame.shape[1]} instead of {frame.shape[1]})", at=2)
    lines = np.arange(len(frame)) + (1 if headerless else 2)
    blank = frame.isna().all(axis=1).to_numpy()
    frame, lines = frame[~blank].reset_index(drop=True), lines[~blank]
    if headerless:
        if frame.shape[1] != len(KLINE_COLUMNS):
            raise origin.error(f"no header row and {frame.shape[1]} columns; a file without a header must be a "
                               f"{len(KLINE_COLUMNS)}-column Binance kline file", at=1)
        frame.columns = list(KLINE_COLUMNS)
    return _from_columns(frame, origin, token, file_name, lines)


def _from_columns(frame: pd.DataFrame, origin: Origin, token: str | None, file_name: str,
                  lines: np.ndarray) -> pd.DataFrame:
    """Validate a frame with named columns (tidy, single-token or kline layout)."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())
    twice = sorted({c for c in frame.columns if list(frame.columns).count(c) > 1})
    if twice:
        raise origin.error(f"column(s) {twice} appear more than once (names are compared case-insensitively)",
                           at=1 if origin.unit == "line" else None)
    time_column = next((c for c in _TIME_COLUMNS if c in frame), None)
    missing = ([] if time_column else ["timestamp"]) + [c for c in FIELDS if c not in frame]
    if missing:
        raise origin.error(f"missing column(s) {missing}; expected token,timestamp,open,high,low,close,volume "
                           f"(token optional for a single-token file) or a headerless Binance kline file",
                           at=1 if origin.unit == "line" else None)
    if "token" in frame:
        if token is not None:
            raise origin.error("token= is only for single-token files; this file has a token column")
        names = frame["token"]
    else:
        names = token or _token_from_file_name(file_name, origin)
    raw = pd.DataFrame({"token": names, "time": frame[time_column], **{f: frame[f] for f in FIELDS}, "line": lines})
    for extra in ("close_time", "date"):
        if extra in frame and extra != time_column:
            raw[extra] = frame[extra]
    return validate(raw, origin)


def _token_from_file_name(file_name: str, origin: Origin) -> str:
    """``BTCUSDT-1d-2024-01.csv`` / ``btcusdt_daily.csv.gz`` -> ``BTCUSDT``."""
    stem = re.split(r"[-_.]", Path(file_name).name, maxsplit=1)[0].upper()
    if not re.fullmatch(r"[A-Z0-9]+", stem):
        raise origin.error(f"cannot take a token name from the file name {file_name!r}; pass token=")
    return stem


# --------------------------------------------------------------------------- shared with data.fetch
def klines_frame(rows: list[list[object]], *, token: str, origin: Origin) -> pd.DataFrame:
    """Validate Binance kline arrays (REST ``/api/v3/klines`` rows) into a tidy frame; row ``k`` is kline ``k``."""
    bad = [k for k, row in enumerate(rows, start=1) if not isinstance(row, list) or len(row) != len(KLINE_COLUMNS)]
    if bad:
        raise origin.error(f"a kline must be a list of {len(KLINE_COLUMNS)} fields, got {rows[bad[0] - 1]!r}", at=bad[0])
    frame = pd.DataFrame(rows, columns=list(KLINE_COLUMNS))
    return _from_columns(frame, origin, token, token, lines=np.arange(len(frame)) + 1)


def defillama_frame(payload: object, origin: Origin, *, coin_names: Mapping[str, str] | None = None,
                    token: str | None = None) -> pd.DataFrame:
    """Validate a DefiLlama ``/chart`` or ``/prices/historical`` response into a tidy daily frame.

    Each coin's ``prices`` (``{"timestamp": unix seconds, "price": float}``, in increasing
    time) become one candle per UTC day from the day's last price: ``open = high = low =
    close = price``, ``volume = 0.0``. A ``/prices/historical`` entry (``price`` and
    ``timestamp`` on the coin itself) is one point. Point ``k`` of a coin is "price point k".
    """
    coins = payload.get("coins") if isinstance(payload, dict) else None
    if not isinstance(coins, dict) or not coins:
        raise origin.error('not a DefiLlama price response: expected {"coins": {coin id: {...}}} with at least one coin')
    names = {coin: _coin_token(coin, entry, coin_names or {}, token if len(coins) == 1 else None, origin)
             for coin, entry in coins.items()}
    clashes = sorted(name for name in set(names.values()) if list(names.values()).count(name) > 1)
    if clashes:
        raise origin.error(f"several coins would be named {clashes}; name them with coin_names")
    raw = pd.concat([_coin_points(coin, entry, names[coin], origin) for coin, entry in coins.items()], ignore_index=True)
    return validate(raw, origin, points=True)


def _coin_token(coin: str, entry: object, coin_names: Mapping[str, str], token: str | None, origin: Origin) -> str:
    if coin in coin_names:
        return coin_names[coin]
    if token is not None:
        return token
    symbol = entry.get("symbol") if isinstance(entry, dict) else None
    if not isinstance(symbol, str) or not symbol.strip():
        raise origin.error(f"coin {coin!r} has no symbol; name it with coin_names")
    return symbol.strip().upper() + "USD"


def _coin_points(coin: str, entry: object, token: str, origin: Origin) -> pd.DataFrame:
    """One coin's price points as raw rows (time in Unix ms)."""
    if isinstance(entry, dict) and "prices" in entry:
        points = entry["prices"]
    elif isinstance(entry, dict) and "price" in entry:
        points = [entry]
    else:
        points = None
    if not isinstance(points, list) or not points or not all(isinstance(p, dict) for p in points):
        raise origin.error(f'coin {coin!r}: expected a non-empty "prices" list of {{"timestamp", "price"}} objects')
    frame = pd.DataFrame.from_records(points)
    stamp = frame.get("timestamp", pd.Series(np.nan, index=frame.index))
    seconds = pd.to_numeric(stamp, errors="coerce")
    return pd.DataFrame({"token": token, "time": (seconds * 1000).where(seconds.notna(), stamp),
                         "price": frame.get("price", np.nan), "line": np.arange(len(frame)) + 1})


# --------------------------------------------------------------------------- writing
def write_tidy(candles: Candles, path: str | Path) -> Path:
    """Write ``token,timestamp,open,high,low,close,volume`` (timestamp: open time, Unix ms UTC).

    Parquet for a ``.parquet`` suffix, else CSV (gzip-compressed for ``.gz``); one row per
    candle, sorted by token and day. :func:`load_path` reads it back to identical arrays.
    """
    path = Path(path)
    frame = candles.to_frame()
    days = frame["date"].to_numpy().astype("datetime64[D]").astype(np.int64)
    tidy = pd.DataFrame({"token": frame["token"], "timestamp": days * DAY_MS, **{f: frame[f] for f in FIELDS}})
    if path.suffix.lower() == ".parquet":
        tidy.to_parquet(path, index=False)
    else:
        tidy.to_csv(path, index=False, compression="infer")
    return path
