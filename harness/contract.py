"""Frozen constants of the evaluation contract.

These are market facts and the experiment's split, not strategy parameters.
Changing anything under ``harness/`` requires bumping :data:`CONTRACT_VERSION`
and recording the new source fingerprint in ``harness/CONTRACT.lock``
(``python -m harness --record``); the test suite enforces it.
"""

from __future__ import annotations

import datetime as _dt

CONTRACT_VERSION = "2.0.1"

FEE_RATE = 0.003
"""Fee per trade leg as a fraction of the traded amount (10 bps exchange + 20 bps slippage)."""

FEE_STRESS_MULTIPLIER = 1.5
"""The stress run pays ``FEE_RATE * FEE_STRESS_MULTIPLIER`` per leg; its Calmar drives the hard gate."""

INITIAL_CAPITAL = 10_000.0
"""Starting cash in quote currency (USDT)."""

MIN_TRADE_FRACTION = 0.001
"""Trades smaller than this fraction of portfolio value are skipped."""

POSITION_EPSILON = 1e-12
"""A position whose quantity falls to or below this after a sale is closed."""

SEARCH_START = _dt.date(2021, 1, 1)
"""First scored day of the default split's search window (inclusive; :data:`harness.split.DEFAULT_SPLIT`)."""

SEARCH_END = _dt.date(2025, 12, 31)
"""Last scored day of the default split's search window (inclusive); its holdout is every later day.
A problem instance brings its own :class:`harness.split.Split` (contract 2.0)."""

WARMUP_DAYS = 250
"""Calendar days of history before a window's first scored day that fits may use (the default split's)."""

REJECT_ANNUALIZED_BELOW = -0.50
"""Hard rejection: base-run annualised return below -50%."""

DRAWDOWN_FREE_ZONE = 0.15
"""Drawdown (fraction) below which the score is not dampened."""

DIVERSIFICATION_WEIGHT = 0.1
"""Score bonus ``1 + DIVERSIFICATION_WEIGHT * (1 - HHI)``: up to +10%."""

TRADING_DAYS_PER_YEAR = 252
"""Annualisation factor for Sharpe and Sortino (the original harness's choice)."""

DAYS_PER_YEAR = 365.0
"""Calendar days per year for annualised return (crypto trades every day)."""

AUDIT_DAYS = 2
"""Days per evaluation at which the causality audit recomputes signals from truncated data."""
