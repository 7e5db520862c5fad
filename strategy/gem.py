"""One GEM momentum specialist, in bulk over all days and tokens.

``gem_fit`` and ``gem_portfolio`` are the injection points the harness expects
(``fit_fn``, ``portfolio_fn``) for a single specialist, e.g. the users' bear
specialist. The ensemble in :mod:`strategy.ensemble` reuses the same pieces.

The portfolio rule (:func:`select_row`) is compiled and runs row by row; its
arithmetic is that of the numpy formulation it replaced (a stable argsort of every
row, numpy's pairwise row sums), so weights and priorities are bit-identical to it
(``tests/test_speed_strategy.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from data.candles import Candles
from harness.backtest import pairwise_sum, readonly
from harness.plan import Plan
from strategy.fits import _LRU, candle_count, trend_fit, volatility
from strategy.params import GemParams

SIGNAL_KEYS = ("a1", "r2", "momentum", "vol")
_JIT = dict(cache=True, error_model="numpy", nogil=True)
_SIGNALS = _LRU(64, max_mb=256)


def specialist_signals(candles: Candles, p: GemParams) -> dict[str, np.ndarray]:
    """``days x tokens`` tables: ``a1``, ``r2``, ``momentum`` (%/day), ``vol`` (ATR / mean close); NaN = no fit.

    Memoised on the data's fingerprint and the parameters the tables depend on (read-only arrays).
    """
    key = (candles.fingerprint, p.fit_window, p.fit_kind, p.min_history, p.r2_exponent, p.atr_window)

    def compute() -> dict[str, np.ndarray]:
        fit = trend_fit(candles, p.fit_window, p.fit_kind)
        young = candle_count(candles) < p.min_history
        a1 = np.where(young, np.nan, fit.a1)
        with np.errstate(invalid="ignore"):
            momentum = fit.r2**p.r2_exponent * (a1 - 1.0) * 100.0
        # the volatility of a window with a non-positive close is defined, its fit is not
        vol = np.where(np.isnan(a1), np.nan, volatility(candles, p.fit_window, p.atr_window))
        for table in (a1, momentum, vol):
            table.setflags(write=False)
        return {"a1": a1, "r2": fit.r2, "momentum": momentum, "vol": vol}

    return dict(_SIGNALS.get(key, compute))


def selection_rule(p: GemParams) -> tuple:
    """The portfolio parameters of ``p`` as the tuple :func:`select_row` takes."""
    return (p.top_n, p.r2_threshold, p.momentum_cap, p.use_growth_filter, p.use_r2_filter,
            p.use_momentum_cap and p.momentum_cap > 0.0, p.pick_lowest_momentum, p.use_inverse_vol_weighting)


@njit(**_JIT)
def select_row(a1, r2, momentum, vol, t, rule, raw, best_key, best_col, late) -> tuple[float, int]:
    """The users' ``build_portfolio`` for day ``t`` of the ``days x tokens`` tables.

    Keep ``a1 > 1`` (growth filter), ``r2 > r2_threshold``, ``momentum < momentum_cap``;
    rank every token by ``-priority`` (``priority`` = momentum, or its negative with
    ``pick_lowest_momentum``; dropped tokens rank as ``+inf``; ties by column); take the
    kept tokens of rank ``< top_n`` with volatility > 0. Returns ``(total, count)``: the
    chosen columns are ``best_col[:count]``, ``raw`` holds their unnormalised weights
    (1 / vol, or 1) and 0 elsewhere, ``total`` is its sum (0: all cash). ``best_key``,
    ``best_col`` (``top_n`` long) and ``late`` (``2 top_n``) are scratch.
    """
    top_n, r2_threshold, momentum_cap, use_growth, use_r2, use_cap, lowest, inverse_vol = rule
    finite = 0  # kept tokens of finite key so far
    ranked = 0  # how many of them best_key/best_col hold: the top_n smallest (key, column), sorted
    n_late = 0  # kept tokens of key +inf: they tie with every dropped token, so columns decide
    for j in range(momentum.shape[1]):
        m = momentum[t, j]
        keep = not np.isnan(m)
        if use_growth:
            keep &= a1[t, j] > 1.0
        if use_r2:
            keep &= r2[t, j] > r2_threshold
        if use_cap:
            keep &= m < momentum_cap
        if not keep:
            continue
        key = m if lowest else -m
        if key == np.inf:
            if j - finite < top_n:  # its rank is (all finite keys) + (earlier tokens without one)
                late[n_late], late[top_n + n_late] = j, j - finite
                n_late += 1
            continue
        finite += 1
        if ranked == top_n and not key < best_key[top_n - 1]:
            continue
        slot = min(ranked, top_n - 1)
        while slot > 0 and best_key[slot - 1] > key:  # columns arrive in order: ties stay behind
            best_key[slot], best_col[slot] = best_key[slot - 1], best_col[slot - 1]
            slot -= 1
        best_key[slot], best_col[slot] = key, j
        ranked = min(ranked + 1, top_n)
    raw[:] = 0.0
    count = 0
    for i in range(ranked + n_late):
        j = best_col[i] if i < ranked else late[i - ranked]
        if (i < ranked or finite + late[top_n + i - ranked] < top_n) and vol[t, j] > 0.0:
            best_col[count] = j
            count += 1
            raw[j] = 1.0 / vol[t, j] if inverse_vol else 1.0
    return pairwise_sum(raw, 0, raw.size), count


@njit(**_JIT)
def _specialist_weights(a1, r2, momentum, vol, rule):
    """``(weights, priority)`` (``days x tokens``) of :func:`select_row` on every day."""
    days, tokens = momentum.shape
    top_n, lowest = rule[0], rule[6]
    weights, priority = np.zeros((days, tokens)), np.zeros((days, tokens))
    raw = np.zeros(tokens)
    best_key, best_col, late = np.empty(top_n), np.empty(top_n, dtype=np.int64), np.empty(2 * top_n, np.int64)
    for t in range(days):
        total, count = select_row(a1, r2, momentum, vol, t, rule, raw, best_key, best_col, late)
        for j in best_col[:count]:
            priority[t, j] = -momentum[t, j] if lowest else momentum[t, j]
            if total > 0:
                weights[t, j] = raw[j] / total
    return weights, priority


def specialist_weights(signals: dict[str, np.ndarray], p: GemParams) -> tuple[np.ndarray, np.ndarray]:
    """Target weights and buy priority (``days x tokens``) of the users' ``build_portfolio``.

    The choice is :func:`select_row`'s. Weights are inverse-volatility (or equal) over the chosen tokens, summing to 1;
    a day with nothing chosen is all cash. Priority is the chosen tokens' priority, 0 elsewhere.
    """
    return _specialist_weights(*(readonly(signals[k]) for k in SIGNAL_KEYS), selection_rule(p))


def gem_fit(candles: Candles, params: GemParams) -> dict[str, np.ndarray]:
    """``fit_fn`` for a single specialist."""
    return specialist_signals(candles, params)


def gem_portfolio(signals: dict[str, np.ndarray], params: GemParams) -> Plan:
    """``portfolio_fn`` for a single specialist: its weights, raw momentum and fixed cooldown."""
    weights, priority = specialist_weights(signals, params)
    days = weights.shape[0]
    return Plan(
        weights=weights,
        momentum=signals["momentum"],
        priority=priority,
        cooldown=np.full(days, params.rebalance_cooldown, dtype=np.int64),
    )
