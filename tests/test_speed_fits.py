"""The compiled per-window fits are bit-identical to the batched numpy formulation they replaced (where numpy's
``exp``/``log`` are the C library's: :func:`_assert_identical`).

``_reference_trend`` below is that formulation, verbatim: every window of every token laid out in a
``(cells, fit_window)`` matrix (NaN-left-padded), the log-OLS start and the Levenberg-Marquardt
refinement vectorised over rows, in chunks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from conftest import random_universe
from data import load_universe
from data.candles import Candles
from strategy.fits import NOISE_GROWTH, TrendFit, _compute_trend, _reference_exponential, _stack


# --------------------------------------------------------------------------- the numpy reference
def _reference_windows(values: np.ndarray, rank: np.ndarray, width: int, lo: int, hi: int) -> np.ndarray:
    """Rows ``lo:hi`` of the ``(cells, width)`` trailing-window matrix, NaN before each token's start."""
    padded = np.concatenate([np.full(width - 1, np.nan), values])
    block = sliding_window_view(padded[lo : hi + width - 1], width).copy()
    invalid = np.arange(width)[None, :] < (width - 1 - rank[lo:hi])[:, None]
    block[invalid] = np.nan
    return block


def _reference_exponential_batch(y: np.ndarray, max_iter: int = 60) -> tuple[np.ndarray, np.ndarray]:
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
    return a1, _reference_r_squared(yz, fitted, mask, n)


def _reference_linear(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
    return 1.0 + slope / (sy / n), _reference_r_squared(yz, fitted, mask, n)


def _reference_r_squared(y: np.ndarray, fitted: np.ndarray, mask: np.ndarray, n: np.ndarray) -> np.ndarray:
    mean = y.sum(axis=1) / n
    ss_total = np.where(mask, (y - mean[:, None]) ** 2, 0.0).sum(axis=1)
    ss_resid = np.where(mask, (y - fitted) ** 2, 0.0).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ss_total < 1e-12, 0.0, 1.0 - ss_resid / ss_total)


def _reference_trend(candles: Candles, fit_window: int, kind: str) -> TrendFit:
    s = _stack(candles)
    a1 = np.full(candles.shape, np.nan)
    r2 = np.full(candles.shape, np.nan)
    count = np.full(candles.shape, np.nan)
    eligible = np.flatnonzero(s.rank >= 1)  # at least 2 candles
    fit = _reference_exponential_batch if kind == "exponential" else _reference_linear
    rows_per_chunk = max(1, 4_000_000 // fit_window)
    for lo in range(0, eligible.size, rows_per_chunk):
        cells = eligible[lo : lo + rows_per_chunk]
        first, last = int(cells[0]), int(cells[-1]) + 1
        block = _reference_windows(s.close, s.rank, fit_window, first, last)[cells - first]
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




# --------------------------------------------------------------------------- equivalence
def _numpy_exp_log_are_libm() -> bool:
    """Whether numpy's float64 ``exp`` and ``log`` give the C library's results on this CPU. They do on AVX2
    machines (numpy has no float64 kernel there and calls libm, as the compiled fits do); on AVX-512 numpy uses its
    own SIMD kernels, which differ in the last bit for about 5% of ``exp`` arguments (measured on an Intel Xeon)."""
    x = np.random.default_rng(0).uniform(-5.0, 5.0, 2000)
    y = np.random.default_rng(1).uniform(0.01, 100.0, 2000)
    return (np.array_equal(np.exp(x), [math.exp(v) for v in x]) and np.array_equal(np.log(y), [math.log(v) for v in y]))


NUMPY_IS_LIBM = _numpy_exp_log_are_libm()


def _assert_identical(candles: Candles, fit_window: int, kind: str) -> None:
    """Bit-identical where the reference's numpy ``exp``/``log`` are the C library's (always for the linear fit, which
    uses neither). Elsewhere a last-bit difference in ``exp`` can move a Levenberg-Marquardt step across its stopping
    test, so the two agree to the fit's own convergence tolerance (measured: ``a1`` within 8e-10, ``r2`` within 3e-13)
    with the same valid windows and counts."""
    fast = _compute_trend(candles, fit_window, kind)
    with np.errstate(all="ignore"):
        ref = _reference_trend(candles, fit_window, kind)
    exact = kind == "linear" or NUMPY_IS_LIBM
    for name in ("a1", "r2", "n"):
        message = f"{name} {kind} {fit_window}"
        if exact or name == "n":
            np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=message)
        else:
            np.testing.assert_allclose(getattr(fast, name), getattr(ref, name), rtol=1e-8, atol=1e-12, err_msg=message)


def _hostile(seed: int) -> Candles:
    """Listings, delistings, gaps, flat stretches (R^2 = 0, a1 = 1), zero and negative closes, a tiny window."""
    candles = random_universe(seed=seed, days=140, tokens=7)
    close = candles.close.copy()
    close[30:50, 0] = 5.0  # flat: handed to the users' per-window procedure
    close[60:64, 4] = 0.0  # non-positive closes: no exponential fit
    close[80, 5] = -1.0
    close[::9, 6] = np.nan
    return Candles(candles.dates, candles.tokens, close, close, close, close, candles.volume)


@pytest.mark.parametrize("kind", ["exponential", "linear"])
@pytest.mark.parametrize("fit_window", [2, 5, 8, 10, 30, 90, 150])
def test_fits_are_bit_identical_on_hostile_universes(kind, fit_window):
    for seed in range(3):
        _assert_identical(_hostile(seed), fit_window, kind)


@pytest.mark.parametrize("fit_window", [10, 30, 60])
@pytest.mark.slow
def test_fits_are_bit_identical_on_the_small_synthetic_universe(fit_window):
    _assert_identical(load_universe("synthetic-small"), fit_window, "exponential")
