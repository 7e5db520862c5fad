"""Bulk regression fits: every token, every day, in one compiled pass.

For day ``t`` and token ``j`` the fit window is the token's last ``fit_window``
candles up to and including day ``t`` (fewer while the token is young; at least
2 candles are required; a longer ``min_history`` is applied by the caller with
:func:`candle_count`, so it costs no refit). Days on which the token has no
candle get no fit (NaN): the point-in-time rule. Windows are built in each
token's own candle sequence, so a gap day is skipped, not filled.

Exponential fit (the users' ``fit_token_exponential``): ordinary least squares of
``log(close)`` on ``x = 0..n-1`` gives a start ``(exp(b0), exp(b1))``; a
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
from numba import njit
from scipy.optimize import OptimizeWarning, curve_fit

from data.candles import Candles
from harness.backtest import pairwise_sum

FIT_KINDS = ("exponential", "linear")
NOISE_GROWTH = 1e-9
"""``|a1 - 1|`` below this is floating-point noise around a flat trend (see :func:`_reference_exponential`)."""


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
    """A bounded memo: at most ``size`` entries and about ``max_mb`` of arrays (the newest entry always stays).

    Keys must include everything the value depends on. The byte count covers the
    numpy arrays a value holds (directly, in a tuple/list/dict, or as dataclass fields).
    """

    def __init__(self, size: int, max_mb: float = float("inf")) -> None:
        self.size = size
        self.max_bytes = max_mb * 2**20
        self.items: OrderedDict[Hashable, object] = OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], object]) -> object:
        if key in self.items:
            self.items.move_to_end(key)
            return self.items[key]
        value = compute()
        self.items[key] = value
        while len(self.items) > 1 and (len(self.items) > self.size
                                       or sum(map(_array_bytes, self.items.values())) > self.max_bytes):
            self.items.popitem(last=False)
        return value


def _array_bytes(value: object) -> int:
    """Bytes of the numpy arrays in ``value`` (see :class:`_LRU`)."""
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, dict):
        value = list(value.values())
    elif hasattr(value, "__dataclass_fields__"):
        value = [getattr(value, name) for name in value.__dataclass_fields__]
    return sum(_array_bytes(v) for v in value) if isinstance(value, (tuple, list)) else 0


_FITS = _LRU(256, max_mb=384)
_VOLS = _LRU(256, max_mb=128)
_COUNTS = _LRU(64, max_mb=64)


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


# --------------------------------------------------------------------------- fits
# One compiled loop over the cells fits each trailing window on its own. The arithmetic is that of the
# batched numpy formulation it replaced, operation for operation: a window is laid out in ``width``
# columns, left-padded (``x = 0``, weight 0) when the token is younger than ``width``, and every sum runs
# over all ``width`` columns in numpy's pairwise order -- so the fits are bit-identical to it
# (``tests/test_speed_fits.py``). The Levenberg-Marquardt curve ``a0 * a1**x`` is evaluated as
# ``exp(x * log(a1))``, once per trial point (an accepted trial's curve is the next Jacobian's).
_JIT = dict(cache=True, error_model="numpy", nogil=True)
_INLINE = dict(_JIT, inline="always")
"""For the helpers called per window and Levenberg-Marquardt step (no call overhead)."""
MAX_LM_ITERATIONS = 60


@njit(**_INLINE)
def _sum_of_products(a: np.ndarray, b: np.ndarray, scratch: np.ndarray) -> float:
    """``np.sum(a * b)``, bit for bit."""
    for i in range(a.size):
        scratch[i] = a[i] * b[i]
    return pairwise_sum(scratch, 0, a.size)


@njit(**_INLINE)
def _curve(p0: float, p1: float, x, valid, y, power, resid, scratch) -> float:
    """Fill ``power = exp(x log p1)`` and ``resid = y - p0 power`` (0 where not ``valid``); return ``sum(resid**2)``."""
    log_p1 = np.log(p1)
    for i in range(x.size):
        power[i] = np.exp(x[i] * log_p1)
        resid[i] = y[i] - p0 * power[i] if valid[i] else 0.0
    return _sum_of_products(resid, resid, scratch)


@njit(**_JIT)
def _r_squared(y, fitted, valid, n: int, scratch) -> float:
    """R^2 of ``fitted`` against ``y`` over the valid columns (0 for a flat window)."""
    mean = pairwise_sum(y, 0, y.size) / n
    for i in range(y.size):
        scratch[i] = (y[i] - mean) ** 2 if valid[i] else 0.0
    ss_total = pairwise_sum(scratch, 0, y.size)
    for i in range(y.size):
        scratch[i] = (y[i] - fitted[i]) ** 2 if valid[i] else 0.0
    ss_resid = pairwise_sum(scratch, 0, y.size)
    return 0.0 if ss_total < 1e-12 else 1.0 - ss_resid / ss_total


@njit(**_JIT)
def _exponential(y, x, valid, n: int, work) -> tuple[float, float]:
    """Exponential fit of one laid-out window: log-OLS start, then Levenberg-Marquardt in price space.

    ``y`` (closes), ``x`` (0..n-1 on the valid columns) and ``valid`` are ``width`` long, 0 where
    not valid; ``n`` valid columns; ``work``: 8 scratch arrays of ``width``. Returns ``(a1, r2)``,
    the start's when the refinement leaves non-finite parameters.
    """
    log_y, power, trial_power, resid, trial_resid, j0, j1, scratch = work
    for i in range(y.size):
        log_y[i] = np.log(y[i]) if valid[i] else 0.0
    sx, sxx = pairwise_sum(x, 0, x.size), _sum_of_products(x, x, scratch)
    sy, sxy = pairwise_sum(log_y, 0, x.size), _sum_of_products(x, log_y, scratch)
    b1 = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    b0 = (sy - b1 * sx) / n
    start0, start1 = np.exp(b0), np.exp(b1)
    a0, a1 = start0, start1
    lam = 1e-3
    current = _curve(a0, a1, x, valid, y, power, resid, scratch)
    for _ in range(MAX_LM_ITERATIONS):
        for i in range(x.size):
            j0[i] = power[i] if valid[i] else 0.0
            j1[i] = a0 * x[i] * power[i] / a1 if valid[i] else 0.0
        h00, h01, h11 = (_sum_of_products(j0, j0, scratch), _sum_of_products(j0, j1, scratch),
                         _sum_of_products(j1, j1, scratch))
        g0, g1 = _sum_of_products(j0, resid, scratch), _sum_of_products(j1, resid, scratch)
        d00, d11 = h00 * (1 + lam), h11 * (1 + lam)
        det = d00 * d11 - h01 * h01
        step0 = (d11 * g0 - h01 * g1) / det
        step1 = (d00 * g1 - h01 * g0) / det
        new0, new1 = a0 + step0, a1 + step1
        usable = np.isfinite(new0) and np.isfinite(new1) and new1 > 0
        trial = _curve(new0, new1, x, valid, y, trial_power, trial_resid, scratch) if usable else np.inf
        better = trial <= current
        previous = current
        small_step = abs(step0) <= 1e-12 * (abs(a0) + 1e-300) and abs(step1) <= 1e-12 * abs(a1)
        if better:
            if not usable:  # accepted only when the cost was already infinite: evaluate the curve there too
                _curve(new0, new1, x, valid, y, trial_power, trial_resid, scratch)
            a0, a1, current = new0, new1, trial
            power, trial_power = trial_power, power
            resid, trial_resid = trial_resid, resid
            lam *= 0.1
        else:
            lam *= 10.0
        flat_cost = better and previous - trial <= 1e-15 * previous
        if small_step or flat_cost or lam > 1e12 or current == 0:
            break
    if not (np.isfinite(a0) and np.isfinite(a1)):
        a0, a1 = start0, start1
        _curve(a0, a1, x, valid, y, power, resid, scratch)
    fitted = trial_resid  # free scratch now
    for i in range(x.size):
        fitted[i] = a0 * power[i]
    return a1, _r_squared(y, fitted, valid, n, scratch)


@njit(**_JIT)
def _linear(y, x, valid, n: int, work) -> tuple[float, float]:
    """Price-space OLS of one laid-out window (as :func:`_exponential`). Returns ``(a1 = 1 + slope / mean, r2)``."""
    fitted, scratch = work[0], work[-1]
    sx, sxx = pairwise_sum(x, 0, x.size), _sum_of_products(x, x, scratch)
    sy, sxy = pairwise_sum(y, 0, x.size), _sum_of_products(x, y, scratch)
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    intercept = (sy - slope * sx) / n
    for i in range(x.size):
        fitted[i] = intercept + slope * x[i]
    return 1.0 + slope / (sy / n), _r_squared(y, fitted, valid, n, scratch)


@njit(**_JIT)
def _fit_cells(close, rank, cells, width: int, exponential: bool):
    """Fit the trailing window of each of ``cells`` (indices into the stacked sequence, see :class:`_Stacked`).

    A cell's window is its token's last ``min(rank + 1, width)`` closes. Returns ``(a1, r2,
    fitted)``, one per cell; ``fitted`` is False (no fit) for an exponential window with a
    non-positive close.
    """
    a1, r2 = np.full(cells.size, np.nan), np.full(cells.size, np.nan)
    fitted = np.zeros(cells.size, dtype=np.bool_)
    y, x, valid = np.empty(width), np.empty(width), np.empty(width, dtype=np.bool_)
    work = (np.empty(width), np.empty(width), np.empty(width), np.empty(width), np.empty(width), np.empty(width),
            np.empty(width), np.empty(width))
    for k in range(cells.size):
        cell = cells[k]
        n = min(rank[cell] + 1, width)
        pad = width - n
        positive = True
        for i in range(width):
            valid[i] = i >= pad
            y[i] = close[cell - width + 1 + i] if valid[i] else 0.0
            x[i] = i - pad if valid[i] else 0.0
            positive &= not (valid[i] and y[i] <= 0)
        if exponential and not positive:
            continue  # log undefined: no fit
        a1[k], r2[k] = _exponential(y, x, valid, n, work) if exponential else _linear(y, x, valid, n, work)
        fitted[k] = True
    return a1, r2, fitted


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


def _compute_trend(candles: Candles, fit_window: int, kind: str) -> TrendFit:
    s = _stack(candles)
    cells = np.flatnonzero(s.rank >= 1)  # at least 2 candles
    g, q, fitted = _fit_cells(s.close, s.rank, cells, fit_window, kind == "exponential")
    cells, g, q = cells[fitted], g[fitted], q[fitted]
    if kind == "exponential":
        for row in np.flatnonzero(np.abs(g - 1.0) < NOISE_GROWTH):
            cell = cells[row]
            g[row], q[row] = _reference_exponential(s.close[cell - min(s.rank[cell] + 1, fit_window) + 1 : cell + 1])
    a1 = np.full(candles.shape, np.nan)
    r2 = np.full(candles.shape, np.nan)
    count = np.full(candles.shape, np.nan)
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
