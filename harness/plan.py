"""What a strategy hands the harness: bulk ``Signals`` and a trading ``Plan``.

The strategy is injected as two callables (the original harness's injection
points, made bulk for speed):

* ``fit_fn(candles, params) -> Signals``: a mapping of name to array whose first
  axis is days (``days x tokens`` or ``days x k``). Row ``t`` may depend on data
  through day ``t`` only; the harness audits this.
* ``portfolio_fn(signals, params) -> Plan``: row-wise; row ``t`` of the plan may
  depend on row ``t`` of the signals (and earlier rows) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

Signals = Mapping[str, np.ndarray]
FitFn = Callable[[Any, Any], Signals]
PortfolioFn = Callable[[Signals, Any], "Plan"]


class PlanError(ValueError):
    """A strategy returned signals or a plan that break the harness contract."""


@dataclass(frozen=True)
class Plan:
    """Per-day trading intentions, all aligned to the candles' days and tokens.

    Attributes:
        weights: ``(days, tokens)`` target weights (fractions of portfolio value,
            ``>= 0``, row sums ``<= 1``; the rest is cash) applied if the harness
            rebalances that day. Weights on tokens without a candle that day are
            ignored (the token is not bought).
        momentum: ``(days, tokens)`` raw momentum (before portfolio filters) that
            triggers a rebalance: an unheld token with momentum > 0 or a held one
            with momentum < 0. NaN means "no fit" and never triggers.
        priority: ``(days, tokens)`` buy order on a rebalance day, highest first
            (ties broken by column order). Matters when cash runs short.
        cooldown: ``(days,)`` int days; a rebalance on day ``t`` is blocked while
            ``cooldown[t] > 0 and t - last_rebalance < cooldown[t]``.
    """

    weights: np.ndarray
    momentum: np.ndarray
    priority: np.ndarray
    cooldown: np.ndarray

    def rows(self, start: int, stop: int | None = None) -> "Plan":
        """The plan restricted to days ``start:stop``."""
        window = slice(start, stop)
        return Plan(self.weights[window], self.momentum[window], self.priority[window], self.cooldown[window])


def check_signals(signals: Signals, n_days: int) -> None:
    """Raise :class:`PlanError` unless every signal array has ``n_days`` rows."""
    if not isinstance(signals, Mapping) or not signals:
        raise PlanError(f"fit_fn must return a non-empty mapping of arrays, got {type(signals).__name__}")
    for name, array in signals.items():
        shape = np.shape(array)
        if not shape or shape[0] != n_days:
            raise PlanError(f"signal {name!r} has shape {shape}; its first axis must be the {n_days} days")


def check_plan(plan: Plan, shape: tuple[int, int]) -> None:
    """Raise :class:`PlanError` unless ``plan`` fits ``shape = (days, tokens)`` and is well-formed."""
    if not isinstance(plan, Plan):
        raise PlanError(f"portfolio_fn must return a harness.Plan, got {type(plan).__name__}")
    for name in ("weights", "momentum", "priority"):
        if np.shape(getattr(plan, name)) != shape:
            raise PlanError(f"plan.{name} has shape {np.shape(getattr(plan, name))}, expected {shape} (days x tokens)")
    if np.shape(plan.cooldown) != (shape[0],):
        raise PlanError(f"plan.cooldown has shape {np.shape(plan.cooldown)}, expected ({shape[0]},)")
    weights = plan.weights
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise PlanError("plan.weights must be finite and non-negative")
    if np.any(weights.sum(axis=1) > 1.0 + 1e-9):
        raise PlanError("plan.weights rows must sum to at most 1 (the rest is cash)")
    if np.any(np.isnan(plan.priority) & (weights > 0)):
        raise PlanError("plan.priority must be defined wherever a weight is positive")
    cooldown = np.asarray(plan.cooldown)
    if not np.issubdtype(cooldown.dtype, np.integer) or np.any(cooldown < 0):
        raise PlanError("plan.cooldown must be non-negative integers (days)")
