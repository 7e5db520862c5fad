"""Loaders: every format round-trips to the right universe, and every kind of bad input is refused clearly."""

from __future__ import annotations

import csv
import gzip
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from data.candles import FIELDS, Candles
from data.loaders import DataError, load_path, write_tidy

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEADER = "token,timestamp,open,high,low,close,volume\n"
DAY = 86_400_000
JAN1 = 1704067200000  # 2024-01-01 00:00 UTC in Unix ms


def _assert_same(a: Candles, b: Candles) -> None:
    np.testing.assert_array_equal(a.dates, b.dates)
    assert a.tokens == b.tokens
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.fingerprint == b.fingerprint


def _raw_rows(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as handle:
        return list(csv.DictReader(handle))


def _cells(candles: Candles, rows: list[dict[str, str]], time_key: str = "timestamp", token: str | None = None):
    """For each raw row: (row, day index, token column)."""
    for row in rows:
        day = np.datetime64(int(row[time_key]) // DAY, "D")
        yield row, int(np.searchsorted(candles.dates, day)), candles.column(token or row["token"])


# --------------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def bear(shared_data) -> Candles:
    return load_path(shared_data / "bear_portfolio_candles.csv")


def test_bear_portfolio_shape_values_and_gaps(bear, shared_data):
    assert bear.shape == (245, 4)
    assert bear.tokens == ("EURUSDT", "PAXGUSDT", "TUSDUSDT", "USDCUSDT")
    assert bear.dates[0] == np.datetime64("2022-05-01") and bear.dates[-1] == np.datetime64("2022-12-31")
    for token in ("USDCUSDT", "TUSDUSDT"):
        listed_days = bear.dates[bear.listed[:, bear.column(token)]]
        assert listed_days[-1] == np.datetime64("2022-09-26")
    rows = _raw_rows(shared_data / "bear_portfolio_candles.csv")
    expected_listed = np.zeros(bear.shape, dtype=bool)
    for row, day, col in _cells(bear, rows):
        assert bear.dates[day] == np.datetime64(int(row["timestamp"]) // DAY, "D")
        for name in FIELDS:
            assert getattr(bear, name)[day, col] == float(row[name]), (row, name)
        expected_listed[day, col] = True
    np.testing.assert_array_equal(bear.listed, expected_listed)  # NaN exactly where no candle exists
    for name in FIELDS:
        np.testing.assert_array_equal(np.isnan(getattr(bear, name)), ~expected_listed)
    assert bear.close[bear.day_index("2022-05-01"), bear.column("EURUSDT")] == 1.054


def test_binance_top50_loads_all_cells_quickly(shared_data):
    path = shared_data / "binance_top50_daily.csv.gz"
    top50 = load_path(path)
    assert top50.n_tokens == 50
    assert int(top50.listed.sum()) == 75_084
    assert top50.dates[0] == np.datetime64("2018-01-01") and top50.dates[-1] == np.datetime64("2026-01-02")
    rows = _raw_rows(path)
    for row, day, col in _cells(top50, rows[:: 997]):
        assert [getattr(top50, name)[day, col] for name in FIELDS] == [float(row[name]) for name in FIELDS]


def test_single_token_layout_takes_token_from_file_name(shared_data):
    path = shared_data / "btcusdt_daily.csv"
    btc = load_path(path)
    assert btc.tokens == ("BTCUSDT",) and btc.n_days == 3213
    assert btc.dates[0] == np.datetime64("2017-08-17") and btc.listed.all()
    for row, day, col in _cells(btc, _raw_rows(path)[::250], time_key="open_time", token="BTCUSDT"):
        assert str(btc.dates[day]) == row["date"]
        assert btc.close[day, col] == float(row["close"])
    assert load_path(path, token="XBT").tokens == ("XBT",)


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet"])
def test_write_tidy_round_trips_to_identical_arrays(bear, tmp_path, suffix):
    path = write_tidy(bear, tmp_path / f"bear{suffix}")
    _assert_same(load_path(path), bear)
    if suffix == ".csv":
        assert path.read_text().splitlines()[:2] == [HEADER.strip(), "EURUSDT,1651363200000,1.051,1.055,1.05,1.054,22238671.8"]


def test_filters_tokens_and_dates(bear, shared_data):
    path = shared_data / "bear_portfolio_candles.csv"
    picked = load_path(path, tokens=["USDCUSDT", "EURUSDT"], start="2022-09-01", end="2022-09-30", name="picked")
    assert picked.tokens == ("USDCUSDT", "EURUSDT") and picked.name == "picked"
    assert picked.dates[0] == np.datetime64("2022-09-01") and picked.dates[-1] == np.datetime64("2022-09-30")
    assert picked.listed[:, 0].sum() == 26  # USDC ends 2022-09-26
    np.testing.assert_array_equal(picked.close[:, 1], bear.between("2022-09-01", "2022-09-30").close[:, 0])
    assert load_path(path, tokens="PAXGUSDT").tokens == ("PAXGUSDT",)


def test_unknown_and_out_of_range_tokens_are_refused(shared_data):
    path = shared_data / "bear_portfolio_candles.csv"
    with pytest.raises(DataError, match=r"unknown token\(s\) \['BTCUSDT', 'DOGEUSDT'\]; the data has \['EURUSDT'"):
        load_path(path, tokens=["EURUSDT", "BTCUSDT", "DOGEUSDT"])
    with pytest.raises(DataError, match=r"no candles between 2022-10-01 and the last day for \['USDCUSDT'\]"):
        load_path(path, tokens=["EURUSDT", "USDCUSDT"], start="2022-10-01")
    with pytest.raises(DataError, match=r"no candles between 2030-01-01 and the last day"):
        load_path(path, start="2030-01-01")
    with pytest.raises(DataError, match=r"start 2022-10-01 is after end 2022-09-01"):
        load_path(path, start="2022-10-01", end="2022-09-01")
    with pytest.raises(DataError, match=r"start 'soon' is not a date"):
        load_path(path, start="soon")
    with pytest.raises(DataError, match=r"tokens= is empty"):
        load_path(path, tokens=[])
    with pytest.raises(DataError, match=r"token= is only for single-token files"):
        load_path(path, token="EURUSDT")


def test_directory_merges_identical_overlap_of_real_files(shared_data, tmp_path):
    btc_top50 = load_path(shared_data / "binance_top50_daily.csv.gz", tokens=["BTCUSDT"], end="2026-01-01")
    write_tidy(btc_top50, tmp_path / "btc_from_top50.csv")
    shutil.copy(shared_data / "btcusdt_daily.csv", tmp_path / "btcusdt_daily.csv")
    shutil.copy(shared_data / "bear_portfolio_candles.csv", tmp_path / "bear.csv")
    (tmp_path / "README.md").write_text("not data")
    merged = load_path(tmp_path)
    assert merged.tokens == ("BTCUSDT", "EURUSDT", "PAXGUSDT", "TUSDUSDT", "USDCUSDT")
    assert merged.name == tmp_path.name
    _assert_same(merged.select(["BTCUSDT"]).drop_unlisted().between("2017-01-01", "2030-01-01"),
                 load_path(shared_data / "btcusdt_daily.csv").between(merged.dates[0], merged.dates[-1]))


# --------------------------------------------------------------------------- fixture formats
def test_kline_csv_without_header_in_ms():
    btc = load_path(FIXTURES / "BTCUSDT-1d-2024-01.csv")
    assert btc.tokens == ("BTCUSDT",)
    np.testing.assert_array_equal(btc.dates, np.arange("2024-01-01", "2024-01-06", dtype="datetime64[D]"))
    np.testing.assert_array_equal(btc.close[:, 0], [44179.55, 44946.91, 42845.23, 44151.10, 44145.11])
    assert btc.high[2, 0] == 45500.0 and btc.low[2, 0] == 40750.0 and btc.volume[0, 0] == 27174.29903


def test_kline_csv_in_microseconds_header_and_zip():
    eth = load_path(FIXTURES / "ETHUSDT-1d-2025-01.csv")
    assert eth.tokens == ("ETHUSDT",) and str(eth.dates[0]) == "2025-01-01" and eth.n_days == 3
    np.testing.assert_array_equal(eth.open[:, 0], [3337.78, 3353.04, 3451.59])
    sol = load_path(FIXTURES / "SOLUSDT-1d-2024-01-header.csv", token="SOL")
    assert sol.tokens == ("SOL",) and sol.close[1, 0] == 106.10
    feb = load_path(FIXTURES / "BTCUSDT-1d-2024-02.zip")
    assert feb.tokens == ("BTCUSDT",) and str(feb.dates[0]) == "2024-02-01"
    np.testing.assert_array_equal(feb.close[:, 0], [43082.94, 43200.0, 43011.09])


def test_directory_of_kline_files_merges_months(tmp_path):
    for name in ("BTCUSDT-1d-2024-01.csv", "BTCUSDT-1d-2024-02.zip", "ETHUSDT-1d-2025-01.csv"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    universe = load_path(tmp_path, tokens=["BTCUSDT"])
    assert universe.n_days == 8 and universe.listed.all()
    assert str(universe.dates[4]) == "2024-01-05" and str(universe.dates[5]) == "2024-02-01"
    both = load_path(tmp_path)
    assert both.tokens == ("BTCUSDT", "ETHUSDT") and both.n_days == 11


def test_defillama_chart_takes_last_price_of_each_utc_day():
    chart = load_path(FIXTURES / "defillama_chart.json")
    assert chart.tokens == ("ENAUSD", "HYPEUSD")
    np.testing.assert_array_equal(chart.dates, np.array(["2025-01-01", "2025-01-02", "2025-01-04"], dtype="datetime64[D]"))
    hype = chart.column("HYPEUSD")
    np.testing.assert_array_equal(chart.close[:, hype], [24.51, 26.35, 22.8])  # 2025-01-02: 23:00 beats 12:00
    for name in ("open", "high", "low"):
        np.testing.assert_array_equal(getattr(chart, name)[:, hype], chart.close[:, hype])
    np.testing.assert_array_equal(chart.volume[:, hype], [0.0, 0.0, 0.0])
    assert np.isnan(chart.close[2, chart.column("ENAUSD")])
    named = load_path(FIXTURES / "defillama_chart.json", coin_names={"coingecko:hyperliquid": "HYPE"})
    assert named.tokens == ("ENAUSD", "HYPE")


def test_defillama_historical_single_point():
    point = load_path(FIXTURES / "defillama_historical.json", token="HYPEUSDT")
    assert point.tokens == ("HYPEUSDT",) and point.shape == (1, 1) and point.close[0, 0] == 24.51


def test_iso_dates_gzip_by_content_and_blank_lines(tmp_path):
    path = tmp_path / "iso.dat"
    text = HEADER + "AAA,2024-01-01,1,2,0.5,1.5,10\n\nAAA,2024-01-02T00:00:00Z,1.5,2,1,1.8,\nBBB,2024-01-02,3,3,3,3,0\n"
    path.write_bytes(gzip.compress(text.encode()))
    candles = load_path(path)
    assert candles.tokens == ("AAA", "BBB") and candles.shape == (2, 2)
    assert candles.volume[1, 0] == 0.0  # missing volume repaired to 0
    assert np.isnan(candles.close[0, 1])


def test_parquet_with_datetime_dates_and_row_numbers(bear, tmp_path):
    path = tmp_path / "frame.parquet"
    bear.to_frame().to_parquet(path)  # columns token, date (datetime64), open..volume
    _assert_same(load_path(path), bear)
    frame = bear.to_frame()
    frame.loc[1, "high"] = 0.5
    frame.to_parquet(path)
    with pytest.raises(DataError, match=rf"^{re.escape(str(path))}: row 2: high 0.5 is below low 1.048 \(EURUSDT 2022-05-02\)"):
        load_path(path)


# --------------------------------------------------------------------------- bad input
def _bad(tmp_path: Path, text: str, name: str = "bad.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _tidy(*rows: str) -> str:
    return HEADER + "".join(row + "\n" for row in rows)


GOOD1 = f"AAA,{JAN1},10,12,9,11,100"
GOOD2 = f"AAA,{JAN1 + DAY},11,13,10,12,100"


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (_tidy(GOOD1, GOOD2, GOOD2), 4, "duplicate: same token and time as line 3 (AAA 2024-01-02)"),
        (_tidy(GOOD2, GOOD1), 3, "out of time order: comes after 2024-01-02 at line 2; a token's rows must be in increasing time (AAA 2024-01-01)"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY + 3_600_000},11,13,10,12,100"), 3, "timestamp is not at 00:00 UTC; only daily candles are accepted (AAA 2024-01-02 01:00:00 UTC)"),
        (_tidy(GOOD1, f"AAA,{JAN1 + 43_200_000},11,13,10,12,100"), 3, "not at 00:00 UTC"),  # intraday duplicate
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},0,13,10,12,100"), 3, "open must be a positive finite price, got 0 (AAA 2024-01-02)"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,-10,12,100"), 3, "low must be a positive finite price, got -10"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,10,inf,100"), 3, "close must be a positive finite price, got inf"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,abc,10,12,100"), 3, "high must be a positive finite price, got 'abc'"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,10,,100"), 3, "close is missing (AAA 2024-01-02)"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,9,10,9.5,100"), 3, "high 9.0 is below low 10.0 (AAA 2024-01-02)"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},14,13,10,12,100"), 3, "open 14.0 is outside [low 10.0, high 13.0]"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,10,9,100"), 3, "close 9.0 is outside [low 10.0, high 13.0]"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,10,12,-5"), 3, "volume must be a finite number >= 0, got -5"),
        (_tidy(GOOD1, f"AAA,{JAN1 + DAY},11,13,10,12,lots"), 3, "volume must be a finite number >= 0, got 'lots'"),
        (_tidy(GOOD1, f",{JAN1 + DAY},11,13,10,12,100"), 3, "token is missing"),
        (_tidy(GOOD1, "AAA,yesterday,11,13,10,12,100"), 3, "timestamp 'yesterday' is not a Unix ms/µs timestamp or an ISO date"),
        (_tidy(GOOD1, "AAA,1704153600,11,13,10,12,100"), 3, "timestamp 1704153600 is not a Unix ms/µs timestamp"),  # seconds
        (_tidy(GOOD1, "AAA,,11,13,10,12,100"), 3, "timestamp is missing"),
        (_tidy(GOOD1, "", f"AAA,{JAN1 + DAY},11,9,10,9.5,100"), 4, "high 9.0 is below low 10.0"),  # blank line counted
        (_tidy(GOOD1, GOOD2, f"AAA,{JAN1 + 2 * DAY},0,1,1,1,1", f"AAA,{JAN1 + 3 * DAY},0,1,1,1,1"), 4,
         "open must be a positive finite price, got 0 (AAA 2024-01-03); 1 more such lines"),
        ("token,timestamp,open,high,low,close\nAAA,1,1,1,1,1\n", 1, "missing column(s) ['volume']"),
        ("symbol,day,open,high,low,close,volume\nAAA,1,1,1,1,1,1\n", 1, "missing column(s) ['timestamp']"),
        (f"{JAN1},1,1,1,1,1\n", 1, "no header row and 6 columns; a file without a header must be a 12-column Binance kline file"),
        ("\ntoken,timestamp\n", 1, "line is empty"),
    ],
)
def test_bad_rows_are_rejected_with_file_line_and_problem(tmp_path, text, line, problem):
    path = _bad(tmp_path, text)
    with pytest.raises(DataError) as caught:
        load_path(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line {line}: "), message
    assert problem in message, message


@pytest.mark.parametrize(("text", "problem"), [("", "file is empty"), ("  \n", "file is empty"), (HEADER, "no data rows")])
def test_empty_files_are_rejected(tmp_path, text, problem):
    path = _bad(tmp_path, text)
    with pytest.raises(DataError, match=f"^{path}: {problem}$"):
        load_path(path)


def test_single_token_date_must_match_open_time(tmp_path):
    path = _bad(tmp_path, f"date,open_time,open,high,low,close,volume\n2024-01-01,{JAN1},1,1,1,1,1\n"
                          f"2024-01-03,{JAN1 + DAY},1,1,1,1,1\n", name="xyzusdt_daily.csv")
    with pytest.raises(DataError, match=r"xyzusdt_daily.csv: line 3: date 2024-01-03 does not match the open time 2024-01-02 \(XYZUSDT 2024-01-02\)"):
        load_path(path)


def test_non_daily_klines_are_rejected(tmp_path):
    week = 7 * DAY
    lines = [f"{JAN1 + k * week},1,1,1,1,1,{JAN1 + (k + 1) * week - 1},1,1,1,1,0" for k in range(2)]
    path = _bad(tmp_path, "\n".join(lines) + "\n", name="BTCUSDT-1w-2024-01.csv")
    with pytest.raises(DataError, match=r"BTCUSDT-1w-2024-01.csv: line 1: close_time is 604800000 ms after open_time, "
                                        r"not one day: not a daily \(1d\) kline \(BTCUSDT 2024-01-01\); 1 more such lines"):
        load_path(path)


def test_malformed_csv_and_bad_zip(tmp_path):
    path = _bad(tmp_path, _tidy(GOOD1, GOOD2 + ",1,2"))
    with pytest.raises(DataError, match=rf"^{path}: malformed CSV: .*line 3"):
        load_path(path)
    archive = tmp_path / "two.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("a.csv", _tidy(GOOD1))
        z.writestr("b.csv", _tidy(GOOD2))
    with pytest.raises(DataError, match=r"two.zip: a zip must hold exactly one data file, found \['a.csv', 'b.csv'\]"):
        load_path(archive)
    inner = tmp_path / "one.zip"
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("AAAUSDT-1d.csv", f"{JAN1},1,1,2,1,1,{JAN1 + DAY - 1},1,1,1,1,0\n")
    with pytest.raises(DataError, match=r"one.zip\[AAAUSDT-1d.csv\]: line 1: high 1.0 is below low 2.0"):
        load_path(inner)


def test_conflicting_files_are_rejected_and_identical_overlap_merged(tmp_path):
    _bad(tmp_path, _tidy(GOOD1, GOOD2), name="a.csv")
    _bad(tmp_path, _tidy(GOOD2, f"AAA,{JAN1 + 2 * DAY},12,13,11,12,100"), name="b.csv")
    merged = load_path(tmp_path)
    assert merged.shape == (3, 1) and merged.close[:, 0].tolist() == [11.0, 12.0, 12.0]
    _bad(tmp_path, _tidy(f"AAA,{JAN1 + DAY},11,13,10,12.5,100"), name="c.csv")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'a.csv'} (line 3) and {tmp_path / 'c.csv'} (line 2) disagree on "
                                                  "AAA 2024-01-02: close 12.0 vs 12.5 (1 conflicting candles)")):
        load_path(tmp_path)


def test_bad_defillama_input(tmp_path):
    cases = {
        '{"configs": []}': "not a DefiLlama price response",
        '{"coins": {"c:x": {"symbol": "X", "prices": [{"timestamp": 1735732800, "price": 1}, '
        '{"timestamp": 1735819200, "price": -2}]}}}': "price point 2: price must be a positive finite price, got -2 (XUSD 2025-01-02 12:00:00 UTC)",
        '{"coins": {"c:x": {"symbol": "X", "prices": [{"timestamp": 1735819200, "price": 1}, '
        '{"timestamp": 1735732800, "price": 2}]}}}': "price point 2: out of time order: comes after 2025-01-02 12:00:00 UTC at price point 1",
        '{"coins": {"c:x": {"symbol": "X", "prices": [{"price": 2}]}}}': "price point 1: timestamp is missing",
        '{"coins": {"c:x": {"symbol": "X", "prices": []}}}': "coin 'c:x': expected a non-empty \"prices\" list",
        '{"coins": {"c:x": {"prices": [{"timestamp": 1735819200, "price": 1}]}}}': "coin 'c:x' has no symbol; name it with coin_names",
        '{"coins": {"c:x": {"symbol": "X", "price": 1, "timestamp": 1735819200}, '
        '"d:x": {"symbol": "x", "price": 1, "timestamp": 1735819200}}}': "several coins would be named ['XUSD']",
        '{"coins": ': "invalid JSON",
    }
    for text, problem in cases.items():
        path = _bad(tmp_path, text, name="llama.json")
        with pytest.raises(DataError) as caught:
            load_path(path)
        assert str(caught.value).startswith(f"{path}: ") and problem in str(caught.value), str(caught.value)


def test_bad_paths(tmp_path):
    with pytest.raises(DataError, match="no such file or directory"):
        load_path(tmp_path / "missing.csv")
    with pytest.raises(DataError, match=r"no data files \(.csv, .gz, .json, .parquet, .zip\) in this directory"):
        load_path(tmp_path)
    with pytest.raises(DataError, match="token= names a single-token file, not a directory"):
        load_path(tmp_path, token="AAA")
    with pytest.raises(DataError, match=r"cannot take a token name from the file name '\+\+.csv'; pass token="):
        load_path(_bad(tmp_path, f"{JAN1},1,1,1,1,1,{JAN1 + DAY - 1},1,1,1,1,0\n", name="++.csv"))
    assert issubclass(DataError, ValueError)
