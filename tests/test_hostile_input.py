"""Hostile input: property-based tests (hypothesis) of everything that takes data or parameters from outside.

Every generated input must end in one of two ways:

* a valid object: a :class:`~data.candles.Candles` whose invariants hold (sorted unique days, ``days x tokens``
  shapes, NaN exactly where a token has no candle, finite positive prices with ``low <= open, close <= high``,
  sealed read-only arrays), an :class:`~strategy.ensemble.EnsembleParams` whose values are inside the searched
  domain, an evaluation score that is a float, finite or ``-inf`` (never NaN, never ``+inf``);
* or the project's own error type with a message that names the file or the parameter: ``DataError`` for
  data (its message starts with or contains the path), ``ParamError`` for parameters (it names the
  ``block.field`` / ``Class.field`` or the key), ``WindowError`` for an evaluation window without data.

Anything else (a bare ``KeyError``, ``IndexError``, pandas or numpy error, ``ZeroDivisionError``, a hang) fails
the property, and hypothesis shrinks it to a minimal input.

Examples per property: :data:`EXAMPLES` (the fixed ``hostile`` profile: derandomized, so CI always runs the
same inputs). ``GEMSEARCH_HYPOTHESIS_PROFILE=hostile-explore`` draws 20 times as many, randomly, for a
bug hunt. Each example runs under a wall-clock limit (:func:`_time_limit`) instead of hypothesis' deadline,
which re-runs slow examples and reports them as flaky on a loaded machine.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import gzip
import io
import json
import math
import os
import pickle
import signal
import tempfile
import threading
import zipfile
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from data.candles import FIELDS, Candles
from data.loaders import KLINE_COLUMNS, DataError, load_path
from env.objective import Objective
from instances.problem import Problem
from harness import SEARCH_END, SEARCH_START, Split, WindowError
from strategy.ensemble import EnsembleParams, SwitchParams
from strategy.params import GemParams, ParamError, from_mapping
from strategy.regime import HmmParams
from strategy.space import SPACES, SearchSpace

# --------------------------------------------------------------------------- settings
settings.register_profile(
    "hostile",
    derandomize=True,  # the same inputs on every run: CI is deterministic
    database=None,
    deadline=None,  # see _time_limit
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
settings.register_profile("hostile-explore", parent=settings.get_profile("hostile"), derandomize=False)
PROFILE = os.environ.get("GEMSEARCH_HYPOTHESIS_PROFILE", "hostile")
SCALE = 20 if PROFILE == "hostile-explore" else 1

EXAMPLES: dict[str, int] = {
    "tidy_csv": 150,
    "kline_csv": 100,
    "defillama_structured": 100,
    "defillama_random_json": 60,
    "binary_garbage": 60,
    "blank_files": 25,
    "directory": 30,
    "decode": 150,
    "params_mapping": 200,
    "ensemble_from_dict": 150,
    "dataclass_fields": 150,
    "evaluate_tiny_universe": 120,
    "candles_slices_stay_sealed": 30,
}
"""Inputs each property tries under the ``hostile`` profile (times ``SCALE`` under ``hostile-explore``)."""

EXAMPLE_LIMIT_S = 30.0
"""Wall-clock limit of one example: far above what any takes (milliseconds to ~1 s), so only a hang trips it."""


def hostile(name: str) -> settings:
    """The settings of property ``name``: the selected profile with its number of examples."""
    return settings(settings.get_profile(PROFILE), max_examples=EXAMPLES[name] * SCALE)


@contextlib.contextmanager
def _time_limit(seconds: float = EXAMPLE_LIMIT_S) -> Iterator[None]:
    """Raise ``TimeoutError`` in the block after ``seconds`` of wall time (POSIX main thread; else no limit)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"one example ran for more than {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- Candles invariants
def assert_valid_candles(candles: Candles, *, from_loader: bool = True) -> None:
    """The ``Candles`` contract: shapes, sorted unique days, NaN pattern, price sanity, sealed arrays."""
    assert isinstance(candles, Candles)
    days, tokens = candles.shape
    assert candles.dates.dtype == np.dtype("datetime64[D]") and candles.dates.shape == (days,)
    assert np.all(np.diff(candles.dates.astype(np.int64)) > 0), "dates must be strictly increasing"
    assert len(set(candles.tokens)) == tokens and all(isinstance(t, str) for t in candles.tokens)
    listed = ~np.isnan(candles.close)
    for name in FIELDS:
        array = getattr(candles, name)
        assert array.shape == (days, tokens) and array.dtype == np.float64, name
        np.testing.assert_array_equal(np.isnan(array), ~listed, err_msg=f"{name}: NaN exactly where no candle")
        assert not array.flags.writeable, f"{name} must be read-only"
    assert not candles.dates.flags.writeable
    np.testing.assert_array_equal(candles.listed, listed)
    if not from_loader:
        return
    assert days >= 1 and tokens >= 1, "a loader never returns an empty universe"
    assert listed.any(axis=1).all(), "every day has a candle of some token"
    assert listed.any(axis=0).all(), "every token has a candle"
    o, h, lo, c, v = (getattr(candles, name)[listed] for name in FIELDS)
    for name, price in (("open", o), ("high", h), ("low", lo), ("close", c)):
        assert np.all(np.isfinite(price) & (price > 0)), f"{name} must be finite and positive where listed"
    assert np.all(lo <= h) and np.all((lo <= o) & (o <= h)) and np.all((lo <= c) & (c <= h))
    assert np.all(np.isfinite(v) & (v >= 0)), "volume must be finite and >= 0 where listed"


def load_or_error(path: Path, **kwargs: Any) -> Candles | DataError:
    """``load_path(path)``: a valid ``Candles``, or a ``DataError`` naming ``path``; anything else propagates."""
    try:
        candles = load_path(path, **kwargs)
    except DataError as exc:
        message = str(exc)
        assert str(path) in message, f"the message must name the file: {message!r}"
        assert len(message) > len(str(path)) + 2, f"the message must name the problem: {message!r}"
        event(f"DataError: {_kind_of(message, str(path))}")
        return exc
    assert_valid_candles(candles)
    _assert_sealed(candles)
    event("loaded")
    return candles


def _kind_of(message: str, path: str) -> str:
    """A short label of a DataError message for hypothesis' statistics (the problem, without values)."""
    text = message.split(": ")[-1] if ": " in message else message
    return " ".join(text.replace(path, "").split()[:3])


# --------------------------------------------------------------------------- hostile cells
RARELY = st.sampled_from([False] * 7 + [True])
"""True about 1 time in 8 (hypothesis favours the first element of ``sampled_from``: the ordinary case)."""

DAY = 86_400_000
JAN1 = 1704067200000  # 2024-01-01 00:00 UTC in Unix ms
TOKENS = ("AAA", "BBB", "btc", "ÄÖÜ")

HOSTILE_NUMBERS = (
    "0", "-0", "-1", "1e300", "1e400", "-1e300", "inf", "-inf", "Infinity", "nan", "NaN", "5e-324", "1e-320",
    "", " ", "abc", "True", "false", "0x10", "1_000", "1e", ".", "--1", "1,5", '"1"', "null", "None", "١",
)
"""Cells that are not a positive finite price (and some that a lenient parser would misread)."""

HOSTILE_TIMES = (
    str(JAN1 + 3_600_000), str(JAN1 // 1000), str(-JAN1), "9" * 30, "1e400", "", "nan", "yesterday",
    "2024-13-45", "2024-01-01T00:00:00+25:00", "2024-01-01T12:00:00Z", "2024-01-01 00:00:00+01:00",
    str(JAN1 + 0.5), str(JAN1 * 1000 + 7), "0", "True", "99999999999999999999", str(2**63),
)
"""Times that are not a UTC midnight in ms/µs/ISO (intraday, seconds, negative, out of range, garbage)."""


def _day_time(k: int, form: str) -> str:
    """Day ``k`` after 2024-01-01 as a time cell in ``form``."""
    ms = JAN1 + k * DAY
    day = np.datetime64("2024-01-01") + k
    return {
        "ms": str(ms),
        "us": str(ms * 1000),
        "float_ms": f"{ms}.0",
        "iso_date": str(day),
        "iso_z": f"{day}T00:00:00Z",
        "iso_offset": f"{day - 1}T19:00:00-05:00",  # the same UTC midnight in another time zone
    }[form]


TIME_FORMS = ("ms", "ms", "ms", "us", "float_ms", "iso_date", "iso_z", "iso_offset")
LEVELS = (1.0, 1.0, 1.0, 0.5, 1e6, 1e-6, 1e300, 1e-300, 5e-324, 1e-320)
"""Price levels of generated candles: ordinary, extreme, subnormal."""


@st.composite
def candle_cells(draw: st.DrawFn) -> dict[str, str]:
    """One valid candle at a random level: ``open, high, low, close, volume`` as text."""
    level = draw(st.sampled_from(LEVELS))
    mid = level * draw(st.floats(0.5, 2.0))
    low = mid * (1 - draw(st.floats(0.0, 0.5)))
    high = mid * (1 + draw(st.floats(0.0, 0.5)))
    inside = lambda u: min(max(low + u * (high - low), low), high)  # noqa: E731
    open_, close = inside(draw(st.floats(0, 1))), inside(draw(st.floats(0, 1)))
    volume = draw(st.one_of(st.just(""), st.just("0"), st.floats(0, 1e12).map(repr)))
    return {"open": repr(open_), "high": repr(high), "low": repr(low), "close": repr(close), "volume": volume}


@st.composite
def tidy_rows(draw: st.DrawFn) -> tuple[list[dict[str, str]], bool]:
    """Rows ``token, timestamp, open..volume`` (text), mostly valid; and whether any cell was made hostile.

    Rarely a whole price or volume column is ``True``/``False`` (a boolean column read as numbers would be 1/0).
    """
    n = draw(st.integers(1, 8))
    form = draw(st.sampled_from(TIME_FORMS))
    keys = draw(st.lists(st.tuples(st.sampled_from(TOKENS[: draw(st.integers(1, 4))]), st.integers(0, 5)),
                         min_size=n, max_size=n))
    if draw(st.booleans()):  # sorted by token and day, like real files (else: possibly out of order, duplicates)
        keys = sorted(set(keys))
    rows = [{"token": token, "timestamp": _day_time(k, draw(st.sampled_from((form, form, *TIME_FORMS)))),
             **draw(candle_cells())} for token, k in keys]
    hostile_cells = draw(st.sampled_from([0, 0, 0, 1, 2]))
    for _ in range(hostile_cells):
        row = draw(st.sampled_from(rows))
        column = draw(st.sampled_from(("token", "timestamp", *FIELDS)))
        pool = {"token": ("", " ", "nan", "A,B", "1", 'x"y'), "timestamp": HOSTILE_TIMES}.get(column, HOSTILE_NUMBERS)
        row[column] = draw(st.sampled_from(pool))
    if draw(RARELY):
        column = draw(st.sampled_from(FIELDS))
        for row in rows:
            row[column] = draw(st.sampled_from(["True", "False"]))
        hostile_cells += 1
    return rows, hostile_cells > 0


def _csv_text(header: list[str], rows: list[list[str]], newline: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def _write(directory: Path, name: str, text: str | bytes, wrap: str) -> Path:
    """Write ``text`` as ``name``, plain, gzipped, truncated-gzip or in a one-member zip."""
    data = text.encode("utf-8") if isinstance(text, str) else text
    path = directory / name
    if wrap == "gzip":
        data = gzip.compress(data)
    elif wrap == "gzip_truncated":
        data = gzip.compress(data)[: max(2, len(data) // 2)]
    elif wrap == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(Path(name).stem + ".csv", data)
        data = buffer.getvalue()
    path.write_bytes(data)
    return path


@contextlib.contextmanager
def _tmpdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gemsearch-hostile-") as name:
        yield Path(name)


def _same_values(loaded: np.ndarray, cells: list[str]) -> None:
    """The loaded listed values are the cells' numbers, as a multiset (no row dropped, moved or invented)."""
    expected = np.sort(np.array([float(c) for c in cells]))
    np.testing.assert_allclose(np.sort(loaded), expected, rtol=1e-12, atol=0)


# --------------------------------------------------------------------------- (a) loaders
@hostile("tidy_csv")
@given(
    data=tidy_rows(),
    header_style=st.sampled_from(["plain", "plain", "upper", "spaced", "permuted", "missing", "duplicate",
                                  "extra", "date_column", "open_time", "short"]),
    blank_lines=st.integers(0, 2),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    garbage=st.sampled_from([None, None, None, "text"]).flatmap(
        lambda g: st.none() if g is None else st.text(max_size=30)),
    wrap=st.sampled_from(["plain", "plain", "gzip", "zip", "gzip_truncated"]),
    filters=st.one_of(st.none(), st.fixed_dictionaries({
        "tokens": st.one_of(st.none(), st.lists(st.sampled_from(("AAA", "BBB", "ZZZ")), max_size=2)),
        "start": st.sampled_from([None, "2024-01-02", "2030-01-01", "soon", 20240101]),
        "end": st.sampled_from([None, "2024-01-03", "2023-12-31"]),
    })),
)
@pytest.mark.slow
def test_tidy_csv_loads_validly_or_fails_clearly(data, header_style, blank_lines, newline, bom, garbage, wrap, filters):
    rows, hostile_cells = data
    columns = ["token", "timestamp", *FIELDS]
    header = list(columns)
    if header_style == "upper":
        header = [c.upper() for c in header]
    elif header_style == "spaced":
        header = [f" {c.title()} " for c in header]
    elif header_style == "permuted":
        header = header[::-1]
        columns = columns[::-1]
    elif header_style == "missing":
        header, columns = header[:-2] + header[-1:], columns[:-2] + columns[-1:]
    elif header_style == "duplicate":
        header, columns = [*header, "Close"], [*columns, "close"]
    elif header_style == "extra":
        header, columns = [*header, "quote_volume"], [*columns, "volume"]
    elif header_style == "date_column":
        header, columns = [*header, "date"], [*columns, "timestamp"]
    elif header_style == "open_time":
        header = ["token", "open_time", *FIELDS]
    elif header_style == "short":  # no "token" in the header, rows still have it: pandas would index by it
        header = header[1:]
    lines = [[row[c] for c in columns] for row in rows]
    text = _csv_text(header, lines, newline)
    if blank_lines:
        parts = text.split(newline)
        parts.insert(min(blank_lines + 1, len(parts) - 1), "")
        text = newline.join(parts)
    if garbage is not None:
        text += garbage + newline
    text = ("\ufeff" if bom else "") + text
    with _time_limit(), _tmpdir() as directory:
        path = _write(directory, "prices.csv" + (".gz" if wrap.startswith("gzip") else ""), text, wrap)
        note(repr(text))
        outcome = load_or_error(path, **(filters or {}))
    if header_style in ("missing", "duplicate", "short") or any(
            {row[c] for row in rows} <= {"True", "False"} for c in FIELDS):
        assert isinstance(outcome, DataError), "a broken header or a boolean column is never a universe"
    clean = (garbage is None and not hostile_cells and not filters
             and header_style not in ("missing", "duplicate", "short"))
    if isinstance(outcome, Candles) and clean:  # nothing dropped, merged or invented: one cell per row
        assert int(outcome.listed.sum()) == len(rows)
        _same_values(outcome.close[outcome.listed], [row["close"] for row in rows])
        _same_values(outcome.low[outcome.listed], [row["low"] for row in rows])
    ms_rows = clean and wrap == "plain" and all(r["timestamp"].isdigit() for r in rows)

    def day(row: dict[str, str]) -> tuple[str, int]:  # (token, day) of a ms or µs timestamp
        stamp = int(row["timestamp"])
        return row["token"], stamp // (DAY * 1000 if stamp >= 1e14 else DAY)

    if ms_rows and rows == sorted(rows, key=day) and len({day(r) for r in rows}) == len(rows):
        # sorted, unique, midnight ms rows of valid candles: the only outcome is a universe
        assert isinstance(outcome, Candles) or any(float(r["low"]) <= 0 for r in rows), outcome


@st.composite
def kline_rows(draw: st.DrawFn) -> tuple[list[list[str]], bool]:
    """12-field Binance klines (text) of consecutive days, in ms or µs; mostly valid."""
    n = draw(st.integers(1, 6))
    micro = draw(st.booleans())
    first = draw(st.integers(0, 3))
    rows = []
    for k in range(first, first + n):
        unit = 1000 if micro else 1
        open_time = (JAN1 + k * DAY) * unit
        cells = draw(candle_cells())
        rows.append([str(open_time), cells["open"], cells["high"], cells["low"], cells["close"], cells["volume"] or "0",
                     str(open_time + DAY * unit - 1), "1.5", "7", "0.5", "0.7", "0"])
    hostile_cells = draw(st.sampled_from([0, 0, 1, 2]))
    for _ in range(hostile_cells):
        row = draw(st.sampled_from(rows))
        i = draw(st.integers(0, 11))
        row[i] = draw(st.sampled_from(HOSTILE_TIMES if i in (0, 6) else HOSTILE_NUMBERS))
    if draw(st.integers(0, 4)) == 0:  # a row with a field too many or too few
        row = draw(st.sampled_from(rows))
        row.append("1") if draw(st.booleans()) else row.pop()
        hostile_cells += 1
    if draw(st.integers(0, 4)) == 0:  # days out of order or repeated
        rows = draw(st.permutations(rows)) if draw(st.booleans()) else rows + rows[-1:]
    return rows, hostile_cells > 0


@hostile("kline_csv")
@given(
    data=kline_rows(),
    with_header=st.booleans(),
    name=st.sampled_from(["BTCUSDT-1d-2024-01.csv", "ethusdt_daily.csv", "++.csv", "BTCUSDT-1d-2024-01.zip"]),
    token=st.sampled_from([None, None, "XYZ", ""]),
)
def test_binance_kline_csv_loads_validly_or_fails_clearly(data, with_header, name, token):
    rows, hostile_cells = data
    text = _csv_text(list(KLINE_COLUMNS), rows, "\n") if with_header else "".join(",".join(r) + "\n" for r in rows)
    with _time_limit(), _tmpdir() as directory:
        path = _write(directory, name, text, "zip" if name.endswith(".zip") else "plain")
        note(text)
        outcome = load_or_error(path, token=token)
    if isinstance(outcome, Candles):
        assert outcome.n_tokens == 1 and outcome.tokens[0] in ("BTCUSDT", "ETHUSDT", "XYZ")
        if not hostile_cells:
            assert outcome.n_days == len(rows)
            _same_values(outcome.close[:, 0], [r[4] for r in rows])


JSON_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


@st.composite
def price_points(draw: st.DrawFn) -> list[object]:
    """A coin's ``prices`` list: points at increasing times (Unix seconds), some hostile."""
    n = draw(st.integers(1, 6)) if not draw(RARELY) else 0
    start = 1735732800 + draw(st.integers(-50_000, 50_000))
    times = [start + i * draw(st.sampled_from([3_600, 43_200, 86_400, 200_000])) for i in range(n)]
    points: list[object] = [{"timestamp": t, "price": draw(st.sampled_from(LEVELS)) * draw(st.floats(0.5, 2.0))}
                            for t in times]
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2])) if points else 0):
        index = draw(st.integers(0, len(points) - 1))
        point = points[index]
        if not isinstance(point, dict):
            continue
        what = draw(st.sampled_from(["timestamp", "price", "drop_key", "replace"]))
        if what == "drop_key":
            point.pop(draw(st.sampled_from(["timestamp", "price"])), None)
        elif what == "replace":
            points[index] = draw(st.one_of(JSON_SCALARS, st.lists(st.integers(), max_size=2)))
        else:
            point[what] = draw(st.one_of(JSON_SCALARS, st.sampled_from(["1735732800", "2025-01-01", [1], {"a": 1}])))
    if len(points) > 1 and draw(RARELY):
        points = points[::-1]  # time order broken
    return points


@st.composite
def defillama_payloads(draw: st.DrawFn) -> object:
    """A ``{"coins": {...}}`` response of 1..3 coins (charts or single points), some parts hostile."""
    if draw(RARELY):
        return draw(st.sampled_from([{"coins": {}}, [], {}, {"coins": []}, None, {"coins": None}]))
    coins: dict[str, object] = {}
    for coin in draw(st.lists(st.sampled_from(["coingecko:hyperliquid", "coingecko:ethena", "c:x", "d:x"]),
                              min_size=1, max_size=3, unique=True)):
        entry: dict[str, object] = {"confidence": 0.99}
        if not draw(RARELY):
            entry["symbol"] = draw(JSON_SCALARS if draw(RARELY) else st.sampled_from(["HYPE", "ENA", "x", "X", " "]))
        shape = draw(st.sampled_from(["chart", "chart", "historical", "nothing", "prices_not_list"])
                     if draw(RARELY) else st.just("chart"))
        if shape == "chart":
            entry["prices"] = draw(price_points())
        elif shape == "historical":
            entry["price"] = draw(st.one_of(st.floats(1e-3, 1e3), JSON_SCALARS))
            entry["timestamp"] = draw(st.one_of(st.integers(1735689600, 1735900000), JSON_SCALARS))
        elif shape == "prices_not_list":
            entry["prices"] = draw(JSON_SCALARS)
        coins[coin] = draw(JSON_SCALARS) if draw(RARELY) else entry
    return {"coins": coins}


@hostile("defillama_structured")
@given(payload=defillama_payloads(), token=st.sampled_from([None, None, "HYPEUSDT"]),
       coin_names=st.sampled_from([None, {"c:x": "XTOKEN"}, {"c:x": "SAME", "d:x": "SAME"}, {"c:x": ""}]))
def test_defillama_json_loads_validly_or_fails_clearly(payload, token, coin_names):
    text = json.dumps(payload)  # NaN/Infinity as JavaScript literals, which DefiLlama never sends
    with _time_limit(), _tmpdir() as directory:
        path = _write(directory, "llama.json", text, "plain")
        note(text)
        outcome = load_or_error(path, token=token, coin_names=coin_names)
    if isinstance(outcome, Candles):  # one candle per UTC day from the day's last price: O = H = L = C, volume 0
        listed = outcome.listed
        for name in ("open", "high", "low"):
            np.testing.assert_array_equal(getattr(outcome, name)[listed], outcome.close[listed])
        assert np.all(outcome.volume[listed] == 0.0)
        points = sum(len(e["prices"]) if "prices" in e else 1 for e in payload["coins"].values())
        assert int(listed.sum()) <= points


JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4),
    st.dictionaries(st.sampled_from(["coins", "prices", "price", "timestamp", "symbol", "x"]), inner, max_size=4),
), max_leaves=20)


@hostile("defillama_random_json")
@given(payload=JSON_VALUES)
def test_random_json_is_refused_clearly_or_loads(payload):
    text = json.dumps(payload)
    if not text.lstrip().startswith(("{", "[")):
        text = "[" + text + "]"  # a JSON file is recognised by its first character
    with _time_limit(), _tmpdir() as directory:
        load_or_error(_write(directory, "random.json", text, "plain"))


@hostile("binary_garbage")
@given(
    prefix=st.sampled_from([b"", b"\x1f\x8b", b"\x1f\x8b\x08\x00", b"PK\x03\x04", b"PAR1", b"{", b"\xef\xbb\xbf",
                            b"\xff\xfe"]),
    body=st.binary(max_size=200),
    wrap=st.sampled_from(["plain", "plain", "gzip", "zip", "gzip_truncated"]),
)
def test_binary_garbage_is_refused_clearly(prefix, body, wrap):
    with _time_limit(), _tmpdir() as directory:
        load_or_error(_write(directory, "garbage.csv", prefix + body, wrap))


@hostile("blank_files")
@given(text=st.text(alphabet=" \t\r\n\ufeff,", max_size=20), wrap=st.sampled_from(["plain", "gzip", "zip"]))
def test_empty_and_blank_files_are_refused(text, wrap):
    with _time_limit(), _tmpdir() as directory:
        assert isinstance(load_or_error(_write(directory, "empty.csv", text, wrap)), DataError)


@hostile("directory")
@given(files=st.lists(tidy_rows(), min_size=1, max_size=3), readme=st.booleans(), hidden=st.booleans())
def test_directories_merge_or_report_the_conflicting_files(files, readme, hidden):
    with _time_limit(), _tmpdir() as root:
        directory = root / "universe"
        directory.mkdir()
        for i, (rows, _) in enumerate(files):
            columns = ["token", "timestamp", *FIELDS]
            text = _csv_text(columns, [[r[c] for c in columns] for r in rows], "\n")
            _write(directory, f"part{i}.csv", text, "plain")
        if readme:
            (directory / "README.md").write_text("not data, ignored")
        if hidden:
            (directory / ".hidden.csv").write_text("garbage that must be ignored\x00")
        outcome = load_or_error(directory)
    if isinstance(outcome, Candles):
        assert outcome.name == "universe"


# --------------------------------------------------------------------------- (b) the parameter space
HOSTILE_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.integers(-5, 400),
    st.floats(allow_nan=True, allow_infinity=True), st.floats(-2.0, 400.0), st.text(max_size=5),
    st.lists(st.integers(), max_size=2), st.tuples(st.integers()),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.sampled_from(["gaussian", "student_t", "cash", "bear", "exponential", 10, 30, 90, 10.0, 5.0]),
    st.sampled_from([np.int64(5), np.float64(0.5), np.float32(0.5), np.bool_(True), np.array([1, 2]),
                     complex(1, 1), float("nan"), float("-inf"), 2**64, -(2**63)]),
)
"""Values of every wrong type and range, and some right ones."""


def _valid_values(axis: Any) -> st.SearchStrategy:
    if axis.kind == "bool":
        return st.booleans()
    if axis.kind == "categorical":
        return st.sampled_from(axis.choices)
    if axis.kind == "int":
        return st.integers(int(axis.low), int(axis.high))
    return st.floats(float(axis.low), float(axis.high))


ALL_VALID = object()
"""What :func:`_first_bad_key` returns when every key and value is valid (``None`` can be a bad key)."""


def _first_bad_key(space: SearchSpace, values: Mapping[Any, Any]) -> Any:
    """The first key :meth:`SearchSpace.params` must refuse (not an axis, or a value outside it)."""
    for key, value in values.items():
        if key not in space.names or not space[key].contains(value):
            return key
    return ALL_VALID


@hostile("decode")
@given(
    name=st.sampled_from(sorted(SPACES)),
    vector=st.one_of(
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=0, max_size=40),
        st.lists(st.floats(-1.0, 2.0), min_size=12, max_size=12),
        st.lists(st.floats(-1.0, 2.0), min_size=27, max_size=27),
        st.lists(st.floats(-1.0, 2.0), min_size=35, max_size=35),
        st.lists(st.one_of(st.floats(0, 1), HOSTILE_VALUES), min_size=12, max_size=12),
        st.lists(st.one_of(st.floats(0, 1), st.sampled_from([float("nan"), None])), min_size=27, max_size=27),
        st.sampled_from(["abc", None, 0.5, {"a": 1}, np.zeros((1, 12)), np.full(35, np.nan)]),
    ),
)
def test_decode_gives_valid_params_or_a_clear_error(name, vector):
    space = SearchSpace(name)
    with _time_limit():
        try:
            params = space.decode(vector)
        except ParamError as exc:
            message = str(exc)
            assert "unit coordinates" in message, message
            if isinstance(vector, list) and len(vector) == len(space) and all(isinstance(u, float) for u in vector):
                for axis, u in zip(space.axes, vector):  # a NaN coordinate is named by its axis
                    assert not math.isnan(u) or axis.name in message, (axis.name, message)
            event("ParamError")
            return
    event("decoded")
    assert isinstance(params, EnsembleParams)
    unit = np.asarray(vector, dtype=float)
    assert unit.shape == (len(space),) and not np.isnan(unit).any()
    for axis, value in space.values(params).items():
        assert space[axis].contains(value), (axis, value)


@hostile("params_mapping")
@given(
    name=st.sampled_from(sorted(SPACES)),
    data=st.data(),
)
def test_params_from_flat_mappings_are_valid_or_name_the_parameter(name, data):
    space = SearchSpace(name)
    odd_keys = st.one_of(
        st.sampled_from(["bull.nope", "nope", "bull", "", "bull.top_n.x", "Bull.top_n", "hmm.hmm_max_iters",
                         "switches.use_bull", " bull.top_n"]),
        st.integers(-2, 2), st.none(), st.tuples(st.integers()),
    )
    values: dict[Any, Any] = {}
    for _ in range(data.draw(st.integers(0, 5), label="keys")):  # 1 in 8 keys odd, 1 in 8 values hostile
        key = data.draw(odd_keys if data.draw(st.integers(0, 7)) == 0 else st.sampled_from(space.names), label="key")
        hostile_value = key not in space.names or data.draw(st.integers(0, 7)) == 0
        values[key] = data.draw(HOSTILE_VALUES if hostile_value else _valid_values(space[key]),
                                label=f"value of {key!r}")
    bad = _first_bad_key(space, values)
    with _time_limit():
        try:
            params = space.params(values)
        except ParamError as exc:
            assert bad is not ALL_VALID, f"refused a valid mapping {values!r}: {exc}"
            assert str(bad) in str(exc), f"the message must name {bad!r}: {exc}"
            event("ParamError")
            return
    event("params")
    assert bad is ALL_VALID, f"accepted {bad!r}={values[bad]!r}"
    flat = space.values(params)
    for axis in space.axes:
        expected = values.get(axis.name, space.values(space.base)[axis.name])
        assert flat[axis.name] == expected and axis.contains(flat[axis.name]), axis.name
        assert isinstance(flat[axis.name], {"int": int, "float": float, "bool": bool}.get(axis.kind, object))


BLOCK_CLASSES = {"bull": GemParams, "bear": GemParams, "ranging": GemParams, "hmm": HmmParams, "switches": SwitchParams}


def _field_values(cls: type, name: str) -> st.SearchStrategy:
    """Valid values of dataclass field ``name`` of ``cls`` (from its ``bounded`` metadata); nothing if unknown."""
    known = {f.name: f for f in dataclasses.fields(cls)}
    if name not in known:
        return st.nothing()
    meta, default = known[name].metadata, known[name].default
    if isinstance(default, bool):
        return st.booleans()
    if meta.get("choices") is not None:
        return st.sampled_from(meta["choices"])
    if isinstance(default, int):
        return st.integers(meta["lo"], meta["hi"])
    return st.floats(meta["lo"], meta["hi"])


@hostile("ensemble_from_dict")
@given(data=st.data())
def test_ensemble_from_dict_is_valid_or_names_the_parameter(data):
    flat = data.draw(st.booleans(), label="flat keys")
    values: dict[Any, Any] = {}
    for _ in range(data.draw(st.integers(0, 4), label="keys")):
        block = data.draw(st.sampled_from([*BLOCK_CLASSES, *BLOCK_CLASSES, "nope", "Bull", ""]), label="block")
        cls = BLOCK_CLASSES.get(block, GemParams)
        field_name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)] + ["nope"]), label="field")
        valid = _field_values(cls, field_name)
        value = data.draw(st.one_of(valid, valid, valid, HOSTILE_VALUES), label=f"{block}.{field_name}")
        if flat:
            values[f"{block}.{field_name}"] = value
        else:
            values.setdefault(block, {})[field_name] = value
    if data.draw(st.integers(0, 9), label="odd key") == 0:
        values[data.draw(st.sampled_from([1, None, ("bull",), "bull"]), label="odd")] = data.draw(HOSTILE_VALUES)
    with _time_limit():
        try:
            params = EnsembleParams.from_dict(values)
        except ParamError as exc:
            message = str(exc)
            nested = {k for v in values.values() if isinstance(v, Mapping) for k in v}
            named = {str(k) for k in values} | {str(k) for k in nested} | {repr(k) for k in nested}
            named |= {str(k).split(".", 1)[-1] for k in values} | {repr(str(k).split(".", 1)[0]) for k in values}
            assert any(n and n in message for n in named), f"the message must name the parameter: {message}"
            event("ParamError")
            return
    event("params")
    assert isinstance(params, EnsembleParams)
    for block, fields_ in params.to_dict().items():
        assert from_mapping(type(getattr(params, block)), fields_) == getattr(params, block)


@hostile("dataclass_fields")
@given(cls=st.sampled_from([GemParams, HmmParams, SwitchParams]), data=st.data())
def test_parameter_dataclasses_validate_every_field(cls, data):
    field_name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(cls)]), label="field")
    value = data.draw(st.one_of(_field_values(cls, field_name), HOSTILE_VALUES), label="value")
    with _time_limit():
        try:
            made = cls(**{field_name: value})
        except ParamError as exc:
            assert f"{cls.__name__}.{field_name}" in str(exc), str(exc)
            event("ParamError")
            return
    event("valid")
    stored = getattr(made, field_name)
    assert stored == value and not isinstance(stored, np.ndarray)
    assert from_mapping(cls, dataclasses.asdict(made)) == made


# --------------------------------------------------------------------------- (c) end to end on tiny universes
MAX_DAILY_MOVE = 5.0
"""Close-to-close moves of ordinary tokens stay within x5 / ÷5 a day; only ``absurd`` tokens jump up to 1e10-fold,
which can overflow the frozen harness's annualisation: ``Problem.evaluate`` then raises a ``DataError``
(see :func:`test_candles_too_extreme_for_the_harness_are_a_clear_data_error`)."""

TINY_BASE = EnsembleParams.from_dict({
    **{f"{block}.{name}": value for block in ("bull", "bear", "ranging")
       for name, value in (("min_history", 2), ("fit_window", 5), ("atr_window", 2), ("momentum_cap", 0.0))},
})
"""Specialists that fit from the second candle and never skip a fast riser: tiny universes do trade."""


@st.composite
def tiny_universes(draw: st.DrawFn) -> Candles:
    """1..40 days x 1..5 tokens: random walks, constant, all-NaN, late/early/gappy tokens, extreme levels."""
    n_days = draw(st.integers(1, 40), label="days")
    n_tokens = draw(st.integers(1, 5), label="tokens")
    first = np.datetime64(draw(st.sampled_from(["2021-01-01", "2020-12-20", "2023-06-01", "2025-12-10", "2020-04-01"]),
                               label="first day"))
    if draw(st.booleans(), label="calendar gaps"):
        offsets = np.sort(draw(st.lists(st.integers(0, 3 * n_days), min_size=n_days, max_size=n_days, unique=True)))
    else:
        offsets = np.arange(n_days)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    close = np.empty((n_days, n_tokens))
    listed = np.ones((n_days, n_tokens), dtype=bool)
    for j in range(n_tokens):
        kind = draw(st.sampled_from(["walk", "walk", "constant", "all_nan", "late", "delisted", "gappy", "jumpy",
                                     "subnormal", "absurd"]), label=f"token {j}")
        level = draw(st.sampled_from(LEVELS[:8]), label=f"level {j}")
        vol = {"constant": 0.0, "subnormal": 0.0, "jumpy": 3.0, "absurd": 15.0}.get(
            kind, draw(st.sampled_from([0.01, 0.05, 0.3])))
        bound = math.log(1e10 if kind == "absurd" else MAX_DAILY_MOVE)
        steps = np.clip(rng.normal(0.01, vol, n_days), -bound, bound)
        steps[0] = 0.0
        with np.errstate(over="ignore"):
            close[:, j] = np.clip(level * np.exp(np.cumsum(steps)), 1e-300, 1e300) if kind != "subnormal" else 5e-324
        cut = int(rng.integers(0, n_days + 1))
        if kind == "all_nan":
            listed[:, j] = False
        elif kind == "late":
            listed[:cut, j] = False
        elif kind == "delisted":
            listed[cut:, j] = False
        elif kind == "gappy":
            listed[:, j] = rng.random(n_days) < 0.7
    open_ = np.vstack([close[:1], close[:-1]])
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.2, close.shape))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.2, close.shape))
    low = np.where(low > 0, low, np.minimum(open_, close))  # subnormal levels: no room below
    high = np.minimum(high, np.finfo(float).max)
    volume = rng.uniform(0, 1e6, close.shape)
    matrices = {name: np.where(listed, m, np.nan) for name, m in
                (("open", open_), ("high", high), ("low", low), ("close", close), ("volume", volume))}
    return Candles(dates=first + offsets, tokens=tuple(f"T{j}USDT" for j in range(n_tokens)), name="tiny", **matrices)


def _largest_move(candles: Candles) -> float:
    """The largest close-to-close factor (up or down) between a token's consecutive candles."""
    largest = 1.0
    for j in range(candles.n_tokens):
        close = candles.close[candles.listed[:, j], j]
        if close.size > 1:
            with np.errstate(over="ignore", divide="ignore"):
                ratio = close[1:] / close[:-1]
            largest = max(largest, float(np.max(np.maximum(ratio, 1 / ratio))))
    return largest


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # strategy fits at 1e300 price levels
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@hostile("evaluate_tiny_universe")
@given(
    candles=tiny_universes(),
    unit=st.one_of(st.lists(st.floats(0.0, 1.0), min_size=12, max_size=12),
                   st.sampled_from([[0.0] * 12, [1.0] * 12, None])),
    window=st.sampled_from(["search", "search", "search", "from_first_day", "first_day_only", "reversed"]),
)
def test_evaluation_on_tiny_universes_scores_or_fails_clearly(candles, unit, window):
    assert_valid_candles(candles, from_loader=False)
    space = SearchSpace("core", base=TINY_BASE)
    params = space.base if unit is None else space.decode(unit)
    start, end = str(SEARCH_START), str(SEARCH_END)
    if window != "search":
        start = str(candles.dates[0] + (1 if window == "reversed" else 0))
        end = str(candles.dates[0]) if window in ("first_day_only", "reversed") else end
    with _time_limit():
        try:
            result = Problem(candles, space, split=Split(start, end)).evaluate(params)
        except WindowError as exc:
            inside = (candles.dates >= np.datetime64(start)) & (candles.dates <= np.datetime64(end))
            assert end < start or not inside.any(), f"refused a window with data: {exc}"
            event("WindowError")
            return
        except DataError as exc:  # only for price paths the frozen harness cannot annualise
            assert "cannot score these candles" in str(exc) and _largest_move(candles) > MAX_DAILY_MOVE, str(exc)
            event("DataError: too extreme")
            return
    score = result.score
    assert isinstance(score, float) and not math.isnan(score), score
    assert math.isfinite(score) or score == float("-inf"), f"score {score}: only -inf is a valid non-finite score"
    assert all(not (isinstance(v, float) and math.isnan(v)) for v in (*result.base.values(), *result.stress.values()))
    assert result.last_day <= str(SEARCH_END)
    event("-inf" if score == float("-inf") else ("zero" if score == 0 else "scored"))


def test_candles_too_extreme_for_the_harness_are_a_clear_data_error():
    """The frozen harness annualises with Python floats: a 1e10-fold jump over 8 scored days overflows.
    ``Problem.evaluate`` turns that into a DataError naming the cause, never a bare OverflowError."""
    close = np.column_stack([1.1 ** np.arange(8), 1.05 ** np.arange(8)])
    close[-2:, 0] *= 1e10
    candles = Candles(dates=np.datetime64("2021-01-01") + np.arange(8), tokens=("AUSDT", "BUSDT"), open=close,
                      high=close, low=close, close=close, volume=np.ones_like(close))
    with pytest.raises(DataError, match="cannot score these candles"):
        Problem(candles, SearchSpace("core", base=TINY_BASE)).evaluate(TINY_BASE)


# --------------------------------------------------------------------------- (d) sealing: nothing searcher-facing alters data or results
def _crossing_universe(days: int = 60) -> Candles:
    """A small universe that runs 30 days past SEARCH_END into the holdout."""
    rng = np.random.default_rng(7)
    close = 10 * np.exp(np.cumsum(rng.normal(0.01, 0.05, (days, 3)), axis=0))
    dates = np.datetime64(SEARCH_END, "D") - (days - 31) + np.arange(days)
    return Candles(dates=dates, tokens=("AUSDT", "BUSDT", "CUSDT"), open=close, high=close * 1.01, low=close * 0.99,
                   close=close, volume=np.ones_like(close), name="crossing")


def _arrays(candles: Candles) -> dict[str, np.ndarray]:
    arrays = {name: getattr(candles, name) for name in (*FIELDS, "dates", "listed")}
    if candles.regimes is not None:
        arrays["regimes"] = candles.regimes
    return arrays


def _assert_sealed(candles: Candles) -> None:
    """No array of ``candles`` can be written, or made writable, itself or through any ``.base``."""
    for name, array in _arrays(candles).items():
        if array.size:
            with pytest.raises(ValueError, match="read-only"):
                array[(0,) * array.ndim] = array[(0,) * array.ndim]
        owner: object = array
        while isinstance(owner, np.ndarray):
            with pytest.raises(ValueError):
                owner.setflags(write=True)
            assert owner.nbytes <= array.nbytes, f"{name}: .base reaches {owner.nbytes} bytes, more than the array"
            owner = owner.base


@hostile("candles_slices_stay_sealed")
@given(candles=tiny_universes(), lo=st.integers(0, 40), hi=st.integers(0, 40),
       cols=st.lists(st.integers(0, 4), max_size=3))
def test_candles_and_every_slice_are_sealed(candles, lo, hi, cols):
    fingerprint = candles.fingerprint
    tokens = list(dict.fromkeys(candles.tokens[c] for c in cols if c < candles.n_tokens))
    with _time_limit():
        views = [candles, candles.head(hi), candles.select(tokens), candles.drop_unlisted(),
                 candles.between(candles.dates[min(lo, candles.n_days - 1)], None), candles.between(None, SEARCH_END),
                 pickle.loads(pickle.dumps(candles)), copy.deepcopy(candles)]
        for view in views:
            _assert_sealed(view)
            assert_valid_candles(view, from_loader=False)
    assert candles.fingerprint == fingerprint
    assert views[-2].fingerprint == views[-1].fingerprint == fingerprint


def test_synthetic_universes_are_sealed_too():
    from data import load_universe

    _assert_sealed(load_universe("bear-basket"))  # memoised: every caller in the process gets this object


def test_no_holdout_row_is_reachable_from_a_problem():
    full = _crossing_universe()
    problem = Problem(full, SearchSpace("core", base=TINY_BASE), split=Split("2025-12-01", SEARCH_END))
    assert problem.candles.dates[-1] == np.datetime64(SEARCH_END, "D") and problem.candles.n_days == 30
    _assert_sealed(problem.candles)  # in particular close.base is not the 60-day array of ``full``
    for array in _arrays(problem.candles).values():
        assert array.base is None or array.base.nbytes == array.nbytes


def test_the_constructor_neither_freezes_nor_shares_the_callers_arrays():
    close = np.full((3, 2), 5.0)
    candles = Candles(dates=np.datetime64("2024-01-01") + np.arange(3), tokens=("A", "B"), open=close, high=close,
                      low=close, close=close, volume=close)
    fingerprint = candles.fingerprint
    close[0, 0] = 999.0  # the caller's array stays the caller's: writable, and not the universe's data
    assert candles.close[0, 0] == 5.0 and candles.fingerprint == fingerprint
    assert not np.shares_memory(candles.close, close)


def test_a_searcher_swapping_in_the_full_universe_still_cannot_score_the_holdout():
    full = _crossing_universe()
    space = SearchSpace("core", base=TINY_BASE)
    honest = Problem(full, space, split=Split("2025-12-01", SEARCH_END))
    expected = honest.evaluate(space.base)
    honest.candles = full  # the attribute is writable; the harness still cuts at SEARCH_END
    result = honest.evaluate(space.base)
    assert result.last_day == str(SEARCH_END) and result.score == expected.score and result.base == expected.base


def test_mutating_what_a_searcher_passes_or_gets_back_does_not_change_results():
    space = SearchSpace("core", base=TINY_BASE)
    problem = Problem(_crossing_universe(), space, split=Split("2025-12-01", SEARCH_END))
    objective = Objective(problem, budget=3)
    proposal = {"bull.top_n": 3, "hmm.hard_switch_threshold": 0.9}
    record = objective(proposal)
    proposal["bull.top_n"] = 20  # the searcher reuses its dict
    assert record.params["bull.top_n"] == 3 and objective.history[0].params["bull.top_n"] == 3
    values = space.values(space.base)
    values["bull.top_n"] = 29  # values() hands out a fresh dict
    assert space.values(space.base)["bull.top_n"] == TINY_BASE.bull.top_n
    with pytest.raises(dataclasses.FrozenInstanceError):
        space.base.bull.top_n = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.score = 1e9  # type: ignore[misc]
    result = problem.evaluate(space.params({"bull.top_n": 3, "hmm.hard_switch_threshold": 0.9}))
    result.base["total_return_pct"] = 1e9  # an EvalResult's dicts belong to that result only
    assert problem.evaluate(space.params({"bull.top_n": 3, "hmm.hard_switch_threshold": 0.9})).base == record.base


def test_editing_a_returned_record_does_not_change_the_history_or_the_cache():
    problem = Problem(_crossing_universe(), SearchSpace("core", base=TINY_BASE), split=Split("2025-12-01", SEARCH_END))
    objective = Objective(problem, budget=2)
    record = objective({"bull.top_n": 3})
    original = (dict(record.params), dict(record.base))
    with contextlib.suppress(TypeError):
        record.params["bull.top_n"] = 29
    with contextlib.suppress(TypeError):
        record.base["total_return_pct"] = 1e9
    again = objective({"bull.top_n": 3})  # a free cache hit
    assert (again.params, again.base) == original
    assert (objective.history[0].params, objective.history[0].base) == original


# --------------------------------------------------------------------------- the bugs the properties found, pinned
HEADER = "token,timestamp,open,high,low,close,volume\n"


@pytest.mark.parametrize(("text", "problem"), [
    (f"Token,timestamp,Open,open,high,low,close,volume\nAAA,{JAN1},1,1,1,1,1,1\n",
     "line 1: column(s) ['open'] appear more than once"),  # was: pandas "Data must be 1-dimensional"
    (f"open_time,open,high,low,close,volume\nX,{JAN1},1,2,0.5,1,10\n",
     "line 2: malformed CSV: the first data row has more fields than the header (7 instead of 6)"),  # was: loaded, X dropped
    (HEADER + f"AAA,{JAN1},True,True,True,True,1\n", "line 2: open must be a positive finite price, got True"),  # was: 1.0
    (HEADER + f"AAA,{JAN1},1,1,1,1,False\n", "line 2: volume must be a finite number >= 0, got False"),  # was: 0.0
    ("\r\r\ufeff", "malformed CSV: No columns to parse from file"),  # was: pandas EmptyDataError (explore profile)
    ('{"coins": {"c:x": {"symbol": "X", "prices": [{"timestamp": 1735732800, "price": true}]}}}',
     "price point 1: price must be a positive finite price, got True"),  # was: a price of 1.0
])
def test_loader_regressions(text, problem):
    with _tmpdir() as directory:
        path = _write(directory, "xyz.json" if text.startswith("{") else "xyz.csv", text, "plain")
        with pytest.raises(DataError) as caught:
            load_path(path)
        assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("call", "problem"), [
    (lambda s: s.params({"bull.top_n": "5"}), "bull.top_n='5' must be an int"),  # was: TypeError from <=
    (lambda s: s.params({"bull.r2_threshold": None}), "bull.r2_threshold=None must be a number"),
    (lambda s: s.params({"bull.top_n": np.array([1, 2])}), "bull.top_n=array([1, 2]) must be an int"),  # was: ambiguous truth value
    (lambda s: s.params({"bull.top_n": 5.5}), "bull.top_n=5.5 must be an int"),  # was: named GemParams.top_n only
    (lambda s: s.params({"hmm.hmm_refit_interval": True}), "is not one of the searched choices"),
    (lambda s: s.params([("bull.top_n", 5)]), "expected a mapping"),  # was: AttributeError
    (lambda s: s.decode([float("nan")] + [0.5] * 11), "NaN for ['hmm.hmm_refit_interval']"),  # was: cannot convert NaN
    (lambda s: s.decode(["a"] * 12), "12 unit coordinates (real numbers)"),  # was: bare ValueError
    (lambda s: s.decode([10**400] * 12), "12 unit coordinates (real numbers)"),  # was: OverflowError
    (lambda s: EnsembleParams.from_dict({1: 2}), "ensemble parameter 1 must be"),  # was: TypeError from `in`
    (lambda s: EnsembleParams.from_dict({"bull": {1: 2, "x": 3}}), "unknown GemParams field(s)"),  # was: TypeError from sorted
    (lambda s: EnsembleParams.from_dict(None), "must be a mapping"),  # was: AttributeError
    (lambda s: GemParams(fit_kind=np.array([1, 2])), "GemParams.fit_kind must be a str"),  # was: ambiguous truth value
])
def test_parameter_regressions(call, problem):
    with pytest.raises(ParamError) as caught:
        call(SearchSpace("core"))
    assert problem in str(caught.value), str(caught.value)
