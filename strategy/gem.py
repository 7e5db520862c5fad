"""One GEM momentum specialist, in bulk over all days and tokens.

``gem_fit`` and ``gem_portfolio`` are the injection points the harness expects
(``fit_fn``, ``portfolio_fn``) for a single specialist, e.g. the users' bear
specialist. The ensemble in :mod:`strategy.ensemble` reuses the same pieces.
"""

from __future__ import annotations

import numpy as np

from data.candles import Candles
from harness.plan import Plan
from strategy.fits import candle_count, trend_fit, volatility
from strategy.params import GemParams


def specialist_signals(candles: Candles, p: GemParams) -> dict[str, np.ndarray]:
    """``days x tokens`` tables: ``a1``, ``r2``, ``momentum`` (%/day), ``vol`` (ATR / mean close); NaN = no fit."""
    fit = trend_fit(candles, p.fit_window, p.fit_kind)
    young = candle_count(candles) < p.min_history
    a1 = np.where(young, np.nan, fit.a1)
    with np.errstate(invalid="ignore"):
        momentum = fit.r2**p.r2_exponent * (a1 - 1.0) * 100.0
    # the volatility of a window with a non-positive close is defined, its fit is not
    vol = volatility(candles, p.fit_window, p.atr_window)
    return {"a1": a1, "r2": fit.r2, "momentum": momentum, "vol": np.where(np.isnan(a1), np.nan, vol)}


def specialist_weights(signals: dict[str, np.ndarray], p: GemParams) -> tuple[np.ndarray, np.ndarray]:
    """Target weights and buy priority (``days x tokens``) of the users' ``build_portfolio``.

    Keep ``a1 > 1`` (growth filter), ``r2 > r2_threshold``, ``momentum < momentum_cap``
    (when the cap is > 0); rank by momentum (descending, or ascending with
    ``pick_lowest_momentum``; ties by column); take ``top_n``; drop zero-volatility
    tokens; weight by inverse volatility (or equally). Nothing left: all cash.
    """
    a1, r2, momentum, vol = signals["a1"], signals["r2"], signals["momentum"], signals["vol"]
    keep = ~np.isnan(momentum)
    with np.errstate(invalid="ignore"):
        if p.use_growth_filter:
            keep &= a1 > 1.0
        if p.use_r2_filter:
            keep &= r2 > p.r2_threshold
        if p.use_momentum_cap and p.momentum_cap > 0.0:
            keep &= momentum < p.momentum_cap
    priority = -momentum if p.pick_lowest_momentum else momentum
    key = np.where(keep, -priority, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(order.shape[0], 0), axis=1)
    chosen = keep & (rank < p.top_n) & (vol > 0.0)
    if p.use_inverse_vol_weighting:
        with np.errstate(divide="ignore"):
            raw = np.where(chosen, 1.0 / np.where(chosen, vol, 1.0), 0.0)
    else:
        raw = chosen.astype(np.float64)
    total = raw.sum(axis=1, keepdims=True)
    weights = np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)
    return weights, np.where(chosen, priority, 0.0)


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
