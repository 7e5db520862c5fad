"""``Problem``: what a searcher optimises on one problem instance (search-window candles, strategy, space, split).

Searchers never see the candles past the search window: a ``Problem`` keeps only data sealed at its split's
search end (:meth:`data.candles.Candles.sealed`); the holdout is evaluated by the run drivers alone
(:func:`instances.pool.evaluate_on_holdout`). ``env.Objective`` wraps a ``Problem`` with the real-evaluation budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from data import Candles, DataError
from harness import DEFAULT_SPLIT, EvalResult, Split, evaluate
from instances.instance import Instance
from strategy import STRATEGIES, Strategy
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace


@dataclass
class Problem:
    """What is optimised: the search-window candles, the strategy, the search space, the split.

    ``candles`` is sealed at the split's search end on construction
    (:meth:`~data.candles.Candles.sealed`: no later day, no later listing, no metadata that
    regenerates the future): nothing reachable from a ``Problem`` holds holdout data.
    ``instance`` names the problem instance (records and reports).
    """

    candles: Candles
    space: SearchSpace = field(default_factory=SearchSpace)
    strategy: Strategy = field(default_factory=lambda: STRATEGIES["ensemble"])
    split: Split = DEFAULT_SPLIT
    instance: str = ""

    def __post_init__(self) -> None:
        self.candles = self.candles.sealed(self.split.search_end, name=self.instance or None)

    @classmethod
    def from_instance(cls, instance: Instance, space: SearchSpace | None = None) -> "Problem":
        """The instance's problem (``space`` overrides its named space, e.g. with another base)."""
        return cls(instance.search_candles(), space or SearchSpace(instance.space), STRATEGIES[instance.strategy],
                   instance.split, instance.id)

    @classmethod
    def from_universe(cls, universe: str = "synthetic", seed: int = 0, space: str = "joint") -> "Problem":
        """The default instance on ``universe`` (the seed's protocol: search 2021-2025)."""
        return cls.from_instance(Instance.default(universe, seed=seed, space=space))

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        """One real harness evaluation (base + stress) on the search window.

        ``DataError`` when the candles are too extreme for the frozen harness to
        score (it annualises with Python floats, which overflow on a price path
        that gains e.g. 1e10-fold in days: a bad tick, not a market).
        """
        try:
            return evaluate(params, self.candles, self.strategy.fit_fn, self.strategy.portfolio_fn, split=self.split)
        except OverflowError as exc:
            raise DataError(f"{self.candles.name}: the harness cannot score these candles: annualising their "
                            f"returns overflows ({exc}); check the data for bad ticks") from exc
