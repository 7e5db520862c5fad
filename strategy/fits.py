"""Bulk regression fits: every token, every day, in one vectorised pass.

For day ``t`` and token ``j`` the fit window is the token's last ``fit_window``
candles up to and including day ``t`` (fewer while the token is young; at least
2 candles are required; a longer ``min_history`` is applied by the caller with
:func:`candle_count`, so it costs no refit). Days on which the token has no
candle get no fit (NaN): the point-in-time rule. Windows are built in each
token's own candle sequence, so a gap day is skipped, not filled.

Exponential fit (the users' ``fit_token_exponential``): ordinary least squares of
``log(close)`` on ``x = 0..n-1`` gives a start ``(exp(b0), exp(b1))``; a batched
Levenberg-Marquardt refinement of ``close = a0 * a1**x`` in price space follows
(falling back to the start where it fails). R^2 is measured in price space
against the fitted curve (0 for a flat window). Linear fit: price-space OLS
``close = b0 + b1 x``; its growth factor is ``a1 = 1 + b1 / mean(close)``.

All results are ``days x tokens`` float64 tables; row ``t`` uses data through
day ``t`` only.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Hashable

import warnings

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.optimize import OptimizeWarning, curve_fit

from data.candles import Candles

FIT_KINDS = ("exponential", "linear")
NOISE_GROWTH = 1e-9
"""``|a1 - 1|`` below this is floating-point noise around a flat trend (see :func:`_reference_exponential`)."""
_CHUNK_CELLS = 4_000_000  # window cells per chunk: bounds temporary memory to ~32 MB per array


@dataclass(frozen=True)
class TrendFit:
    """Regression results per day and token (``days x tokens``; NaN = no fit).

    Attributes:
        a1: daily growth factor of the fitted curve (``> 1`` means rising).
        r2: coefficient of determination in price space, in ``[.., 1]``.
        n: candles in the window.
    """

    a1: np.ndarray
    r2: np.ndarray
    n: np.ndarray


class _LRU:
    """A tiny bounded memo; keys must include everything the value depends on."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[Hashable, object] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], object]) -> object:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = compute()
        self.items[key] = value
        while len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_FITS = _LRU(24)
_VOLS = _LRU(24)
_COUNTS = _LRU(8)


# --------------------------------------------------------------------------- layout
@dataclass(frozen=True)
class _Stacked:
    """All listed candles of all tokens in one token-major sequence."""

    day: np.ndarray  # (cells,) day index of each candle
    token: np.ndarray  # (cells,) token column
    rank: np.ndarray  # (cells,) 0-based position in the token's own candle sequence
    close: np.ndarray
    high: np.ndarray
    low: np.ndarray


def _stack(candles: Candles) -> _Stacked:
    token, day = np.nonzero(candles.listed.T)  # token-major, days ascending within a token
    starts = np.flatnonzero(np.r_[True, token[1:] != token[:-1]]) if token.size else np.array([], dtype=np.intp)
    first = np.repeat(starts, np.diff(np.r_[starts, token.size]))
    return _Stacked(
        day=day,
        token=token,
        rank=np.arange(token.size) - first,
        close=candles.close[day, token],
        high=candles.high[day, token],
        low=candles.low[day, token],
    )


def _windows(values: np.ndarray, rank: np.ndarray, width: int, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of the ``(cells, width)`` trailing-window matrix, NaN before each token's start."""
    padded = np.concatenate([np.full(width - 1, np.nan), values])
    block = sliding_window_view(padded[lo : hi + width - 1], width).copy()
    invalid = np.arange(width)[None, :] < (width - 1 - rank[lo:hi])[:, None]
    block[invalid] = np.nan
    return block


# --------------------------------------------------------------------------- fits
def _exponential(y: np.ndarray, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Batched exponential fit of ``(rows, width)`` windows (NaN-left-padded). Returns ``(a1, r2)``."""
    mask = ~np.isnan(y)
    n = mask.sum(axis=1)
    width = y.shape[1]
    x = np.where(mask, np.arange(width)[None, :] - (width - n)[:, None], 0).astype(np.float64)
    yz = np.where(mask, y, 0.0)
    log_y = np.where(mask, np.log(np.where(mask, y, 1.0)), 0.0)

    sx, sxx = x.sum(axis=1), (x * x).sum(axis=1)
    sy, sxy = log_y.sum(axis=1), (x * log_y).sum(axis=1)
    b1 = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    b0 = (sy - b1 * sx) / n
    a0, a1 = np.exp(b0), np.exp(b1)
    start0, start1 = a0.copy(), a1.copy()

    def cost(p0: np.ndarray, p1: np.ndarray, rows: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            resid = np.where(mask[rows], yz[rows] - p0[:, None] * np.exp(x[rows] * np.log(p1)[:, None]), 0.0)
        return (resid * resid).sum(axis=1)

    active = np.arange(y.shape[0])
    lam = np.full(y.shape[0], 1e-3)
    current = cost(a0, a1, active)
    ok = np.ones(y.shape[0], dtype=bool)
    for _ in range(max_iter):
        if active.size == 0:
            break
        p0, p1, xm, mm = a0[active], a1[active], x[active], mask[active]
        power = np.exp(xm * np.log(p1)[:, None])
        model = p0[:, None] * power
        resid = np.where(mm, yz[active] - model, 0.0)
        j0 = np.where(mm, power, 0.0)
        j1 = np.where(mm, p0[:, None] * xm * power / p1[:, None], 0.0)
        h00, h01, h11 = (j0 * j0).sum(1), (j0 * j1).sum(1), (j1 * j1).sum(1)
        g0, g1 = (j0 * resid).sum(1), (j1 * resid).sum(1)
        damp = lam[active]
        d00, d11 = h00 * (1 + damp), h11 * (1 + damp)
        det = d00 * d11 - h01 * h01
        with np.errstate(divide="ignore", invalid="ignore"):
            step0 = (d11 * g0 - h01 * g1) / det
            step1 = (d00 * g1 - h01 * g0) / det
        new0, new1 = p0 + step0, p1 + step1
        usable = np.isfinite(new0) & np.isfinite(new1) & (new1 > 0)
        trial = np.where(usable, cost(np.where(usable, new0, p0), np.where(usable, new1, p1), active), np.inf)
        better = trial <= current[active]
        accepted = active[better]
        a0[accepted], a1[accepted] = new0[better], new1[better]
        prev = current[active]
        current[accepted] = trial[better]
        lam[accepted] *= 0.1
        lam[active[~better]] *= 10.0
        small_step = np.abs(step0) <= 1e-12 * (np.abs(p0) + 1e-300)
        small_step &= np.abs(step1) <= 1e-12 * np.abs(p1)
        flat_cost = better & (prev - trial <= 1e-15 * prev)
        stalled = lam[active] > 1e12
        done = small_step | flat_cost | stalled | (current[active] == 0)
        active = active[~done]
    ok &= np.isfinite(a0) & np.isfinite(a1)
    a0, a1 = np.where(ok, a0, start0), np.where(ok, a1, start1)

    fitted = a0[:, None] * np.exp(x * np.log(a1)[:, None])
    return a1, _r_squared(yz, fitted, mask, n)


def _reference_exponential(window: np.ndarray) -> tuple[float, float]:
    """The users' per-window procedure (numpy ``lstsq`` start, MINPACK LM via ``curve_fit``), for one window.

    Used only where the batched fit finds ``|a1 - 1| < NOISE_GROWTH``: there the
    true trend is zero to machine precision and the *sign* of ``a1 - 1`` (which
    decides the growth filter and the rebalance trigger) is rounding noise. Taking
    it from the users' exact procedure keeps results identical to their harness.
    """
    x = np.arange(window.size, dtype=float)
    b0, b1 = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), np.log(window), rcond=None)[0]
    start = (np.exp(b0), np.exp(b1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            (a0, a1), _ = curve_fit(lambda x, a0, a1: a0 * np.power(a1, x), x, window, p0=start, method="lm",
                                    maxfev=5000)
        if not (np.isfinite(a0) and np.isfinite(a1)):
            a0, a1 = start
    except (RuntimeError, ValueError):
        a0, a1 = start
    ss_total = np.sum((window - np.mean(window)) ** 2)
    ss_resid = np.sum((window - a0 * np.power(a1, x)) ** 2)
    return float(a1), float(0.0 if ss_total < 1e-12 else 1.0 - ss_resid / ss_total)


def _linear(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched price-space OLS of ``(rows, width)`` windows. Returns ``(a1 = 1 + slope / mean, r2)``."""
    mask = ~np.isnan(y)
    n = mask.sum(axis=1)
    width = y.shape[1]
    x = np.where(mask, np.arange(width)[None, :] - (width - n)[:, None], 0).astype(np.float64)
    yz = np.where(mask, y, 0.0)
    sx, sxx, sy, sxy = x.sum(1), (x * x).sum(1), yz.sum(1), (x * yz).sum(1)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    intercept = (sy - slope * sx) / n
    fitted = intercept[:, None] + slope[:, None] * x
    return 1.0 + slope / (sy / n), _r_squared(yz, fitted, mask, n)


def _r_squared(y: np.ndarray, fitted: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    mean = y.sum(axis=1) / n
    ss_total = np.where(mask, (y - mean[:, None]) ** 2, 0.0).sum(axis=1)
    ss_resid = np.where(mask, (y - fitted) ** 2, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_total < 1e-12, 0.0, 1.0 - ss_resid / ss_total)


def _compute_trend(candles: Candles, fit_window: int, kind: str) -> TrendFit:
    s = _stack(candles)
    a1 = np.full(candles.shape, np.nan)
    r2 = np.full(candles.shape, np.nan)
    count = np.full(candles.shape, np.nan)
    eligible = np.flatnonzero(s.rank >= 1)  # at least 2 candles
    fit = _exponential if kind == "exponential" else _linear
    rows_per_chunk = max(1, _CHUNK_CELLS // fit_window)
    for lo in range(0, eligible.size, rows_per_chunk):
        cells = eligible[lo : lo + rows_per_chunk]
        first, last = int(cells[0]), int(cells[-1]) + 1
        block = _windows(s.close, s.rank, fit_window, first, last)[cells - first]
        if kind == "exponential":
            # a window with any non-positive close gets no fit (log undefined)
            usable = ~np.any(block <= 0, axis=1)
            cells, block = cells[usable], block[usable]
        g, q = fit(block)
        if kind == "exponential":
            for row in np.flatnonzero(np.abs(g - 1.0) < NOISE_GROWTH):
                g[row], q[row] = _reference_exponential(block[row][~np.isnan(block[row])])
        a1[s.day[cells], s.token[cells]] = g
        r2[s.day[cells], s.token[cells]] = q
        count[s.day[cells], s.token[cells]] = np.minimum(s.rank[cells] + 1, fit_window)
    for array in (a1, r2, count):
        array.setflags(write=False)
    return TrendFit(a1=a1, r2=r2, n=count)


def trend_fit(candles: Candles, fit_window: int, kind: str = "exponential") -> TrendFit:
    """Fits of every token on every day it has at least 2 candles (memoised on data fingerprint and arguments)."""
    if kind not in FIT_KINDS:
        raise ValueError(f"fit kind must be one of {FIT_KINDS}, got {kind!r}")
    key = (candles.fingerprint, int(fit_window), kind)
    return _FITS.get(key, lambda: _compute_trend(candles, int(fit_window), kind))


def candle_count(candles: Candles) -> np.ndarray:
    """``days x tokens`` number of candles the token has had through each day (0 before listing)."""
    return _COUNTS.get(candles.fingerprint, lambda: _frozen_copy(np.cumsum(candles.listed, axis=0)))


def _frozen_copy(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


# --------------------------------------------------------------------------- volatility
def _token_volatility(close: np.ndarray, high: np.ndarray, low: np.ndarray, fit_window: int,
                      atr_window: int) -> np.ndarray:
    """Volatility along one token's own candle sequence (sums kept per token for exact prefixes)."""
    prev_close = np.r_[close[0], close[:-1]]
    true_range = np.maximum.reduce([high - low, np.abs(high - prev_close), np.abs(low - prev_close)])
    true_range[0] = 0.0  # the first candle has no previous close
    cum_tr = np.r_[0.0, np.cumsum(true_range)]
    cum_close = np.r_[0.0, np.cumsum(close)]
    end = np.arange(1, close.size + 1)  # prefix length through each candle
    n = np.minimum(end, fit_window)  # candles in the fit window
    lookback = np.minimum(n, atr_window)
    # the lookback's first candle contributes no true range: sum TR over its last (lookback - 1) candles
    atr = (cum_tr[end] - cum_tr[end - lookback + 1]) / np.maximum(lookback - 1, 1)
    mean_close = (cum_close[end] - cum_close[end - n]) / n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((lookback > 1) & (mean_close > 0), atr / mean_close, 0.0)


def _compute_volatility(candles: Candles, fit_window: int, atr_window: int) -> np.ndarray:
    s = _stack(candles)
    vol = np.empty(s.close.size)
    bounds = np.flatnonzero(np.r_[True, s.token[1:] != s.token[:-1], True]) if s.token.size else [0]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        vol[lo:hi] = _token_volatility(s.close[lo:hi], s.high[lo:hi], s.low[lo:hi], fit_window, atr_window)
    vol[s.rank < 1] = np.nan  # a single candle: no fit
    out = np.full(candles.shape, np.nan)
    out[s.day, s.token] = vol
    out.setflags(write=False)
    return out


def volatility(candles: Candles, fit_window: int, atr_window: int) -> np.ndarray:
    """``days x tokens`` ATR-over-mean-close volatility (fraction per day; NaN = no fit).

    Mean true range over the last ``min(n, atr_window)`` candles (``n - 1`` ranges
    for ``n`` candles), divided by the mean close of the whole fit window; 0 when
    the lookback has a single candle.
    """
    key = (candles.fingerprint, int(fit_window), int(atr_window))
    return _VOLS.get(key, lambda: _compute_volatility(candles, int(fit_window), int(atr_window)))
