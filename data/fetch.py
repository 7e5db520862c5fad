"""Fetch daily candles from Binance, Bybit or DefiLlama and write them in the tidy format.

Usage::

    python -m data.fetch binance --symbols BTCUSDT ETHUSDT --start 2020-01-01 --end 2025-12-31 --out PATH.csv
    python -m data.fetch bybit --symbols BTCUSDT ETHUSDT --start 2020-11-01 --end 2025-11-13 --out PATH.csv.gz
    python -m data.fetch bybit --all-linear-usdt --start 2020-11-01 --end 2025-11-13 --out PATH.csv.gz
    python -m data.fetch defillama --coins coingecko:hyperliquid=HYPEUSD --start 2025-01-01 --end 2025-06-30 --out PATH.csv

The output is ``token,timestamp,open,high,low,close,volume`` (timestamp: the
candle's open time, Unix ms at 00:00 UTC; prices in quote currency), readable by
:func:`data.loaders.load_path`; ``.csv.gz`` and ``.parquet`` outputs are allowed.
Every fetched row goes through the same validation as a loaded file.

* **Binance**: ``GET {base}/api/v3/klines?symbol=..&interval=1d&startTime=..&endTime=..&limit=1000``
  (times in Unix ms), paging by moving ``startTime`` past the last open time until
  ``--end`` is covered or a page comes back empty. The current day's candle, not yet
  closed, is dropped.
* **Bybit** (USDT-margined perpetuals):
  ``GET {base}/v5/market/kline?category=linear&symbol=..&interval=D&start=..&end=..&limit=1000``
  in windows of at most ``limit`` days, walking backwards in time from ``--end`` until
  ``--start`` is covered or a window comes back empty (not listed yet). Volume is in
  contracts (base coin).
  ``--all-linear-usdt`` lists the symbols from ``GET {base}/v5/market/instruments-info`` (paged
  with ``cursor``). The current day's candle is dropped; a listing-day candle with a price of 0
  is dropped with a warning. See :func:`fetch_bybit`.
* **DefiLlama**: ``GET {base}/chart/{coin}?start=..&span=..&period=1d&searchWidth=43199``
  in windows of ``span`` days, asking for the price nearest 12:00 UTC of each day
  within +-12 h, so each point lies inside its own UTC day. Each day becomes a candle
  ``open = high = low = close = price`` with volume 0.0 (DefiLlama has no OHLC or
  volume); see ``docs/reference/data.md``.

HTTP goes through a ``get_json(url) -> object`` callable (default: :func:`urllib_get_json`,
standard library only), so tests replay recorded responses. HTTP 429 and 418 (rate
limit, ban) and 5xx answers are retried after ``Retry-After`` seconds (or an
exponential backoff), at most ``retries`` times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from data.candles import Candles
from data.loaders import defillama_frame, klines_frame, write_tidy
from data.validation import DAY_MS, DataError, Origin, merge, validate, when

BINANCE_URL = "https://api.binance.com"
BYBIT_URL = "https://api.bybit.com"
DEFILLAMA_URL = "https://coins.llama.fi"
GetJson = Callable[[str], object]
Sleep = Callable[[float], None]

_RETRIED = frozenset({418, 429})  # rate limited / banned for Retry-After seconds; 5xx are retried too
_MAX_WAIT_S = 300.0  # longest Retry-After we wait out; longer bans fail


class FetchError(RuntimeError):
    """A download failed (network, HTTP status, unexpected response shape)."""


class HttpError(Exception):
    """A non-2xx HTTP answer, raised by a ``get_json`` callable.

    Attributes:
        status: the HTTP status code.
        url: the requested URL.
        retry_after: the ``Retry-After`` header in seconds, if any.
        detail: the start of the response body (e.g. Binance's ``{"code":-1121,"msg":"Invalid symbol."}``).
    """

    def __init__(self, status: int, url: str, retry_after: float | None = None, detail: str = "") -> None:
        super().__init__(f"HTTP {status} for {url}: {detail}".rstrip(": "))
        self.status, self.url, self.retry_after, self.detail = status, url, retry_after, detail


def urllib_get_json(url: str, timeout_s: float = 30.0) -> object:
    """GET ``url`` and decode its JSON body; :class:`HttpError` for non-2xx, :class:`FetchError` when unreachable."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "gemsearch-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        detail = exc.read()[:300].decode("utf-8", errors="replace")
        raise HttpError(exc.code, url, float(retry_after) if retry_after and retry_after.isdigit() else None,
                        detail) from None
    except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as exc:
        raise FetchError(f"{url}: {exc}") from None


def get_with_retries(get_json: GetJson, url: str, *, retries: int = 5, sleep: Sleep = time.sleep) -> object:
    """``get_json(url)``, retrying 418/429/5xx after ``Retry-After`` (else 1, 2, 4, ... s) up to ``retries`` times."""
    attempt = 0
    while True:
        try:
            return get_json(url)
        except HttpError as exc:
            if exc.status not in _RETRIED and exc.status < 500:
                raise FetchError(str(exc)) from None
            wait = exc.retry_after if exc.retry_after is not None else float(2 ** attempt)
            if attempt == retries or wait > _MAX_WAIT_S:
                raise FetchError(f"{exc} (gave up after {attempt + 1} attempts; Retry-After {wait:g} s)") from None
            sleep(wait)
            attempt += 1


def _day_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * DAY_MS


# --------------------------------------------------------------------------- Binance
def binance_klines(symbol: str, start: dt.date, end: dt.date, *, get: Callable[[str], object],
                   base_url: str = BINANCE_URL, limit: int = 1000) -> list[list[object]]:
    """All 1d klines of ``symbol`` opening on days ``start..end`` (inclusive), page by page."""
    first_ms, last_ms = _day_ms(start), _day_ms(end)
    rows: list[list[object]] = []
    cursor = first_ms
    while cursor <= last_ms:
        query = {"symbol": symbol, "interval": "1d", "startTime": cursor, "endTime": last_ms + DAY_MS - 1, "limit": limit}
        url = f"{base_url}/api/v3/klines?{urllib.parse.urlencode(query)}"
        page = get(url)
        if not isinstance(page, list):
            raise FetchError(f"{url}: expected a JSON list of klines, got {type(page).__name__}")
        if not page:
            break
        try:
            last_open = int(page[-1][0])
        except (TypeError, ValueError, IndexError, KeyError):
            raise FetchError(f"{url}: not a kline: {page[-1]!r}") from None
        if last_open < cursor:
            raise FetchError(f"{url}: the page ends at open time {last_open}, before startTime {cursor}")
        rows.extend(page)
        cursor = last_open + 1
    return rows


def fetch_binance(symbols: Sequence[str], start: dt.date, end: dt.date, *, get_json: GetJson = urllib_get_json,
                  base_url: str = BINANCE_URL, limit: int = 1000, sleep: Sleep = time.sleep,
                  now_ms: int | None = None) -> Candles:
    """Daily candles of Binance ``symbols`` for ``start..end``; closed candles only (close time before ``now_ms``)."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    get = lambda url: get_with_retries(get_json, url, sleep=sleep)  # noqa: E731
    parts = []
    for symbol in symbols:
        origin = Origin(f"binance {symbol}", unit="kline")
        no_data = FetchError(f"{origin.name}: no closed daily klines between {start} and {end}")
        rows = binance_klines(symbol, start, end, get=get, base_url=base_url, limit=limit)
        if not rows:
            raise no_data
        frame = klines_frame(rows, token=symbol, origin=origin)
        close_ms = frame["date"].to_numpy().astype("datetime64[ms]").astype(np.int64) + DAY_MS
        frame = frame[close_ms <= now_ms]
        if frame.empty:
            raise no_data
        parts.append((origin, frame))
    return Candles.from_frame(merge(parts), name="binance")


# --------------------------------------------------------------------------- Bybit
BYBIT_KLINE_FIELDS: tuple[str, ...] = ("startTime", "openPrice", "highPrice", "lowPrice", "closePrice", "volume",
                                       "turnover")
"""The fields of a Bybit v5 kline (``result.list`` entry), all strings; fields after ``volume`` are not used."""

_BYBIT_RATE_LIMITED = 10006  # retCode "Too many visits!": the API rate limit; retried like HTTP 429


def _bybit_http(get_json: GetJson) -> GetJson:
    """``get_json`` with Bybit's HTTP 403 turned into a :class:`FetchError` that says what it means."""

    def get(url: str) -> object:
        try:
            return get_json(url)
        except HttpError as exc:
            if exc.status != 403:
                raise
            raise FetchError(f"{exc}: Bybit answers 403 when this IP went over its limit (600 requests in 5 s; "
                             f"Bybit asks to stop and wait at least 10 minutes) or when it refuses the country or "
                             f"region the request comes from; not retried") from None

    return get


def bybit_result(get_json: GetJson, url: str, *, retries: int = 5, sleep: Sleep = time.sleep) -> dict[str, object]:
    """The ``result`` object of a Bybit v5 answer ``{"retCode": 0, "retMsg": "OK", "result": {...}}``.

    HTTP 429 and 5xx are retried by :func:`get_with_retries`; ``retCode`` 10006 ("Too many
    visits!", HTTP 200) is retried after 1, 2, 4, ... s, at most ``retries`` times. HTTP 403 and
    any other non-zero ``retCode`` (e.g. 10001 "Not supported symbols") raise :class:`FetchError`
    with Bybit's ``retMsg``.
    """
    get = _bybit_http(get_json)
    attempt = 0
    while True:
        payload = get_with_retries(get, url, retries=retries, sleep=sleep)
        code = payload.get("retCode") if isinstance(payload, dict) else None
        if not isinstance(code, int) or isinstance(code, bool):
            raise FetchError(f'{url}: expected a Bybit answer {{"retCode": 0, "result": {{...}}}}, '
                             f"got {str(payload)[:200]}")
        if code == 0:
            result = payload.get("result")
            if not isinstance(result, dict) or not isinstance(result.get("list"), list):
                raise FetchError(f'{url}: expected "result": {{"list": [...]}}, got {str(result)[:200]}')
            return result
        problem = f"{url}: Bybit retCode {code}: {payload.get('retMsg', '')}".rstrip(": ")
        if code != _BYBIT_RATE_LIMITED:
            raise FetchError(problem)
        if attempt == retries:
            raise FetchError(f"{problem} (gave up after {attempt + 1} attempts)")
        sleep(float(2 ** attempt))
        attempt += 1


def bybit_linear_usdt_symbols(*, get_json: GetJson = urllib_get_json, base_url: str = BYBIT_URL, limit: int = 1000,
                              sleep: Sleep = time.sleep) -> list[str]:
    """Every trading USDT-margined perpetual on Bybit, sorted: ``contractType`` LinearPerpetual, ``quoteCoin`` USDT.

    Pages ``GET {base}/v5/market/instruments-info?category=linear&status=Trading&limit=..``
    with ``cursor`` set to the previous page's ``nextPageCursor`` until that is empty.
    Dated futures (LinearFutures) and USDC contracts, which the same category lists, are left out.
    """
    symbols: set[str] = set()
    cursor, seen = "", set()
    while True:
        query = {"category": "linear", "status": "Trading", "limit": limit, **({"cursor": cursor} if cursor else {})}
        url = f"{base_url}/v5/market/instruments-info?{urllib.parse.urlencode(query)}"
        result = bybit_result(get_json, url, sleep=sleep)
        for item in result["list"]:
            if not isinstance(item, dict) or not isinstance(item.get("symbol"), str):
                raise FetchError(f"{url}: not an instrument: {str(item)[:200]}")
            if (item.get("contractType"), item.get("quoteCoin"), item.get("status")) == ("LinearPerpetual", "USDT",
                                                                                         "Trading"):
                symbols.add(item["symbol"])
        cursor = result.get("nextPageCursor") or ""
        if not cursor:
            break
        if not isinstance(cursor, str) or cursor in seen:
            raise FetchError(f"{url}: nextPageCursor {cursor!r} repeats an earlier page; stopping")
        seen.add(cursor)
    if not symbols:
        raise FetchError(f"{base_url}/v5/market/instruments-info: no trading USDT perpetuals (LinearPerpetual, USDT)")
    return sorted(symbols)


def bybit_klines(symbol: str, start: dt.date, end: dt.date, *, get: Callable[[str], object],
                 base_url: str = BYBIT_URL, limit: int = 1000) -> list[list[object]]:
    """All daily klines of ``symbol`` opening on days ``start..end`` (inclusive), oldest first, without duplicates.

    Windows of at most ``limit`` days are requested from ``end`` backwards (the next window
    ends 1 ms before the previous one starts) until ``start`` is covered or a window holds no
    candle (the symbol was not listed yet). ``get(url)`` returns the answer's ``result``. A
    candle that two pages both hold (a boundary candle) is kept once; two different candles
    for one open time raise :class:`FetchError`; candles outside ``start..end`` are ignored.
    """
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    first_ms, last_ms = _day_ms(start), _day_ms(end)
    candles: dict[int, list[object]] = {}
    window_end = last_ms + DAY_MS - 1
    while window_end >= first_ms:
        window_start = max(first_ms, window_end + 1 - limit * DAY_MS)
        query = {"category": "linear", "symbol": symbol, "interval": "D", "start": window_start, "end": window_end,
                 "limit": limit}
        url = f"{base_url}/v5/market/kline?{urllib.parse.urlencode(query)}"
        page = get(url)["list"]
        for row in page:
            try:
                if not isinstance(row, list) or len(row) < 6:
                    raise ValueError
                opened = int(row[0])
            except (TypeError, ValueError):
                raise FetchError(f"{url}: not a Bybit kline [{', '.join(BYBIT_KLINE_FIELDS)}]: {row!r}") from None
            if not first_ms <= opened <= last_ms + DAY_MS - 1:
                continue
            known = candles.setdefault(opened, row)
            if known != row:
                raise FetchError(f"{url}: two different candles open at {opened} ({when(opened)}): "
                                 f"{known!r} and {row!r}")
        if not page:
            break
        window_end = window_start - 1
    return [candles[t] for t in sorted(candles)]


def bybit_frame(rows: list[list[object]], *, token: str, origin: Origin) -> pd.DataFrame:
    """Validate Bybit kline arrays (oldest first) into a tidy frame; row ``k`` is "kline k"."""
    frame = pd.DataFrame([row[:6] for row in rows], columns=["time", "open", "high", "low", "close", "volume"])
    raw = frame.assign(token=token, line=np.arange(len(frame)) + 1)
    return validate(raw, origin)


def _listing_day_zero(rows: list[list[object]], origin: Origin, log: Callable[[str], None]) -> list[list[object]]:
    """Drop the first (listing-day) candle when one of its prices is 0 or negative, with a warning naming it.

    Bybit's first daily candle of a new perpetual can open at 0 (e.g. BCHUSDT 2020-12-14); a
    non-positive price anywhere else is left to the validation, which rejects it.
    """
    prices = pd.to_numeric(pd.Series(rows[0][1:5]), errors="coerce").to_numpy(dtype=np.float64)
    if not (prices <= 0).any():
        return rows
    shown = ", ".join(f"{name} {value}" for name, value in zip(("open", "high", "low", "close"), rows[0][1:5]))
    log(f"warning: {origin.name}: dropped the listing-day candle {when(int(rows[0][0]))} ({shown}): "
        f"a price of 0 or below is not a price")
    return rows[1:]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def fetch_bybit(symbols: Sequence[str], start: dt.date, end: dt.date, *, get_json: GetJson = urllib_get_json,
                base_url: str = BYBIT_URL, limit: int = 1000, sleep: Sleep = time.sleep, now_ms: int | None = None,
                skip_empty: bool = False, log: Callable[[str], None] = _stderr) -> Candles:
    """Daily candles of Bybit USDT-perpetual ``symbols`` for ``start..end``; closed candles only.

    Token names are the symbols (``BTCUSDT``); volume is the contracts traded (for USDT
    perpetuals one contract is one unit of the base coin); the output matches
    ``bybit_perp_daily.csv.gz`` (see ``docs/reference/data.md``, "Fetchers").

    * A candle is kept once closed: open time + 1 day <= ``now_ms`` (the current day is dropped).
    * The listing-day candle (a symbol's first) with a price <= 0 is dropped and ``log`` gets a
      ``"warning: ..."`` naming the symbol, the day and the prices; the shared file was built the
      same way. A price <= 0 on any later day is rejected by the validation (:class:`DataError`).
    * A symbol without closed candles in range raises :class:`FetchError`, or with
      ``skip_empty`` (used by ``--all-linear-usdt``: newer listings) is skipped with a warning.

    What was checked against Bybit's v5 documentation (docs search, Nov 2025 pages
    ``bybit-exchange.github.io/docs/v5/market/kline``, ``.../v5/market/instrument``,
    ``.../v5/rate-limit`` and copies of their text in public repositories):

    * ``GET /v5/market/kline``: ``category`` (``linear`` = USDT/USDC contracts, the default),
      ``symbol`` (upper case), ``interval`` ``D``, ``start``/``end`` in Unix ms, ``limit`` 1..1000
      (default 200). ``result.list`` is "sorted in reverse by startTime" (newest first); each
      candle is strings ``[startTime, openPrice, highPrice, lowPrice, closePrice, volume,
      turnover]``; volume is in base coin for USDT contracts, the close of an unclosed candle is
      the last traded price.
    * ``GET /v5/market/instruments-info``: ``category=linear``, ``status`` (linear returns only
      ``Trading`` by default), ``limit`` 1..1000 (default 500; "more than 500 linear symbols", so
      paging is needed), ``cursor`` = the previous ``result.nextPageCursor`` (empty on the last
      page); entries have ``symbol``, ``contractType`` (``LinearPerpetual``, ``LinearFutures``),
      ``status``, ``quoteCoin``.
    * Errors come as HTTP 200 with ``retCode`` != 0: 10006 "Too many visits!" is the API rate
      limit (retried); HTTP 403 "access too frequent" is an IP ban of at least 10 minutes
      (600 requests per 5 s), so it is reported, not retried. An unknown symbol answers
      ``retCode`` 10001 "Not supported symbols" (seen in public client code and tests, not on
      the documentation pages).
    * Not documented: which ``limit`` candles Bybit returns when ``start..end`` holds more than
      ``limit``. Each window here holds at most ``limit`` days, so the answer does not matter.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    get = lambda url: bybit_result(get_json, url, sleep=sleep)  # noqa: E731
    parts = []
    for number, symbol in enumerate(symbols, start=1):
        origin = Origin(f"bybit {symbol}", unit="kline")
        rows = bybit_klines(symbol, start, end, get=get, base_url=base_url, limit=limit)
        rows = [row for row in rows if int(row[0]) + DAY_MS <= now_ms]
        if rows:
            rows = _listing_day_zero(rows, origin, log)
        if not rows:
            problem = f"{origin.name}: no closed daily klines between {start} and {end}"
            if not skip_empty:
                raise FetchError(problem)
            log(f"warning: {problem}; skipped")
            continue
        parts.append((origin, bybit_frame(rows, token=symbol, origin=origin)))
        log(f"{origin.name}: {len(rows)} daily candles {when(int(rows[0][0]))}..{when(int(rows[-1][0]))} "
            f"({number}/{len(symbols)})")
    if not parts:
        raise FetchError(f"bybit: none of the {len(symbols)} symbols has closed daily klines between {start} and {end}")
    return Candles.from_frame(merge(parts), name="bybit")


# --------------------------------------------------------------------------- DefiLlama
def defillama_prices(coin: str, start: dt.date, end: dt.date, *, get: Callable[[str], object],
                     base_url: str = DEFILLAMA_URL, span: int = 500) -> dict[str, object]:
    """The coin's daily price points for ``start..end`` as one ``/chart``-style response ``{"coins": {coin: ...}}``.

    Windows of ``span`` days are requested in turn; points of all windows are merged by
    timestamp (a repeated timestamp keeps the later window's point) and sorted.
    """
    symbol = None
    points: dict[float, dict[str, object]] = {}
    day = start
    while day <= end:
        days = min(span, (end - day).days + 1)
        noon_s = _day_ms(day) // 1000 + 43_200
        query = {"start": noon_s, "span": days, "period": "1d", "searchWidth": 43_199}
        url = f"{base_url}/chart/{urllib.parse.quote(coin, safe=':')}?{urllib.parse.urlencode(query)}"
        payload = get(url)
        coins = payload.get("coins") if isinstance(payload, dict) else None
        if not isinstance(coins, dict):
            raise FetchError(f'{url}: expected {{"coins": {{...}}}}, got {str(payload)[:200]}')
        entry = coins.get(coin)
        if entry is not None:  # DefiLlama answers {"coins": {}} for a window without prices
            prices = entry.get("prices") if isinstance(entry, dict) else None
            if not isinstance(prices, list) or not all(isinstance(p, dict) and "timestamp" in p for p in prices):
                raise FetchError(f'{url}: expected "prices": [{{"timestamp", "price"}}, ...] for {coin}')
            symbol = entry.get("symbol", symbol)
            points.update((p["timestamp"], p) for p in prices)
        day += dt.timedelta(days=days)
    if not points:
        raise FetchError(f"defillama {coin}: no prices between {start} and {end}")
    return {"coins": {coin: {"symbol": symbol, "prices": [points[t] for t in sorted(points)]}}}


def fetch_defillama(coins: Mapping[str, str | None], start: dt.date, end: dt.date, *,
                    get_json: GetJson = urllib_get_json, base_url: str = DEFILLAMA_URL, span: int = 500,
                    sleep: Sleep = time.sleep) -> Candles:
    """Daily price candles of DefiLlama ``coins`` (coin id -> token name, None: symbol + "USD") for ``start..end``."""
    get = lambda url: get_with_retries(get_json, url, sleep=sleep)  # noqa: E731
    parts = []
    for coin, token in coins.items():
        payload = defillama_prices(coin, start, end, get=get, base_url=base_url, span=span)
        origin = Origin(f"defillama {coin}", unit="price point")
        frame = defillama_frame(payload, origin, coin_names={coin: token} if token else None)
        in_range = (frame["date"] >= np.datetime64(start)) & (frame["date"] <= np.datetime64(end))
        if not in_range.any():
            raise FetchError(f"{origin.name}: no prices between {start} and {end}")
        parts.append((origin, frame[in_range]))
    return Candles.from_frame(merge(parts), name="defillama")


# --------------------------------------------------------------------------- command line
def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _symbol(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{2,30}", text):
        raise argparse.ArgumentTypeError(f"not a Binance symbol (letters and digits, e.g. BTCUSDT): {text!r}")
    return text.upper()


def _bybit_symbol(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9]{2,40}", text):
        raise argparse.ArgumentTypeError(f"not a Bybit symbol (letters and digits, e.g. BTCUSDT): {text!r}")
    return text.upper()


def _coin(text: str) -> tuple[str, str | None]:
    match = re.fullmatch(r"([a-z0-9-]+:[^=\s]+?)(?:=([A-Za-z0-9]+))?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"not a DefiLlama coin (e.g. coingecko:hyperliquid or "
                                         f"coingecko:hyperliquid=HYPEUSD): {text!r}")
    return match.group(1), match.group(2)


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser and its subcommand parsers (for errors that print the subcommand's usage)."""
    summary, _, examples = __doc__.split("\n\n")[:3]
    parser = argparse.ArgumentParser(prog="python -m data.fetch", description=summary, epilog="examples:\n" + examples,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sources = parser.add_subparsers(dest="source", required=True, metavar="{binance,bybit,defillama}")
    binance = sources.add_parser("binance", help="Binance spot daily klines (OHLCV)")
    binance.add_argument("--symbols", nargs="+", required=True, type=_symbol, help="e.g. BTCUSDT ETHUSDT")
    bybit = sources.add_parser("bybit", help="Bybit USDT-perpetual daily klines (OHLCV, volume in contracts)")
    which = bybit.add_mutually_exclusive_group(required=True)
    which.add_argument("--symbols", nargs="+", type=_bybit_symbol, help="e.g. BTCUSDT ETHUSDT 1000PEPEUSDT")
    which.add_argument("--all-linear-usdt", action="store_true",
                       help="every USDT perpetual trading now (instruments-info); symbols without candles in "
                            "range are skipped with a warning")
    defillama = sources.add_parser("defillama", help="DefiLlama daily prices (close only; volume 0)")
    defillama.add_argument("--coins", nargs="+", required=True, type=_coin,
                           help="coin ids, optionally =TOKEN: coingecko:hyperliquid=HYPEUSD (default name: SYMBOL+USD)")
    for sub, url in ((binance, BINANCE_URL), (bybit, BYBIT_URL), (defillama, DEFILLAMA_URL)):
        sub.add_argument("--start", required=True, type=_date, help="first day, YYYY-MM-DD (UTC)")
        sub.add_argument("--end", required=True, type=_date, help="last day, YYYY-MM-DD (UTC, inclusive)")
        sub.add_argument("--out", required=True, type=Path, help="output file: .csv, .csv.gz or .parquet")
        sub.add_argument("--base-url", default=url, help=f"API root (default {url})")
    return parser, {"binance": binance, "bybit": bybit, "defillama": defillama}


def main(argv: Sequence[str] | None = None, *, get_json: GetJson = urllib_get_json, sleep: Sleep = time.sleep) -> int:
    """Run the command line; exit status 0 on success, 1 when the download or data fails, 2 for bad arguments."""
    parser, subcommands = _parser()
    args = parser.parse_args(argv)
    sub = subcommands[args.source]
    if args.start > args.end:
        sub.error(f"--start {args.start} is after --end {args.end}")
    if not re.search(r"\.(csv|csv\.gz|parquet)$", args.out.name, flags=re.IGNORECASE):
        sub.error(f"--out must end in .csv, .csv.gz or .parquet: {args.out}")
    if args.source == "defillama":
        names = [token for _, token in args.coins if token]
        if len(set(c for c, _ in args.coins)) != len(args.coins) or len(set(names)) != len(names):
            sub.error("each coin and each =TOKEN name may be given only once")
    try:
        if args.source == "binance":
            candles = fetch_binance(list(dict.fromkeys(args.symbols)), args.start, args.end, get_json=get_json,
                                    base_url=args.base_url, sleep=sleep)
        elif args.source == "bybit":
            if args.all_linear_usdt:
                symbols = bybit_linear_usdt_symbols(get_json=get_json, base_url=args.base_url, sleep=sleep)
                print(f"bybit: {len(symbols)} USDT perpetuals trading now", file=sys.stderr)
            else:
                symbols = list(dict.fromkeys(args.symbols))
            candles = fetch_bybit(symbols, args.start, args.end, get_json=get_json, base_url=args.base_url,
                                  sleep=sleep, skip_empty=args.all_linear_usdt)
        else:
            candles = fetch_defillama(dict(args.coins), args.start, args.end, get_json=get_json,
                                      base_url=args.base_url, sleep=sleep)
        write_tidy(candles, args.out)
    except (FetchError, DataError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {int(candles.listed.sum())} candles of {candles.n_tokens} tokens "
          f"({candles.dates[0]}..{candles.dates[-1]}) to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
