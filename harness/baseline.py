"""The bluechip benchmark: buy-and-hold BTC+ETH, scored by the same function.

Equal weights are bought on the first scored day at the close (fees paid) and
never traded again; a token that stops trading is sold at its last close like
any held position.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from data.candles import Candles
from harness.plan import Plan

BLUECHIPS: tuple[str, ...] = ("BTCUSDT", "ETHUSDT")


def buy_and_hold_strategy(tokens: Sequence[str] = BLUECHIPS):
    """``(fit_fn, portfolio_fn)`` holding ``tokens`` in equal weight from day 0, never rebalancing."""
    tokens = tuple(tokens)

    def fit_fn(candles: Candles, params: Any) -> dict[str, np.ndarray]:
        columns = [candles.column(t) for t in tokens]  # unknown token -> clear UnknownTokenError
        chosen = np.zeros(candles.shape)
        chosen[:, columns] = 1.0 / len(columns)
        return {"weights": chosen}

    def portfolio_fn(signals: dict[str, np.ndarray], params: Any) -> Plan:
        weights = signals["weights"]
        days = weights.shape[0]
        return Plan(
            weights=weights,
            momentum=np.full(weights.shape, np.nan),  # nothing ever triggers a rebalance
            priority=weights.copy(),
            cooldown=np.zeros(days, dtype=np.int64),
        )

    return fit_fn, portfolio_fn
