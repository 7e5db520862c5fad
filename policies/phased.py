"""``phased`` and ``phased-bear``: the users' one-at-a-time sweeps, as they ran them.

``phased`` (the seed's plan, "Phased Sweeping" and "Loop 3"; grids from
``PHASED_GRIDS``, only for axes present in the space; axes never set stay at
``objective.space.base``):

0. **Defaults**: the incumbent, ``objective.space.base``, is evaluated first, so
   the best-so-far starts at the defaults' score (on instances where the
   defaults are feasible, the baseline is feasible from its first evaluation).
1. **HMM**: ``hmm_refit_interval x hard_switch_threshold x hmm_min_observations``
   (3 x 4 x 4 = 48 configurations, product in that axis order, first axis
   slowest), specialists at their defaults. The Phase 1 result is the best of
   the defaults and the 48.
2. **Specialists**: bull, then bear, then ranging: each one's
   ``top_n x r2_threshold x rebalance_cooldown`` grid (4 x 3 x 3 = 36 each),
   one specialist at a time with the other two at the Phase 1 result (not at
   the previous specialist's winner). Each specialist's winner is the best of
   the Phase 1 result and its 36.
3. **Combined**: the Phase 1 result with each specialist's swept values taken
   from its winner (one configuration). It is the new baseline, locked in as
   the seed does even when a single specialist's winner scored higher; a
   rejected (``-inf``) combination keeps the incumbent (the best so far).
4. **Verification**: the three specialist grids again, in the same order,
   each one varied off the new baseline (the other two at the baseline's values).

A phase's result is its starting configuration unless a configuration of the
phase scores strictly higher (first wins ties), so a phase in which everything
is ``-inf`` keeps the incumbent. Configurations already evaluated are free cache
hits (not counted).

Counts on the default base (space ``core``, ``specialists`` or ``joint``): the
plan holds 1 + 48 + 3 x 36 + 1 + 3 x 36 = 266 configurations; the seed's Phase 1
and 2 are the 48 + 108 = 156 grid configurations (Loop 3 evaluated 215
configurations in all). Real evaluations: defaults 1; Phase 1 47 (the default HMM
values 7 / 0.8 / 90 are a grid point); Phase 2 36 + 35 + 35 = 106 (the Phase 1
result has bear and ranging at their defaults, which are points of their grids;
bull's default ``rebalance_cooldown`` 4 is not on its grid); so 154 through
Phase 2; combined 1 (0 when at most one specialist's winner moved off the Phase
1 result); verification 35 per specialist whose baseline values are a point of
its grid (the baseline itself is free), 36 for bull when it kept its default,
and 0 for a specialist whose two others kept their Phase 1 values (its grid was
already swept). When all three winners move: 154 + 1 + 105 = 260 (every
synthetic task we ran); at most 261 (while the combination is not rejected; a
rejected one moves the baseline to the best so far). ``stats["phases"]`` holds
each phase's count.

When the budget ends first, the sweep stops there (its anytime curve is what is
compared). When budget is left, a **second pass** runs coordinate sweeps over
every axis of the space, one at a time in space order, each on its value list
(core axes: their phased grid plus ``k`` evenly spaced unit points; others:
``k`` evenly spaced points, all choices for categorical/bool axes), starting from
the best so far and locking the best after each axis. A cycle without
improvement doubles the resolution (``k = 5, 9, 17, 33, 65``); the search ends
when a cycle at the finest resolution evaluates nothing new.

``phased-bear`` is the trader-research single-parameter sweep of the bear
specialist alone: the default configuration first, then Tier 1
(``r2_threshold``, ``top_n``, ``rebalance_cooldown``) and Tier 2 (``fit_window``,
``atr_window``, ``momentum_cap``, ``r2_exponent``), one parameter at a time over
``BEAR_SWEEP`` keeping the best; repeated from the new best while a pass
improves, then the same second pass as ``phased``.

Seed: both are deterministic and ignore the run's ``seed`` (every seed gives the
same run; a benchmark needs one run per instance).

Resume: both are deterministic functions of the scores they see; replaying
them against a reopened objective answers stored configurations from the cache,
and a stored configuration's first replay counts as the evaluation it was (for
the duplicate streak and for "a cycle evaluated something new"), so a resumed
history equals the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from env.objective import Objective
from env.records import TrialRecord, params_key
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


def better(record: TrialRecord, than: TrialRecord | None) -> bool:
    """Whether ``record`` replaces ``than`` as the best: strictly higher (first wins ties; -inf never replaces)."""
    return than is None or record.score > than.score


class _Sweeper:
    """Evaluates configurations, keeps the best one so far and the configuration sweeps start from."""

    def __init__(self, objective: Objective) -> None:
        self.space = objective.space
        self.objective = objective
        self.guard = ReplayGuard(objective)
        self._stored = {params_key(r.params) for r in objective.history}
        self.best: TrialRecord | None = None
        """The best record evaluated (or replayed) by this sweep so far."""
        self.locked: dict[str, Any] = {}
        """Flat values the second pass and ``phased-bear`` sweep from (empty: the space's base)."""
        self.fresh = 0
        """Evaluations this sweep made, counting replays of stored trials as made (the same on resume)."""

    def evaluate(self, config: Mapping[str, Any]) -> tuple[TrialRecord, bool]:
        """Evaluate the flat ``config`` (axes not set stay at the base); returns the record and whether it was
        fresh: a new evaluation, or the first replay of a stored one (so the answer is the same on resume)."""
        if self.guard.done:
            raise _Stop
        key = params_key(self.space.values(self.objective.to_params(config)))
        fresh = key in self._stored or not self.objective.seen(config)
        self._stored.discard(key)
        record = self.guard(config)
        self.fresh += fresh
        if better(record, self.best):
            self.best = record
        return record, fresh

    def phase(self, configs: Iterable[Mapping[str, Any]], start: TrialRecord) -> TrialRecord:
        """Evaluate each of ``configs`` (changes) off ``start``'s configuration; returns the phase's result: the
        best of ``start`` and the configs, ``start`` kept unless strictly beaten (an all ``-inf`` phase keeps it)."""
        result = start
        for changes in configs:
            record = self.evaluate({**start.params, **changes})[0]
            if better(record, result):
                result = record
        return result

    def sweep(self, configs: Iterable[Mapping[str, Any]]) -> tuple[bool, bool]:
        """Evaluate each config off the locked one, then lock the best so far; returns (improved, any fresh)."""
        before = self.best
        any_fresh = False
        for changes in configs:
            any_fresh |= self.evaluate({**self.locked, **changes})[1]
        self.locked = dict(self.best.params)
        return self.best is not before, any_fresh

    def grid(self, names: Iterable[str]) -> list[dict[str, Any]]:
        """The product of the ``PHASED_GRIDS`` of those axes present in the space (first axis slowest)."""
        present = [n for n in names if n in self.space.names and PHASED_GRIDS.get(n)]
        return [dict(zip(present, values)) for values in itertools.product(*(PHASED_GRIDS[n] for n in present))]

    def coordinate_passes(self) -> None:
        """The second pass: one axis at a time over value lists, refining while nothing improves."""
        self.locked = dict(self.best.params)
        for k in RESOLUTIONS:
            improved = True
            while improved:
                improved, any_fresh = False, False
                for axis in self.space.axes:
                    better_, fresh = self.sweep({axis.name: v} for v in axis_values(axis, k))
                    improved |= better_
                    any_fresh |= fresh
                if not any_fresh:
                    break


def axis_values(axis: Axis, k: int) -> list[Any]:
    """An axis's second-pass values: all choices (categorical/bool) or ``k`` even unit points, plus its phased grid."""
    if axis.kind in ("categorical", "bool"):
        return [axis.decode(u) for u in np.linspace(0.0, 1.0, len(axis.choices) if axis.choices else 2)]
    values = list(axis.grid or ()) + [axis.decode(u) for u in np.linspace(0.0, 1.0, k)]
    return sorted(dict.fromkeys(values))


@register("phased")
class PhasedSweep(Searcher):
    """The seed's phased one-at-a-time sweep (see the module docstring for the exact order and counts).

    Deterministic: the ``seed`` is ignored (every seed gives the same run). ``stats["phases"]``: the
    evaluations each phase made (replays of stored trials counted as made, so the same on resume).
    """

    def search(self, objective: Objective, seed: int) -> None:
        sweeper = _Sweeper(objective)
        phases: dict[str, int] = {}
        self.stats["phases"] = phases
        try:
            self.plan(sweeper, phases)
            with _counting(phases, "second pass", sweeper):
                sweeper.coordinate_passes()
        except _Stop:
            pass

    def plan(self, sweeper: _Sweeper, phases: dict[str, int]) -> None:
        with _counting(phases, "defaults", sweeper):
            defaults = sweeper.evaluate({})[0]
        with _counting(phases, "phase 1 hmm", sweeper):
            phase1 = sweeper.phase(sweeper.grid(f"hmm.{f}" for f in HMM_CORE), defaults)
        winners = {}
        for block in SPECIALISTS:  # each off the Phase 1 result, the other two specialists at its values
            with _counting(phases, f"phase 2 {block}", sweeper):
                winners[block] = sweeper.phase(specialist_grid(sweeper, block), phase1)
        combined = dict(phase1.params)
        for block, winner in winners.items():
            combined.update({name: winner.params[name] for name in specialist_axes(sweeper.space, block)})
        with _counting(phases, "combined", sweeper):
            record = sweeper.evaluate(combined)[0]
        # the new baseline is the combination, locked in as the seed does; a rejected one keeps the incumbent
        baseline = record if record.score > -np.inf else sweeper.best
        for block in SPECIALISTS:  # each off the new baseline
            with _counting(phases, f"verification {block}", sweeper):
                sweeper.phase(specialist_grid(sweeper, block), baseline)


def specialist_axes(space: SearchSpace, block: str) -> list[str]:
    """The swept axes of one specialist present in the space (``top_n``, ``r2_threshold``, ``rebalance_cooldown``)."""
    return [name for name in (f"{block}.{f}" for f in SPECIALIST_CORE) if name in space.names]


def specialist_grid(sweeper: _Sweeper, block: str) -> list[dict[str, Any]]:
    return sweeper.grid(f"{block}.{f}" for f in SPECIALIST_CORE)


@contextlib.contextmanager
def _counting(phases: dict[str, int], name: str, sweeper: _Sweeper) -> Iterator[None]:
    """Record in ``phases[name]`` the evaluations made inside the block (also when the budget ends in it)."""
    before = sweeper.fresh
    try:
        yield
    finally:
        phases[name] = sweeper.fresh - before


@register("phased-bear")
class BearSweep(PhasedSweep):
    """trader-research's single-parameter sweep of the bear specialist (Tier 1, then Tier 2). Ignores ``seed``."""

    def plan(self, sweeper: _Sweeper, phases: dict[str, int]) -> None:
        with _counting(phases, "defaults", sweeper):
            sweeper.sweep([{}])  # the default configuration: the baseline every change must beat
        sweep = bear_sweep(sweeper.space)
        improved = True
        with _counting(phases, "bear sweep", sweeper):
            while improved:
                improved = False
                for name, values in sweep.items():
                    improved |= sweeper.sweep({name: v} for v in values)[0]


def bear_sweep(space: SearchSpace) -> dict[str, list]:
    """``BEAR_SWEEP`` restricted to the space's axes and their searched domains."""
    return {name: [v for v in values if space[name].contains(v)]
            for name, values in BEAR_SWEEP.items() if name in space.names}
