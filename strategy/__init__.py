"""The modifiable interior: GEM specialists, regime detector, meta-allocator, search space.

``STRATEGIES`` names the strategies a driver can inject into the harness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

from harness.plan import FitFn, PortfolioFn
from strategy.ensemble import PRESETS, EnsembleParams, ensemble_fit, ensemble_portfolio
from strategy.gem import gem_fit, gem_portfolio
from strategy.params import GemParams, ParamError


@dataclass(frozen=True)
class Strategy:
    """A named strategy: how to build its params from a mapping, and its two harness callables."""

    name: str
    params_from_dict: Callable[[Mapping[str, Any]], Any]
    fit_fn: FitFn
    portfolio_fn: PortfolioFn


STRATEGIES: dict[str, Strategy] = {
    "bear": Strategy("bear", GemParams.from_dict, gem_fit, gem_portfolio),
    "ensemble": Strategy("ensemble", EnsembleParams.from_dict, ensemble_fit, ensemble_portfolio),
}
"""``bear``: one GEM specialist (the users' 4-token experiment); ``ensemble``: the full stack."""

__all__ = ["PRESETS", "STRATEGIES", "EnsembleParams", "GemParams", "ParamError", "Strategy",
           "ensemble_fit", "ensemble_portfolio", "gem_fit", "gem_portfolio"]
