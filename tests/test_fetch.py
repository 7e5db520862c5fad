"""Fetchers: paging, retries and the CLI, replayed from hand-written recorded responses (no network)."""

from __future__ import annotations

import collections
import datetime as dt
import gzip
import http.server
import json
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from data.fetch import (FetchError, HttpError, bybit_linear_usdt_symbols, fetch_binance, fetch_bybit, fetch_defillama,
                        get_with_retries, main, urllib_get_json)
from data.loaders import DataError, load_path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
JAN1_2024 = 1704067200000
PAGE1, PAGE2 = (json.loads((FIXTURES / f"binance_klines_page{k}.json").read_text()) for k in (1, 2))
FAR_FUTURE = 10**13


class Replay:
    """A ``get_json`` that answers from a table keyed by one query parameter and records the URLs."""

    def __init__(self, key: str, answers: dict[str, object]) -> None:
        self.key, self.answers, self.urls = key, answers, []

    def __call__(self, url: str) -> object:
        self.urls.append(url)
        answer = self.answers[urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)[self.key][0]]
        if isinstance(answer, Exception):
            raise answer
        return answer


def _binance_replay() -> Replay:
    return Replay("startTime", {str(JAN1_2024): PAGE1, str(PAGE1[-1][0] + 1): PAGE2, str(PAGE2[-1][0] + 1): []})


# --------------------------------------------------------------------------- Binance
def test_binance_pages_until_range_covered_and_matches_kline_file():
    replay = _binance_replay()
    candles = fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=replay, now_ms=FAR_FUTURE)
    assert replay.urls == [
        "https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=1704067200000&endTime=1704499199999&limit=1000",
        "https://api.binance.com/api/v3/klines?symbol=BTCUSDT&interval=1d&startTime=1704240000001&endTime=1704499199999&limit=1000",
    ]
    recorded = load_path(FIXTURES / "BTCUSDT-1d-2024-01.csv")
    for name in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(candles, name), getattr(recorded, name))
    np.testing.assert_array_equal(candles.dates, recorded.dates)


def test_binance_stops_on_empty_page_and_drops_unclosed_candle():
    replay = _binance_replay()
    last_close = PAGE2[-1][6]
    candles = fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 31), get_json=replay, now_ms=last_close)
    assert len(replay.urls) == 3 and "startTime=1704412800001" in replay.urls[-1]
    assert str(candles.dates[-1]) == "2024-01-04"  # 2024-01-05 closes at last_close, not before now
    assert fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 31), get_json=_binance_replay(),
                         now_ms=last_close + 1).n_days == 5


def test_binance_errors():
    empty = Replay("startTime", {str(JAN1_2024): []})
    with pytest.raises(FetchError, match=r"binance NEWUSDT: no closed daily klines between 2024-01-01 and 2024-01-05"):
        fetch_binance(["NEWUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=empty, now_ms=FAR_FUTURE)
    with pytest.raises(FetchError, match=r"binance BTCUSDT: no closed daily klines"):
        fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=_binance_replay(), now_ms=JAN1_2024)
    odd = Replay("startTime", {str(JAN1_2024): {"code": -1121, "msg": "Invalid symbol."}})
    with pytest.raises(FetchError, match=r"expected a JSON list of klines, got dict"):
        fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=odd, now_ms=FAR_FUTURE)
    corrupt = [list(row) for row in PAGE1]
    corrupt[1][2] = "40000.0"  # high below low
    bad = Replay("startTime", {str(JAN1_2024): corrupt, str(PAGE1[-1][0] + 1): []})
    with pytest.raises(DataError, match=r"^binance BTCUSDT: kline 2: high 40000.0 is below low 44148.34 \(BTCUSDT 2024-01-02\)"):
        fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=bad, now_ms=FAR_FUTURE)
    short = Replay("startTime", {str(JAN1_2024): [PAGE1[0][:6]], str(PAGE1[0][0] + 1): []})
    with pytest.raises(DataError, match=r"binance BTCUSDT: kline 1: a kline must be a list of 12 fields"):
        fetch_binance(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 5), get_json=short, now_ms=FAR_FUTURE)


# --------------------------------------------------------------------------- retries
def test_retries_follow_retry_after_then_give_up():
    slept: list[float] = []
    answers = iter([HttpError(429, "u", retry_after=3), HttpError(503, "u"), ["ok"]])

    def flaky(url):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert get_with_retries(flaky, "u", sleep=slept.append) == ["ok"]
    assert slept == [3, 2.0]  # Retry-After, then exponential backoff for the second attempt

    slept.clear()

    def banned(url):
        raise HttpError(418, url, retry_after=1)

    with pytest.raises(FetchError, match=r"HTTP 418 for u \(gave up after 3 attempts; Retry-After 1 s\)"):
        get_with_retries(banned, "u", retries=2, sleep=slept.append)
    assert slept == [1, 1]

    def long_ban(url):
        raise HttpError(418, url, retry_after=3600)

    with pytest.raises(FetchError, match=r"gave up after 1 attempts; Retry-After 3600 s"):
        get_with_retries(long_ban, "u", sleep=slept.append)

    def invalid(url):
        raise HttpError(400, url, detail='{"code":-1121,"msg":"Invalid symbol."}')

    with pytest.raises(FetchError, match=r'HTTP 400 for u: \{"code":-1121,"msg":"Invalid symbol."\}'):
        get_with_retries(invalid, "u", sleep=slept.append)
    assert slept == [1, 1]


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        status, headers, body = {"/ok": (200, {}, b'{"a": 1}'),
                                 "/busy": (429, {"Retry-After": "7"}, b'{"msg": "slow down"}')}[self.path]
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_urllib_get_json_against_a_local_server():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    root = f"http://127.0.0.1:{server.server_port}"
    try:
        assert urllib_get_json(f"{root}/ok") == {"a": 1}
        with pytest.raises(HttpError) as caught:
            urllib_get_json(f"{root}/busy")
        assert (caught.value.status, caught.value.retry_after) == (429, 7.0)
        assert "slow down" in caught.value.detail
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(FetchError, match=r"http://127.0.0.1:9/x: "):
        urllib_get_json("http://127.0.0.1:9/x", timeout_s=2)


# --------------------------------------------------------------------------- DefiLlama
def _llama_replay() -> Replay:
    pages = [json.loads((FIXTURES / f"defillama_chart_page{k}.json").read_text()) for k in (1, 2)]
    return Replay("start", {"1735732800": pages[0], "1735992000": pages[1]})


def test_defillama_pages_in_spans_and_builds_daily_candles():
    replay = _llama_replay()
    candles = fetch_defillama({"coingecko:hyperliquid": "HYPEUSD"}, dt.date(2025, 1, 1), dt.date(2025, 1, 4),
                              get_json=replay, span=3)
    assert replay.urls == [
        "https://coins.llama.fi/chart/coingecko:hyperliquid?start=1735732800&span=3&period=1d&searchWidth=43199",
        "https://coins.llama.fi/chart/coingecko:hyperliquid?start=1735992000&span=1&period=1d&searchWidth=43199",
    ]
    assert candles.tokens == ("HYPEUSD",)
    np.testing.assert_array_equal(candles.dates, np.arange("2025-01-01", "2025-01-05", dtype="datetime64[D]"))
    np.testing.assert_array_equal(candles.close[:, 0], [24.51, 25.9, 26.12, 22.8])
    np.testing.assert_array_equal(candles.high, candles.low)
    assert (candles.volume == 0).all()
    default_name = fetch_defillama({"coingecko:hyperliquid": None}, dt.date(2025, 1, 1), dt.date(2025, 1, 4),
                                   get_json=_llama_replay(), span=3)
    assert default_name.tokens == ("HYPEUSD",)


def test_defillama_errors():
    nothing = Replay("start", {"1735732800": {"coins": {}}})
    with pytest.raises(FetchError, match=r"defillama coingecko:nope: no prices between 2025-01-01 and 2025-01-03"):
        fetch_defillama({"coingecko:nope": None}, dt.date(2025, 1, 1), dt.date(2025, 1, 3), get_json=nothing)
    broken = Replay("start", {"1735732800": {"error": "bad coin"}})
    with pytest.raises(FetchError, match=r'expected \{"coins": \{...\}\}, got \{\'error\': \'bad coin\'\}'):
        fetch_defillama({"coingecko:nope": None}, dt.date(2025, 1, 1), dt.date(2025, 1, 3), get_json=broken)


# --------------------------------------------------------------------------- command line
def test_cli_writes_tidy_file_that_loads_back(tmp_path, capsys):
    out = tmp_path / "btc.csv.gz"
    argv = ["binance", "--symbols", "btcusdt", "--start", "2024-01-01", "--end", "2024-01-05", "--out", str(out)]
    assert main(argv, get_json=_binance_replay()) == 0
    assert "wrote 5 candles of 1 tokens (2024-01-01..2024-01-05)" in capsys.readouterr().err
    loaded = load_path(out)
    recorded = load_path(FIXTURES / "BTCUSDT-1d-2024-01.csv")
    np.testing.assert_array_equal(loaded.close, recorded.close)
    assert loaded.fingerprint == recorded.fingerprint
    out = tmp_path / "hype.csv"
    argv = ["defillama", "--coins", "coingecko:hyperliquid=HYPE", "--start", "2025-01-01", "--end", "2025-01-04",
            "--out", str(out)]
    assert main(argv, get_json=_llama_replay()) == 0
    assert out.read_text().splitlines()[:2] == ["token,timestamp,open,high,low,close,volume",
                                                "HYPE,1735689600000,24.51,24.51,24.51,24.51,0.0"]


def test_cli_reports_fetch_failures_with_exit_1(tmp_path, capsys):
    def refuse(url):
        raise HttpError(400, url, detail='{"code":-1121,"msg":"Invalid symbol."}')

    argv = ["binance", "--symbols", "NOPEUSDT", "--start", "2024-01-01", "--end", "2024-01-05", "--out", str(tmp_path / "x.csv")]
    assert main(argv, get_json=refuse) == 1
    assert "error: HTTP 400 for https://api.binance.com/api/v3/klines?symbol=NOPEUSDT" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "the following arguments are required"),
        (["kraken"], "invalid choice: 'kraken'"),
        (["binance", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.csv"], "--symbols"),
        (["binance", "--symbols", "BTC/USDT", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.csv"],
         "not a Binance symbol"),
        (["binance", "--symbols", "BTCUSDT", "--start", "2024-13-01", "--end", "2024-01-02", "--out", "x.csv"],
         "not a date (YYYY-MM-DD): '2024-13-01'"),
        (["binance", "--symbols", "BTCUSDT", "--start", "2024-02-01", "--end", "2024-01-02", "--out", "x.csv"],
         "--start 2024-02-01 is after --end 2024-01-02"),
        (["binance", "--symbols", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.txt"],
         "--out must end in .csv, .csv.gz or .parquet"),
        (["defillama", "--coins", "hyperliquid", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.csv"],
         "not a DefiLlama coin"),
        (["defillama", "--coins", "coingecko:a=X", "coingecko:b=X", "--start", "2024-01-01", "--end", "2024-01-02",
          "--out", "x.csv"], "each coin and each =TOKEN name may be given only once"),
    ],
)
def test_cli_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv, get_json=lambda url: pytest.fail("must not fetch"))
    assert caught.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_help_as_a_module():
    done = subprocess.run([sys.executable, "-m", "data.fetch", "defillama", "--help"], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == 0
    assert "--coins" in done.stdout and "coingecko:hyperliquid=HYPEUSD" in done.stdout


# --------------------------------------------------------------------------- Bybit
BYBIT = FIXTURES / "bybit"
DAY = 86_400_000
BYBIT_KLINE = "https://api.bybit.com/v5/market/kline"


def _bybit(name: str) -> dict:
    return json.loads((BYBIT / f"{name}.json").read_text())


def _iso(ms: int | str) -> str:
    return str(dt.date(1970, 1, 1) + dt.timedelta(milliseconds=int(ms)))


class BybitReplay:
    """A ``get_json`` for Bybit URLs: kline pages keyed ``"SYMBOL first-day last-day"`` (the window's UTC days),
    instrument pages keyed ``"instruments CURSOR"``. A tuple answers successive calls in turn; exceptions are raised."""

    def __init__(self, answers: dict[str, object]) -> None:
        self.answers = {key: collections.deque(value) if isinstance(value, tuple) else value
                        for key, value in answers.items()}
        self.urls: list[str] = []

    def __call__(self, url: str) -> object:
        self.urls.append(url)
        parts = urllib.parse.urlsplit(url)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        if parts.path.endswith("/instruments-info"):
            key = f"instruments {query.get('cursor', '')}"
        else:
            assert int(query["start"]) % DAY == 0 and (int(query["end"]) + 1) % DAY == 0, url  # whole UTC days
            key = f"{query['symbol']} {_iso(query['start'])} {_iso(query['end'])}"
        assert key in self.answers, f"unexpected request {key!r}: {url}"
        answer = self.answers[key]
        if isinstance(answer, collections.deque):
            answer = answer.popleft()
        if isinstance(answer, Exception):
            raise answer
        return answer


def _full_pages() -> dict[str, object]:
    return {f"{s} 2024-01-01 2024-01-07": _bybit(f"kline_{s}_2024-01-01_2024-01-07") for s in ("BTCUSDT", "NEWUSDT")}


def _expected(symbol: str) -> np.ndarray:
    """The symbol's candles from its one-page fixture, oldest first: columns open, high, low, close, volume."""
    rows = _bybit(f"kline_{symbol}_2024-01-01_2024-01-07")["result"]["list"][::-1]
    return np.array([[float(x) for x in row[1:6]] for row in rows])


def _ohlcv(candles, token: str) -> np.ndarray:
    k = candles.tokens.index(token)
    listed = candles.listed[:, k]
    return np.column_stack([getattr(candles, f)[listed, k] for f in ("open", "high", "low", "close", "volume")])


def test_bybit_pages_backwards_in_windows_and_keeps_a_boundary_candle_once():
    pages = {f"BTCUSDT {a} {b}": _bybit(f"kline_BTCUSDT_{a}_{b}") for a, b in
             (("2024-01-05", "2024-01-07"), ("2024-01-02", "2024-01-04"), ("2024-01-01", "2024-01-01"))}
    replay = BybitReplay(pages)
    logs: list[str] = []
    candles = fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=replay, limit=3,
                          now_ms=FAR_FUTURE, log=logs.append)
    assert replay.urls == [
        f"{BYBIT_KLINE}?category=linear&symbol=BTCUSDT&interval=D&start=1704412800000&end=1704671999999&limit=3",
        f"{BYBIT_KLINE}?category=linear&symbol=BTCUSDT&interval=D&start=1704153600000&end=1704412799999&limit=3",
        f"{BYBIT_KLINE}?category=linear&symbol=BTCUSDT&interval=D&start=1704067200000&end=1704153599999&limit=3",
    ]
    np.testing.assert_array_equal(candles.dates, np.arange("2024-01-01", "2024-01-08", dtype="datetime64[D]"))
    np.testing.assert_array_equal(_ohlcv(candles, "BTCUSDT"), _expected("BTCUSDT"))  # 01-05 once, not twice
    assert logs == ["bybit BTCUSDT: 7 daily candles 2024-01-01..2024-01-07 (1/1)"]
    one_page = fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=BybitReplay(_full_pages()),
                           now_ms=FAR_FUTURE, log=logs.append)
    assert one_page.fingerprint == candles.fingerprint


def test_bybit_symbol_listed_mid_range_stops_at_an_empty_window():
    pages = {f"NEWUSDT {a} {b}": _bybit(f"kline_NEWUSDT_{a}_{b}") for a, b in
             (("2024-01-05", "2024-01-07"), ("2024-01-02", "2024-01-04"), ("2023-12-30", "2024-01-01"))}
    replay = BybitReplay(pages)
    candles = fetch_bybit(["NEWUSDT"], dt.date(2023, 12, 26), dt.date(2024, 1, 7), get_json=replay, limit=3,
                          now_ms=FAR_FUTURE, log=lambda m: None)
    assert len(replay.urls) == 3  # 2023-12-27..29 and 2023-12-26 are not asked for: nothing before the listing
    np.testing.assert_array_equal(candles.dates, np.arange("2024-01-03", "2024-01-08", dtype="datetime64[D]"))
    np.testing.assert_array_equal(_ohlcv(candles, "NEWUSDT"), _expected("NEWUSDT"))
    with pytest.raises(FetchError, match=r"^bybit NEWUSDT: no closed daily klines between 2023-12-30 and 2024-01-01$"):
        fetch_bybit(["NEWUSDT"], dt.date(2023, 12, 30), dt.date(2024, 1, 1), get_json=BybitReplay(pages),
                    now_ms=FAR_FUTURE, log=lambda m: None)


def test_bybit_drops_the_unclosed_current_day_candle():
    seventh = 1704585600000  # 2024-01-07 00:00 UTC
    still_open = fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=BybitReplay(_full_pages()),
                             now_ms=seventh + DAY - 1, log=lambda m: None)
    assert str(still_open.dates[-1]) == "2024-01-06"
    closed = fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=BybitReplay(_full_pages()),
                         now_ms=seventh + DAY, log=lambda m: None)
    assert str(closed.dates[-1]) == "2024-01-07"
    with pytest.raises(FetchError, match=r"bybit BTCUSDT: no closed daily klines between 2024-01-01 and 2024-01-07"):
        fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=BybitReplay(_full_pages()),
                    now_ms=JAN1_2024 + DAY - 1, log=lambda m: None)


def test_bybit_listing_day_zero_price_is_dropped_with_a_warning_later_zeros_are_rejected():
    page = _bybit("kline_NEWUSDT_2024-01-01_2024-01-07")
    page["result"]["list"][-1][1] = "0"  # the listing-day candle (oldest, last in the list) opens at 0
    logs: list[str] = []
    candles = fetch_bybit(["NEWUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7),
                          get_json=BybitReplay({"NEWUSDT 2024-01-01 2024-01-07": page}), now_ms=FAR_FUTURE,
                          log=logs.append)
    assert logs[0] == ("warning: bybit NEWUSDT: dropped the listing-day candle 2024-01-03 (open 0, high 0.9120, "
                       "low 0.4800, close 0.7310): a price of 0 or below is not a price")
    assert str(candles.dates[0]) == "2024-01-04" and candles.n_days == 4
    np.testing.assert_array_equal(_ohlcv(candles, "NEWUSDT"), _expected("NEWUSDT")[1:])
    later = _bybit("kline_NEWUSDT_2024-01-01_2024-01-07")
    later["result"]["list"][2][3] = "0"  # 2024-01-05's low
    with pytest.raises(DataError, match=r"^bybit NEWUSDT: kline 3: low must be a positive finite price, got '0' "
                                        r"\(NEWUSDT 2024-01-05\)"):
        fetch_bybit(["NEWUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7),
                    get_json=BybitReplay({"NEWUSDT 2024-01-01 2024-01-07": later}), now_ms=FAR_FUTURE,
                    log=lambda m: None)


def test_bybit_retcode_errors_rate_limits_and_bad_answers():
    window = "NOPEUSDT 2024-01-01 2024-01-07"
    slept: list[float] = []

    def fetch(answers, symbol="NOPEUSDT", **kwargs):
        return fetch_bybit([symbol], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=BybitReplay(answers),
                           sleep=slept.append, now_ms=FAR_FUTURE, log=lambda m: None, **kwargs)

    with pytest.raises(FetchError, match=r"symbol=NOPEUSDT.*: Bybit retCode 10001: Not supported symbols$"):
        fetch({window: _bybit("kline_error_10001")})
    assert slept == []

    full = _bybit("kline_BTCUSDT_2024-01-01_2024-01-07")
    btc = "BTCUSDT 2024-01-01 2024-01-07"
    candles = fetch({btc: (_bybit("kline_error_10006"), HttpError(429, "u", retry_after=2), full)}, symbol="BTCUSDT")
    assert candles.n_days == 7 and slept == [1.0, 2]  # retCode 10006: backoff 1 s; then HTTP 429: Retry-After

    slept.clear()
    with pytest.raises(FetchError, match=r"Bybit retCode 10006: Too many visits! \(gave up after 6 attempts\)"):
        fetch({btc: (_bybit("kline_error_10006"),) * 6}, symbol="BTCUSDT")
    assert slept == [1.0, 2.0, 4.0, 8.0, 16.0]

    slept.clear()
    with pytest.raises(FetchError, match=r"HTTP 403 for .*wait at least 10 minutes.*not retried"):
        fetch({btc: HttpError(403, "u", detail="access too frequent")}, symbol="BTCUSDT")
    assert slept == []

    with pytest.raises(FetchError, match=r'expected a Bybit answer \{"retCode": 0, "result": \{...\}\}, got \[\]'):
        fetch({btc: []}, symbol="BTCUSDT")
    with pytest.raises(FetchError, match=r'expected "result": \{"list": \[...\]\}, got \{\}'):
        fetch({btc: {"retCode": 0, "retMsg": "OK", "result": {}}}, symbol="BTCUSDT")
    broken = _bybit("kline_BTCUSDT_2024-01-01_2024-01-07")
    broken["result"]["list"][3] = ["2024-01-04", "1", "1", "1", "1", "1", "1"]
    with pytest.raises(FetchError, match=r"not a Bybit kline \[startTime, openPrice, .*\]: \['2024-01-04'"):
        fetch({btc: broken}, symbol="BTCUSDT")

    pages = {f"BTCUSDT {a} {b}": _bybit(f"kline_BTCUSDT_{a}_{b}") for a, b in
             (("2024-01-05", "2024-01-07"), ("2024-01-02", "2024-01-04"), ("2024-01-01", "2024-01-01"))}
    pages["BTCUSDT 2024-01-02 2024-01-04"]["result"]["list"][0][4] = "44160.2"  # the repeated 01-05 disagrees
    with pytest.raises(FetchError, match=r"two different candles open at 1704412800000 \(2024-01-05\)"):
        fetch(pages, symbol="BTCUSDT", limit=3)


@pytest.mark.parametrize("keep", ["newest", "oldest"])
@pytest.mark.parametrize("limit", [1, 2, 3, 6, 7, 1000])
def test_bybit_windows_never_exceed_limit_so_either_truncation_gives_all_candles(keep, limit):
    """Bybit does not document which ``limit`` candles it returns for a longer range; a server doing either is fine."""
    candles = _bybit("kline_BTCUSDT_2024-01-01_2024-01-07")["result"]["list"]  # newest first
    urls: list[str] = []

    def server(url):
        urls.append(url)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}
        inside = [c for c in candles if int(query["start"]) <= int(c[0]) <= int(query["end"])]
        inside = inside[:int(query["limit"])] if keep == "newest" else inside[-int(query["limit"]):]
        return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "symbol": "BTCUSDT", "list": inside}}

    got = fetch_bybit(["BTCUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7), get_json=server, limit=limit,
                      now_ms=FAR_FUTURE, log=lambda m: None)
    np.testing.assert_array_equal(_ohlcv(got, "BTCUSDT"), _expected("BTCUSDT"))
    assert len(urls) == -(-7 // limit)


def test_bybit_linear_usdt_symbols_follow_the_cursor():
    cursor = "first%3DBTCUSDT-26DEC25%26last%3DBTCUSDT-26DEC25"
    replay = BybitReplay({"instruments ": _bybit("instruments_page1"),
                          f"instruments {cursor}": _bybit("instruments_page2")})
    assert bybit_linear_usdt_symbols(get_json=replay) == ["BTCUSDT", "NEWUSDT"]  # not BTCPERP (USDC), not the future
    assert replay.urls == [
        "https://api.bybit.com/v5/market/instruments-info?category=linear&status=Trading&limit=1000",
        "https://api.bybit.com/v5/market/instruments-info?category=linear&status=Trading&limit=1000"
        "&cursor=first%253DBTCUSDT-26DEC25%2526last%253DBTCUSDT-26DEC25",
    ]
    looping = _bybit("instruments_page2")
    looping["result"]["nextPageCursor"] = cursor
    with pytest.raises(FetchError, match=r"nextPageCursor 'first%3DBTCUSDT-26DEC25%26last%3DBTCUSDT-26DEC25' repeats"):
        bybit_linear_usdt_symbols(get_json=BybitReplay({"instruments ": _bybit("instruments_page1"),
                                                        f"instruments {cursor}": looping}))


def test_bybit_cli_writes_csv_gz_that_loads_back_identically(tmp_path, capsys):
    out = tmp_path / "bybit.csv.gz"
    argv = ["bybit", "--symbols", "BTCUSDT", "newusdt", "BTCUSDT", "--start", "2024-01-01", "--end", "2024-01-07",
            "--out", str(out)]
    assert main(argv, get_json=BybitReplay(_full_pages())) == 0
    err = capsys.readouterr().err
    assert "bybit NEWUSDT: 5 daily candles 2024-01-03..2024-01-07 (2/2)" in err
    assert "wrote 12 candles of 2 tokens (2024-01-01..2024-01-07)" in err
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    loaded = load_path(out)
    assert loaded.tokens == ("BTCUSDT", "NEWUSDT")
    for token in loaded.tokens:
        np.testing.assert_array_equal(_ohlcv(loaded, token), _expected(token))
    fetched = fetch_bybit(["BTCUSDT", "NEWUSDT"], dt.date(2024, 1, 1), dt.date(2024, 1, 7),
                          get_json=BybitReplay(_full_pages()), log=lambda m: None)
    assert loaded.fingerprint == fetched.fingerprint
    lines = gzip.decompress(out.read_bytes()).decode().splitlines()
    assert lines[:2] == ["token,timestamp,open,high,low,close,volume",
                         "BTCUSDT,1704067200000,42280.1,44200.0,42180.5,44183.9,52012.345"]


def test_bybit_cli_all_linear_usdt(tmp_path, capsys):
    cursor = "first%3DBTCUSDT-26DEC25%26last%3DBTCUSDT-26DEC25"
    instruments = {"instruments ": _bybit("instruments_page1"), f"instruments {cursor}": _bybit("instruments_page2")}
    out = tmp_path / "all.csv.gz"
    argv = ["bybit", "--all-linear-usdt", "--start", "2024-01-01", "--end", "2024-01-07", "--out", str(out)]
    replay = BybitReplay({**instruments, **_full_pages()})
    assert main(argv, get_json=replay) == 0
    assert "bybit: 2 USDT perpetuals trading now" in capsys.readouterr().err
    assert [u.split("symbol=")[1].split("&")[0] for u in replay.urls[2:]] == ["BTCUSDT", "NEWUSDT"]
    loaded = load_path(out)
    assert loaded.tokens == ("BTCUSDT", "NEWUSDT")
    np.testing.assert_array_equal(_ohlcv(loaded, "NEWUSDT"), _expected("NEWUSDT"))

    # a symbol without candles in range (listed later) is skipped with a warning, not fatal
    btc = _bybit("kline_BTCUSDT_2024-01-01_2024-01-07")
    btc["result"]["list"] = btc["result"]["list"][-2:]
    early = {**instruments, "BTCUSDT 2024-01-01 2024-01-02": btc,
             "NEWUSDT 2024-01-01 2024-01-02": {"retCode": 0, "retMsg": "OK", "result": {"list": []}}}
    argv = ["bybit", "--all-linear-usdt", "--start", "2024-01-01", "--end", "2024-01-02", "--out", str(out)]
    assert main(argv, get_json=BybitReplay(early)) == 0
    assert ("warning: bybit NEWUSDT: no closed daily klines between 2024-01-01 and 2024-01-02; skipped"
            in capsys.readouterr().err)
    assert load_path(out).tokens == ("BTCUSDT",)


def test_bybit_cli_reports_retcode_errors_with_exit_1(tmp_path, capsys):
    out = tmp_path / "x.csv.gz"
    argv = ["bybit", "--symbols", "NOPEUSDT", "--start", "2024-01-01", "--end", "2024-01-07", "--out", str(out)]
    assert main(argv, get_json=BybitReplay({"NOPEUSDT 2024-01-01 2024-01-07": _bybit("kline_error_10001")})) == 1
    assert "error: https://api.bybit.com/v5/market/kline?category=linear&symbol=NOPEUSDT" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["bybit", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.csv"],
         "one of the arguments --symbols --all-linear-usdt is required"),
        (["bybit", "--symbols", "BTCUSDT", "--all-linear-usdt", "--start", "2024-01-01", "--end", "2024-01-02",
          "--out", "x.csv"], "argument --all-linear-usdt: not allowed with argument --symbols"),
        (["bybit", "--symbols", "BTC-USDT", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.csv"],
         "not a Bybit symbol"),
        (["bybit", "--all-linear-usdt", "--start", "2024-01-03", "--end", "2024-01-02", "--out", "x.csv"],
         "--start 2024-01-03 is after --end 2024-01-02"),
        (["bybit", "--all-linear-usdt", "--start", "2024-01-01", "--end", "2024-01-02", "--out", "x.json"],
         "--out must end in .csv, .csv.gz or .parquet"),
        (["bybit", "--all-linear-usdt", "--start", "2024-01-01", "--out", "x.csv"], "--end"),
    ],
)
def test_bybit_cli_bad_arguments_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as caught:
        main(argv, get_json=lambda url: pytest.fail("must not fetch"))
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "usage: python -m data.fetch bybit" in err


def test_bybit_rebuilds_rows_of_the_shared_universe(shared_data, tmp_path, capsys):
    """A Bybit-like server holding shared rows (plus BCHUSDT's listing-day row opening at 0, which the shared
    file dropped) answers the full 2020-11-01..2025-11-13 fetch; the output equals the shared rows."""
    import pandas as pd

    tokens = ["BCHUSDT", "BTCUSDT", "1000000BABYDOGEUSDT"]
    tidy = pd.read_csv(shared_data / "bybit_perp_daily.csv.gz")
    tidy = tidy[tidy["token"].isin(tokens)]
    book = {t: [[str(r.timestamp), repr(r.open), repr(r.high), repr(r.low), repr(r.close), repr(r.volume), "0"]
                for r in part.itertuples()] for t, part in tidy.groupby("token")}
    book["BCHUSDT"].insert(0, ["1607904000000", "0", "298.0", "0", "280.1", "1234.5", "0"])  # 2020-12-14
    urls: list[str] = []

    def server(url):
        urls.append(url)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).items()}
        inside = [c for c in book[q["symbol"]] if int(q["start"]) <= int(c[0]) <= int(q["end"])]
        return {"retCode": 0, "retMsg": "OK",
                "result": {"category": "linear", "symbol": q["symbol"], "list": inside[::-1][:int(q["limit"])]}}

    out = tmp_path / "bybit.csv.gz"
    argv = ["bybit", "--symbols", *tokens, "--start", "2020-11-01", "--end", "2025-11-13", "--out", str(out)]
    assert main(argv, get_json=server) == 0
    assert len(urls) == 6  # 1839 days: two windows of at most 1000 days per symbol
    assert "warning: bybit BCHUSDT: dropped the listing-day candle 2020-12-14 (open 0," in capsys.readouterr().err
    rebuilt = load_path(out)
    shared = load_path(shared_data / "bybit_perp_daily.csv.gz", tokens=sorted(tokens))
    assert rebuilt.tokens == shared.tokens and rebuilt.fingerprint == shared.fingerprint
