"""``phased`` and ``phased-bear``: the users' one-at-a-time sweeps, as they ran them.

``phased`` (the seed's plan; every sweep evaluates ``{**locked, **grid point}``,
axes not set stay at ``objective.space.base``; grids from ``PHASED_GRIDS``,
only for axes present in the space):

1. **HMM**: ``hmm_refit_interval x hard_switch_threshold x hmm_min_observations``
   (3 x 4 x 4 = 48 configurations, product in that axis order), specialists at
   their defaults.
2. **Specialists**: bull, then bear, then ranging: each one's
   ``top_n x r2_threshold x rebalance_cooldown`` grid (36 / 36 / 48), the other
   blocks at the best configuration so far.
3. **Verification**: the same three specialist grids again, in the same order,
   now off the new baseline (every other specialist at its final winner rather
   than the defaults it was first swept against). Configurations already
   evaluated are free cache hits.

"Locked" is always the best configuration evaluated so far (strictly higher
score replaces, first wins ties): after each sweep that is the better of the
sweep's winner and the configuration the sweep started from.

When the budget ends first, the sweep stops there (its anytime curve is what is
compared). When budget is left, a **second pass** runs coordinate sweeps over
every axis of the space, one at a time in space order, each on its value list
(core axes: their phased grid plus ``k`` evenly spaced unit points; others:
``k`` evenly spaced points, all choices for categorical/bool axes), locking the
best after each axis. A cycle without improvement doubles the resolution
(``k = 5, 9, 17, 33, 65``); the search ends when a cycle at the finest
resolution evaluates nothing new.

``phased-bear`` is the trader-research single-parameter sweep of the bear
specialist alone: the default configuration first, then Tier 1
(``r2_threshold``, ``top_n``, ``rebalance_cooldown``) and Tier 2 (``fit_window``,
``atr_window``, ``momentum_cap``, ``r2_exponent``), one parameter at a time over
``BEAR_SWEEP`` keeping the best; repeated from the new best while a pass
improves, then the same second pass as ``phased``.

Resume: both are deterministic functions of the scores they see; replaying
them against a reopened objective answers stored configurations from the cache.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Mapping

import numpy as np

from env.objective import Objective
from env.records import TrialRecord
from policies.base import ReplayGuard, Searcher, register
from strategy.space import HMM_CORE, PHASED_GRIDS, SPECIALIST_CORE, Axis, SearchSpace

SPECIALISTS = ("bull", "bear", "ranging")

BEAR_SWEEP: dict[str, tuple] = {
    # Tier 1: the knobs the traders tuned first, on the value lists they tried around the defaults
    "bear.r2_threshold": (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    "bear.top_n": (1, 2, 3, 5, 8, 10),
    "bear.rebalance_cooldown": (3, 5, 7, 10, 14, 21),
    # Tier 2: the fit and sizing knobs (fit_window/atr_window: every searched choice)
    "bear.fit_window": (10, 20, 30, 45, 60, 90),
    "bear.atr_window": (7, 10, 15, 21, 30),
    "bear.momentum_cap": (0.05, 0.1, 0.14, 0.2, 0.3, 0.5, 1.0),
    "bear.r2_exponent": (0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
}
"""``phased-bear``'s sweep order and values (each filtered to the space's domain)."""

RESOLUTIONS = (5, 9, 17, 33, 65)
"""Points per int/float axis in the second pass's successive cycles."""


class _Stop(Exception):
    """The guard is done (budget spent or converged)."""


class _Sweeper:
    """Evaluates configurations relative to the best one so far and keeps that best."""

    def __init__(self, objective: Objective) -> None:
        self.space = objective.space
        self.guard = ReplayGuard(objective)
        self.best: TrialRecord | None = None
        self.locked: dict[str, Any] = {}
        """Flat values of the best configuration so far (empty: the space's base)."""

    def evaluate(self, changes: Mapping[str, Any]) -> tuple[TrialRecord, bool]:
        """Evaluate ``{**locked, **changes}``; returns the record and whether it was new to this objective."""
        if self.guard.done:
            raise _Stop
        candidate = {**self.locked, **changes}
        new = not self.guard.objective.seen(candidate)
        record = self.guard(candidate)
        if self.best is None or record.score > self.best.score:
            self.best = record
        return record, new

    def sweep(self, configs: Iterable[Mapping[str, Any]]) -> tuple[bool, bool]:
        """Evaluate each config off the locked one, then lock the best; returns (improved, any new evaluation)."""
        before = self.best.score if self.best is not None else -np.inf
        any_new = False
        for changes in configs:
            any_new |= self.evaluate(changes)[1]
        self.locked = dict(self.best.params)
        return self.best.score > before, any_new

    def grid(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """The product of the ``PHASED_GRIDS`` of those axes present in the space (first axis slowest)."""
        present = [n for n in names if n in self.space.names and PHASED_GRIDS.get(n)]
        return [dict(zip(present, values)) for values in itertools.product(*(PHASED_GRIDS[n] for n in present))]

    def coordinate_passes(self) -> None:
        """The second pass: one axis at a time over value lists, refining while nothing improves."""
        for k in RESOLUTIONS:
            improved = True
            while improved:
                improved, any_new = False, False
                for axis in self.space.axes:
                    better, new = self.sweep({axis.name: v} for v in axis_values(axis, k))
                    improved |= better
                    any_new |= new
                if not any_new:
                    break


def axis_values(axis: Axis, k: int) -> list[Any]:
    """An axis's second-pass values: all choices (categorical/bool) or ``k`` even unit points, plus its phased grid."""
    if axis.kind in ("categorical", "bool"):
        return [axis.decode(u) for u in np.linspace(0.0, 1.0, len(axis.choices) if axis.choices else 2)]
    values = list(axis.grid or ()) + [axis.decode(u) for u in np.linspace(0.0, 1.0, k)]
    return sorted(dict.fromkeys(values))


@register("phased")
class PhasedSweep(Searcher):
    """The seed's phased one-at-a-time sweep (see the module docstring for the exact order)."""

    def search(self, objective: Objective, seed: int) -> None:
        sweeper = _Sweeper(objective)
        try:
            self.plan(sweeper)
            sweeper.coordinate_passes()
        except _Stop:
            pass

    def plan(self, sweeper: _Sweeper) -> None:
        hmm = [f"hmm.{f}" for f in HMM_CORE]
        sweeper.sweep(sweeper.grid(hmm))
        for _ in ("specialists", "verification"):
            for block in SPECIALISTS:
                sweeper.sweep(sweeper.grid(f"{block}.{f}" for f in SPECIALIST_CORE))


@register("phased-bear")
class BearSweep(PhasedSweep):
    """trader-research's single-parameter sweep of the bear specialist (Tier 1, then Tier 2)."""

    def plan(self, sweeper: _Sweeper) -> None:
        sweeper.sweep([{}])  # the default configuration: the baseline every change must beat
        sweep = bear_sweep(sweeper.space)
        improved = True
        while improved:
            improved = False
            for name, values in sweep.items():
                improved |= sweeper.sweep({name: v} for v in values)[0]


def bear_sweep(space: SearchSpace) -> dict[str, list]:
    """``BEAR_SWEEP`` restricted to the space's axes and their searched domains."""
    return {name: [v for v in values if space[name].contains(v)]
            for name, values in BEAR_SWEEP.items() if name in space.names}
