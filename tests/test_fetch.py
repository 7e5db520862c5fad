"""Fetchers: paging, retries and the CLI, replayed from hand-written recorded responses (no network)."""

from __future__ import annotations

import datetime as dt
import http.server
import json
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

from data.fetch import FetchError, HttpError, fetch_binance, fetch_defillama, get_with_retries, main, urllib_get_json
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
