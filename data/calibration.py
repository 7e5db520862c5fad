"""Calibration statistics of a market (stylised facts) and the calibration report of the synthetic universes
against real data.

``python -m data.synthetic --report [--json] [--universe NAME] [--seed N] [--real-dir DIR]`` prints the
data-level calibration table (the stylised facts of :func:`calibration`, or per token for ``bear-basket``)
against the real data in ``../shared/data`` (see ``docs/reference/data.md``). The strategy-level rows (what the
strategy feeds on) need the layers above data: ``python -m instances.calibration --report`` prints the full
table, through this module's :func:`report_rows` and :func:`print_report`.

``--json`` prints strict JSON (:func:`strict_json`): ``{"title", "header", "rows": {statistic: {column:
value}}, "note"}``. JSON has no NaN or infinity, so a non-finite number is written as ``null`` and a
string beside it says what it was: key ``"<key>_reason"`` next to ``"<key>": null`` in an object,
``"<key>_reasons"`` (one entry per element, ``null`` for the finite ones) next to a list under ``"<key>"``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from data.candles import Candles
from data.synthetic import CRYPTO_KINDS, DAYS_PER_YEAR, FIAT_NAME, GOLD_NAME, UNIVERSES, generate

REAL_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
"""Default folder of the real data used by the calibration report (``../shared/data``)."""


# --------------------------------------------------------------------------- calibration statistics
def log_returns(close: np.ndarray) -> np.ndarray:
    """``(days - 1) x tokens`` daily log returns of a close matrix; NaN where either day has no candle."""
    with _quiet():
        return np.diff(np.log(close), axis=0)


def _usable(returns: np.ndarray, min_obs: int) -> np.ndarray:
    """Columns of ``returns`` with at least ``min_obs`` finite values (others set to NaN)."""
    out = np.array(returns, dtype=np.float64)
    out[:, np.isfinite(out).sum(axis=0) < min_obs] = np.nan
    return out


def annualised_vol(returns: np.ndarray, min_obs: int = 365) -> np.ndarray:
    """``(tokens,)`` std of daily log returns x sqrt(365); NaN for tokens with fewer than ``min_obs`` days."""
    r = _usable(returns, min_obs)
    with _quiet():
        return np.nanstd(r, axis=0) * np.sqrt(DAYS_PER_YEAR)


def excess_kurtosis(returns: np.ndarray, min_obs: int = 365) -> np.ndarray:
    """``(tokens,)`` sample excess kurtosis ``m4 / m2^2 - 3`` of daily log returns (0 for a normal)."""
    r = _usable(returns, min_obs)
    with _quiet():
        dev = r - np.nanmean(r, axis=0)
        return np.nanmean(dev ** 4, axis=0) / np.nanmean(dev ** 2, axis=0) ** 2 - 3.0


def autocorr(x: np.ndarray, lag: int, min_obs: int = 365) -> np.ndarray:
    """``(tokens,)`` lag-``lag`` autocorrelation of each column of ``x`` (days x tokens), NaN-aware.

    Pass ``np.abs(returns)`` for the volatility-clustering statistic.
    """
    r = _usable(x, min_obs)
    with _quiet():
        dev = r - np.nanmean(r, axis=0)
        now, before = dev[lag:], dev[:-lag]
        both = np.isfinite(now) & np.isfinite(before)
        cross = np.where(both, now * before, 0.0).sum(axis=0) / both.sum(axis=0)
        return cross / np.nanmean(dev ** 2, axis=0)


def max_drawdown(close: np.ndarray) -> np.ndarray:
    """``(tokens,)`` depth of the worst peak-to-trough fall of close, as a positive fraction (0.8 = -80 %)."""
    filled = np.where(np.isfinite(close), close, -np.inf)
    peak = np.maximum.accumulate(filled, axis=0)
    with _quiet():
        return -np.nanmin(np.where(np.isfinite(close), close / peak - 1.0, np.nan), axis=0)


def mean_pairwise_corr(returns: np.ndarray, min_overlap: int = 180) -> float:
    """Mean off-diagonal Pearson correlation of daily returns over pairs sharing ``min_overlap`` days."""
    corr = pd.DataFrame(returns).corr(min_periods=min_overlap).to_numpy()
    off = corr[~np.eye(corr.shape[0], dtype=bool)]
    return float(np.nanmean(off))


def dispersion(returns: np.ndarray, min_tokens: int = 5) -> float:
    """Median over days of the cross-sectional std of daily log returns (days with ``min_tokens``+ tokens)."""
    enough = np.isfinite(returns).sum(axis=1) >= min_tokens
    with _quiet():
        return float(np.median(np.nanstd(returns[enough], axis=1)))


def listing_rates(close: np.ndarray) -> tuple[float, float]:
    """(listings, delistings) per year as a fraction of the mean number of listed tokens.

    A listing is a token whose first candle is after the first day; a delisting one whose last candle
    is before the last day.
    """
    listed = np.isfinite(close)
    n_days = close.shape[0]
    has = listed.any(axis=0)
    first = np.argmax(listed, axis=0)[has]
    last = (n_days - 1 - np.argmax(listed[::-1], axis=0))[has]
    years = n_days / DAYS_PER_YEAR
    size = listed.sum(axis=1).mean()
    return float((first > 0).sum() / years / size), float((last < n_days - 1).sum() / years / size)


def momentum_rank_ic(candles: Candles, columns: np.ndarray, start: str = "2021-01-01", end: str = "2025-12-31",
                     horizon: int = 28, min_tokens: int = 8) -> tuple[float, float, int]:
    """``(mean, standard error, dates)`` of the cross-sectional momentum rank IC.

    On dates ``t`` of ``start..end`` taken ``horizon`` days apart (non-overlapping), the Spearman
    correlation across the ``columns`` (``(tokens,)`` bool) between each token's past ``horizon``-day
    log return and its next ``horizon``-day log return (tokens with both, at least ``min_tokens``);
    the mean over dates, and its standard error std / sqrt(dates). Positive = momentum, negative =
    reversal: what a momentum strategy feeds on.
    """
    with _quiet():
        log_close = np.log(candles.close[:, columns])
    dates = candles.dates
    rows = np.flatnonzero((dates >= np.datetime64(start, "D")) & (dates <= np.datetime64(end, "D")))
    rows = rows[(rows >= horizon) & (rows + horizon < candles.n_days)][::horizon]
    ics = []
    for t in rows:
        past, future = log_close[t] - log_close[t - horizon], log_close[t + horizon] - log_close[t]
        both = np.isfinite(past) & np.isfinite(future)
        if both.sum() >= min_tokens:
            ics.append(stats.spearmanr(past[both], future[both]).statistic)
    ics = np.asarray([ic for ic in ics if np.isfinite(ic)])
    if ics.size < 2:
        return float("nan"), float("nan"), int(ics.size)
    return float(ics.mean()), float(ics.std(ddof=1) / np.sqrt(ics.size)), int(ics.size)


def run_lengths(labels: np.ndarray) -> np.ndarray:
    """Lengths in days of the runs of equal consecutive labels of a ``(days,)`` path."""
    labels = np.asarray(labels)
    change = np.flatnonzero(labels[1:] != labels[:-1]) + 1
    return np.diff(np.concatenate([[0], change, [labels.size]]))


TREND_WINDOW, TREND_BAND = 90, 0.15
"""The rule that labels real (or synthetic) BTC regimes: 90-day log return above +0.15 bull, below -0.15 bear."""


def trend_regimes(close: np.ndarray, window: int = TREND_WINDOW, band: float = TREND_BAND) -> np.ndarray:
    """``(days - window,)`` regime labels of a ``(days,)`` close series by the trailing ``window``-day trend.

    Bull (0) when ``log(close_t / close_{t-window}) > band``, bear (1) when below ``-band``, else ranging (2).
    """
    trend = np.log(close[window:] / close[:-window])
    return np.where(trend > band, 0, np.where(trend < -band, 1, 2)).astype(np.int8)


@contextmanager
def _quiet() -> Iterator[None]:
    """Silence numpy's floating point and "mean of empty slice" warnings (NaN columns are expected)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# --------------------------------------------------------------------------- calibration report
REAL_STABLES: frozenset[str] = frozenset({"USDCUSDT", "TUSDUSDT", "FDUSDUSDT", "DAIUSDT", "BUSDUSDT", "USDPUSDT"})
REAL_WRAPPED: frozenset[str] = frozenset({"WBTCUSDT", "WBETHUSDT", "BNSOLUSDT"})


def real_kinds(tokens: Sequence[str]) -> dict[str, str]:
    """Token kinds of a real universe by name (``wrapped`` tokens mirror BTC/ETH/SOL and are excluded)."""
    fixed = {"BTCUSDT": "btc", "ETHUSDT": "eth", GOLD_NAME: "gold", FIAT_NAME: "fiat"}
    return {t: fixed.get(t, "stable" if t in REAL_STABLES else "wrapped" if t in REAL_WRAPPED else "alt")
            for t in tokens}


def calibration(candles: Candles, kinds: Mapping[str, str], btc_close: np.ndarray) -> dict[str, float]:
    """Stylised facts of a universe: label -> value (the rows of the calibration table).

    Args:
        candles: the universe (``days x tokens``).
        kinds: token -> kind; cross-sectional rows use the crypto kinds (btc, eth, major, alt),
            "alt" rows the majors and alts.
        btc_close: ``(days,)`` BTC closes (may come from a longer file than ``candles``).
    """
    kind = np.array([kinds.get(t, "") for t in candles.tokens])
    crypto = np.isin(kind, list(CRYPTO_KINDS))
    alts = np.isin(kind, ["major", "alt"])
    returns = log_returns(candles.close)
    btc = log_returns(btc_close[:, None])
    labels = trend_regimes(btc_close[np.isfinite(btc_close)])
    runs = run_lengths(labels)
    rows = {
        "BTC annualised vol": annualised_vol(btc)[0],
        "median alt annualised vol": np.nanmedian(annualised_vol(returns[:, alts])),
        "BTC excess kurtosis": excess_kurtosis(btc)[0],
        "median alt excess kurtosis": np.nanmedian(excess_kurtosis(returns[:, alts])),
        "BTC autocorr of returns, lag 1": autocorr(btc, 1)[0],
        "BTC autocorr of |returns|, lag 1": autocorr(np.abs(btc), 1)[0],
        "BTC autocorr of |returns|, lag 10": autocorr(np.abs(btc), 10)[0],
        "median alt autocorr of |returns|, lag 1": np.nanmedian(autocorr(np.abs(returns[:, alts]), 1)),
        "median alt autocorr of |returns|, lag 10": np.nanmedian(autocorr(np.abs(returns[:, alts]), 10)),
        "BTC max drawdown": max_drawdown(btc_close[:, None])[0],
        "median crypto token max drawdown (365+ days)": np.nanmedian(
            max_drawdown(np.where(np.isfinite(returns).sum(axis=0) >= 365, candles.close, np.nan)[:, crypto])),
        "mean pairwise correlation (crypto)": mean_pairwise_corr(returns[:, crypto]),
        "cross-sectional dispersion (median daily std)": dispersion(returns[:, crypto]),
        "listings per year / universe": listing_rates(candles.close[:, crypto])[0],
        "delistings per year / universe": listing_rates(candles.close[:, crypto])[1],
        "BTC trend-rule regime run, mean days": runs.mean(),
        "BTC trend-rule regime run, median days": float(np.median(runs)),
        "BTC trend-rule share bull / bear / ranging": " / ".join(f"{np.mean(labels == k):.2f}" for k in range(3)),
    }
    if candles.regimes is not None:
        true_runs = run_lengths(candles.regimes)
        rows["true regime run, mean days"] = true_runs.mean()
        rows["true regime run, median days"] = float(np.median(true_runs))
        rows["true share bull / bear / ranging"] = " / ".join(
            f"{np.mean(candles.regimes == k):.2f}" for k in range(3))
    return rows


def basket_summary(candles: Candles) -> dict[str, dict[str, object]]:
    """Per token of a small basket: annualised vol, mean/min/max close, first and last day with a candle."""
    vol = annualised_vol(log_returns(candles.close), min_obs=30)
    out = {}
    for i, token in enumerate(candles.tokens):
        close = candles.close[:, i]
        days = candles.dates[np.isfinite(close)]
        out[token] = {"annualised vol": vol[i], "mean close": np.nanmean(close), "min close": np.nanmin(close),
                      "max close": np.nanmax(close), "first day": str(days[0]), "last day": str(days[-1])}
    return out


def load_real(real_dir: Path) -> tuple[Candles, dict[str, str], np.ndarray]:
    """The real top-50 universe (finished candles only), its kinds and the BTC closes of ``btcusdt_daily.csv``."""
    from data.loaders import load_path

    top50 = load_path(real_dir / "binance_top50_daily.csv.gz", end="2026-01-01")
    btc = load_path(real_dir / "btcusdt_daily.csv")
    return top50, real_kinds(top50.tokens), btc.close[:, 0]


def _fmt(value: object) -> str:
    if isinstance(value, str):
        return value
    value = float(value)
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}" if abs(value) < 0.01 else f"{value:.3f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def report_rows(universe: str = "synthetic", seed: int = 0, real_dir: Path | None = REAL_DATA_DIR
                ) -> tuple[str, list[str], list[list[object]], str]:
    """``(title, header, rows, note)`` of the calibration table of ``generate(universe, seed)``.

    Crypto universes are compared with ``binance_top50_daily.csv.gz`` (cross-section, 2018-01-01..2026-01-01)
    and ``btcusdt_daily.csv`` (BTC rows) when ``real_dir`` exists; ``bear-basket`` per token with
    ``bear_portfolio_candles.csv``.
    """
    candles = generate(universe, seed)
    have_real = real_dir is not None and Path(real_dir).is_dir()
    title = f"Calibration of `{universe}` (seed {seed})"
    if not UNIVERSES[universe].crypto:
        synthetic = basket_summary(candles)
        real = basket_summary(_load_basket(Path(real_dir))) if have_real else {}
        rows = [[f"{token} {key}", value, *([real[token][key]] if token in real else [])]
                for token, stats_ in synthetic.items() for key, value in stats_.items()]
        return title, ["statistic", "synthetic", *(["real (bear_portfolio_candles.csv)"] if real else [])], rows, ""
    synthetic = calibration(candles, candles.meta["kinds"], candles.close[:, candles.column("BTCUSDT")])
    if not have_real:
        return f"{title}; no real data at {real_dir}", ["statistic", "synthetic"], list(map(list, synthetic.items())), ""
    real = calibration(*load_real(Path(real_dir)))
    rows = [[label, value, real.get(label, "n/a (no true path)")] for label, value in synthetic.items()]
    note = (f"Real: BTC rows from `btcusdt_daily.csv`, the others from `binance_top50_daily.csv.gz` "
            f"(finished candles to 2026-01-01; survivorship-biased, so no delistings). Trend rule: 90-day log "
            f"return > +{TREND_BAND} bull, < -{TREND_BAND} bear, else ranging. 'alt' = every crypto token but "
            f"BTC and ETH (synthetic: majors and alts; real: wrapped tokens, PAXG and stablecoins excluded).")
    return title, ["statistic", "synthetic", "real"], rows, note


def report(universe: str = "synthetic", seed: int = 0, real_dir: Path | None = REAL_DATA_DIR) -> str:
    """The calibration table of :func:`report_rows` as markdown."""
    title, header, rows, note = report_rows(universe, seed, real_dir)
    return f"{title}\n\n{_table(header, rows)}" + (f"\n\n{note}" if note else "") + "\n"


def _load_basket(real_dir: Path) -> Candles:
    from data.loaders import load_path

    return load_path(real_dir / "bear_portfolio_candles.csv")


NON_FINITE_REASONS: dict[str, str] = {
    "-inf": "-inf (minus infinity; JSON has no such number)",
    "inf": "inf (infinity; JSON has no such number)",
    "nan": "NaN (not computable from the data)",
}
"""What :func:`strict_json` writes beside a ``null`` that stands for ``-inf``, ``inf`` or NaN."""


def _non_finite(value: object) -> str | None:
    """``"-inf"``, ``"inf"`` or ``"nan"`` for a non-finite float, None for anything else."""
    if not isinstance(value, (float, np.floating)) or np.isfinite(value):
        return None
    return "nan" if np.isnan(value) else "-inf" if value < 0 else "inf"


def strict_json(value: object, reasons: Mapping[str, str] | None = None) -> object:
    """``value`` made strict-JSON-ready: numpy scalars as Python numbers, non-finite floats as None with a reason.

    In a dict, ``key: -inf`` becomes ``key: None`` plus ``key + "_reason"``: the reason string; a list under
    ``key`` holding non-finite numbers gets ``key + "_reasons"`` (one entry per element, None for the others).
    ``reasons`` overrides :data:`NON_FINITE_REASONS` per kind (``"-inf"``, ``"inf"``, ``"nan"``). A
    non-finite number at the top level or directly inside a list of lists becomes None without a reason.
    """
    why = {**NON_FINITE_REASONS, **(reasons or {})}
    if isinstance(value, Mapping):
        out: dict[str, object] = {}
        for key, item in value.items():
            key = str(key)
            out[key] = strict_json(item, reasons)
            kind = _non_finite(item)
            if kind is not None:
                out[f"{key}_reason"] = why[kind]
            elif isinstance(item, (list, tuple)) and any(_non_finite(v) for v in item):
                out[f"{key}_reasons"] = [None if _non_finite(v) is None else why[_non_finite(v)] for v in item]
        return out
    if isinstance(value, (list, tuple)):
        return [strict_json(v, reasons) for v in value]
    if _non_finite(value) is not None:
        return None
    if isinstance(value, (float, np.floating)):
        return float(value)
    return value.item() if isinstance(value, np.generic) else value


def report_document(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], note: str,
                    sections: Mapping[str, object] | None = None) -> dict[str, object]:
    """The calibration table as a JSON-ready dict: ``{"title", "header", "rows": {statistic: {column: value}},
    "note"}`` plus ``sections`` (extra top-level entries); not yet strict (:func:`strict_json`)."""
    table = {str(row[0]): dict(zip(header[1:], row[1:])) for row in rows}
    return {"title": title, "header": list(header), "rows": table, **(sections or {}), "note": note}


def print_report(title: str, header: Sequence[str], rows: Sequence[Sequence[object]], note: str,
                 as_json: bool = False, sections: Mapping[str, object] | None = None) -> None:
    """Print a calibration table: markdown, or with ``as_json`` strict JSON (:func:`report_document` through
    :func:`strict_json`; a section already passed through :func:`strict_json` with its own reasons keeps
    them). The one printer of ``python -m data.synthetic --report`` and ``python -m instances.calibration
    --report``."""
    if as_json:
        document = strict_json(report_document(title, header, rows, note, sections))
        print(json.dumps(document, indent=1, allow_nan=False))
    else:
        print(f"{title}\n\n{_table(header, rows)}" + (f"\n\n{note}" if note else ""))


JSON_HELP = ("with --report: one strict JSON object instead; a non-finite number is written as null with a "
             "string saying what it was beside it (key '<key>_reason', or '<key>_reasons' for a list)")


def build_parser(prog: str = "python -m data.synthetic", description: str | None = None,
                 report_help: str = "print the data-level calibration table (markdown)") -> argparse.ArgumentParser:
    """The options of the calibration commands: ``--report``, ``--json``, ``--universe``, ``--seed``, ``--real-dir``."""
    parser = argparse.ArgumentParser(prog=prog, description=description or __doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help=report_help)
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    parser.add_argument("--universe", default="synthetic", choices=sorted(UNIVERSES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--real-dir", type=Path, default=REAL_DATA_DIR,
                        help="real data folder (default ../shared/data)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m data.synthetic [--report [--json]] [--seed N] [--universe NAME] [--real-dir DIR]``.

    Draws the universe (its shape and time on stderr); with ``--report`` prints the data-level
    calibration table (no strategy rows: those are ``python -m instances.calibration --report``'s).
    """
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    candles = generate(args.universe, args.seed)
    print(f"{candles!r} generated in {time.perf_counter() - began:.2f} s", file=sys.stderr)
    if args.report:
        print_report(*report_rows(args.universe, args.seed, args.real_dir), as_json=args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
