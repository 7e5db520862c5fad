"""A straightforward per-token, per-day reference backtest: the test oracle.

It re-implements the trader-research semantics the slow, obvious way (a pandas
slice and a ``scipy.optimize.curve_fit`` per token per day, dict bookkeeping)
so the fast engine can be checked against it. Point-in-time rule as in the fast
harness: a token is fitted and traded only on days it has a candle, and a held
token without a candle is sold at its last close. It is deliberately independent
of ``harness.backtest`` and ``strategy.fits``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit

from data.candles import Candles
from strategy.params import GemParams

FEE = 0.003
STRESS = 1.5
CAPITAL = 10_000.0


def _model(x, a0, a1):
    return a0 * np.power(a1, x)


def fit_window(close, high, low, p: GemParams):
    """(a1, r2, momentum, vol) of one window, or None."""
    if np.any(close <= 0) and p.fit_kind == "exponential":
        return None
    x = np.arange(close.size, dtype=float)
    if p.fit_kind == "exponential":
        b0, b1 = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), np.log(close), rcond=None)[0]
        start = (math.exp(b0), math.exp(b1))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OptimizeWarning)
                (a0, a1), _ = curve_fit(_model, x, close, p0=start, method="lm", maxfev=5000, xtol=1e-14, ftol=1e-14)
            if not (np.isfinite(a0) and np.isfinite(a1)):
                a0, a1 = start
        except (RuntimeError, ValueError):
            a0, a1 = start
        fitted = _model(x, a0, a1)
    else:
        b0, b1 = np.linalg.lstsq(np.column_stack([np.ones_like(x), x]), close, rcond=None)[0]
        fitted = b0 + b1 * x
        a1 = 1.0 + b1 / np.mean(close)
    ss_tot = float(np.sum((close - close.mean()) ** 2))
    r2 = 0.0 if ss_tot < 1e-12 else 1.0 - float(np.sum((close - fitted) ** 2)) / ss_tot
    momentum = float(np.float64(r2) ** p.r2_exponent * (a1 - 1.0) * 100.0)
    lookback = min(close.size, p.atr_window)
    mean_close = float(np.mean(close))
    if lookback > 1 and mean_close > 0:
        c, h, lo = close[-lookback:], high[-lookback:], low[-lookback:]
        ranges = [max(h[i] - lo[i], abs(h[i] - c[i - 1]), abs(lo[i] - c[i - 1])) for i in range(1, lookback)]
        vol = sum(ranges) / (lookback - 1) / mean_close
    else:
        vol = 0.0
    return a1, r2, momentum, vol


def portfolio(fits: dict, p: GemParams) -> list[tuple[str, float]]:
    rows = [(tok, *f) for tok, f in fits.items()]
    if p.use_growth_filter:
        rows = [r for r in rows if r[1] > 1.0]
    if p.use_r2_filter:
        rows = [r for r in rows if r[2] > p.r2_threshold]
    if p.use_momentum_cap and p.momentum_cap > 0:
        rows = [r for r in rows if r[3] < p.momentum_cap]
    rows.sort(key=lambda r: r[3], reverse=not p.pick_lowest_momentum)
    rows = [r for r in rows[: p.top_n] if r[4] > 0]
    if not rows:
        return []
    if p.use_inverse_vol_weighting:
        total = sum(1.0 / r[4] for r in rows)
        return [(r[0], (1.0 / r[4]) / total) for r in rows]
    return [(r[0], 1.0 / len(rows)) for r in rows]


def backtest(p: GemParams, candles: Candles, fee: float) -> dict:
    cash, qty, last_price = CAPITAL, {}, {}
    values, count, last = [], 0, None
    for t in range(candles.n_days):
        prices = {tok: candles.close[t, j] for j, tok in enumerate(candles.tokens) if not np.isnan(candles.close[t, j])}
        for tok in [tok for tok in qty if tok not in prices]:  # no candle today: sell at the last close
            cash += qty[tok] * last_price[tok] - qty[tok] * last_price[tok] * fee
            del qty[tok]
        last_price.update(prices)
        fits = {}
        for j, tok in enumerate(candles.tokens):
            if tok not in prices:
                continue
            history = np.flatnonzero(~np.isnan(candles.close[: t + 1, j]))
            if history.size < max(2, p.min_history):
                continue
            rows = history[-p.fit_window :]
            f = fit_window(candles.close[rows, j], candles.high[rows, j], candles.low[rows, j], p)
            if f is not None:
                fits[tok] = f
        if t == 0:
            go = True
        elif p.rebalance_cooldown > 0 and t - last < p.rebalance_cooldown:
            go = False
        else:
            go = any((tok not in qty and f[2] > 0) or (tok in qty and f[2] < 0) for tok, f in fits.items())
        if go:
            targets = portfolio(fits, p)
            weights = dict(targets)
            total = cash + sum(q * prices[tok] for tok, q in qty.items())
            floor = total * 0.001
            for tok in list(qty):
                excess = qty[tok] * prices[tok] - weights.get(tok, 0.0) * total
                if excess > floor:
                    sold = excess / prices[tok]
                    gross = sold * prices[tok]
                    cash += gross - gross * fee
                    qty[tok] -= sold
                    if qty[tok] <= 1e-12:
                        del qty[tok]
            total = cash + sum(q * prices[tok] for tok, q in qty.items())
            for tok, w in targets:
                amount = total * w - qty.get(tok, 0.0) * prices[tok]
                if amount > floor:
                    amount = min(amount, cash)
                    if amount > 0:
                        cash -= amount
                        qty[tok] = qty.get(tok, 0.0) + (amount - amount * fee) / prices[tok]
            count += 1
            last = t
        values.append((cash, {tok: q * prices[tok] for tok, q in qty.items()}))
    totals = np.array([c + sum(v.values()) for c, v in values])
    final_cash, final_pos = values[-1]
    weights = [v / totals[-1] for v in final_pos.values()]
    cash_w = 1.0 - sum(weights)
    hhi = sum(w * w for w in weights) + (cash_w**2 if cash_w > 1e-9 else 0.0)
    total_return = totals[-1] / totals[0] - 1.0
    annualized = (1.0 + total_return) ** (365.0 / totals.size) - 1.0
    peak = np.maximum.accumulate(totals)
    dd = float(np.max((peak - totals) / peak))
    returns = np.diff(totals) / totals[:-1]
    std = float(np.std(returns))
    down = math.sqrt(float(np.sum(returns[returns < 0] ** 2)) / returns.size)
    return {
        "total_return_pct": total_return * 100,
        "annualized_return_pct": annualized * 100,
        "max_drawdown_pct": -dd * 100,
        "sharpe_ratio": float(np.mean(returns)) / std * math.sqrt(252) if std > 1e-12 else 0.0,
        "sortino_ratio": float(np.mean(returns)) / down * math.sqrt(252) if down > 1e-12 else 0.0,
        "calmar_ratio": annualized / dd if dd > 1e-12 else 0.0,
        "rebalance_count": count,
        "hhi": hhi,
        "final_value": float(totals[-1]),
    }


def evaluate(p: GemParams, candles: Candles) -> tuple[float, dict, dict]:
    base = backtest(p, candles, FEE)
    stress = backtest(p, candles, FEE * STRESS)
    annualized = base["annualized_return_pct"] / 100
    if annualized < -0.5 or stress["calmar_ratio"] < 0:
        return float("-inf"), base, stress
    dd = abs(base["max_drawdown_pct"]) / 100
    return annualized / (1 + max(0.0, dd - 0.15)) ** 2 * (1 + 0.1 * (1 - base["hhi"])), base, stress
