"""``Objective``: the one real-evaluation budget every searcher competes on.

A :class:`Problem` fixes what is optimised (universe, window, strategy, search
space); an :class:`Objective` wraps it with a budget of real harness
evaluations, a duplicate cache (a configuration already evaluated is answered
from the cache and costs nothing), and a :class:`~env.store.TrialStore` that
persists every real evaluation. Re-opening the same store resumes: stored trials
count as spent and fill the cache, so a deterministic searcher replaying its
proposals continues exactly where it stopped. A searcher whose state depends on
*when* each stored trial came back (its observation holds the recent evaluations
and the budget left: ``ppo-edit``) calls :meth:`Objective.replay` first and is
handed the stored trials one by one as it proposes them again.

Searchers never see the candles past the search window: ``Problem`` keeps only
data sealed at its split's search end (:meth:`data.candles.Candles.sealed`), and the
holdout is evaluated by the run drivers alone.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import optuna

from env import faults
from env.records import TrialRecord, params_key
from env.store import TrialStore
from instances.problem import Problem
from strategy.ensemble import EnsembleParams


class BudgetExhausted(RuntimeError):
    """The run's real-evaluation budget is spent."""


Candidate = EnsembleParams | Mapping[str, Any] | Sequence[float] | np.ndarray


class Objective:
    """A budgeted, cached, persisted view of a :class:`Problem`.

    Call it with a candidate (``EnsembleParams``, flat ``{"block.field": value}``,
    or a unit vector of the space) to get a :class:`TrialRecord`.
    """

    def __init__(self, problem: Problem, budget: int, *, searcher: str = "manual", seed: int = 0,
                 store: TrialStore | None = None, on_record: Callable[[TrialRecord], None] | None = None) -> None:
        if budget < 1:
            raise ValueError(f"budget must be at least 1 real evaluation, got {budget}")
        self.problem = problem
        self.space = problem.space
        self.budget = int(budget)
        self.searcher = searcher
        self.seed = int(seed)
        self.store = store
        self.history: list[TrialRecord] = store.records if store is not None else []
        if len(self.history) > self.budget:
            raise BudgetExhausted(f"the store already holds {len(self.history)} evaluations, more than the budget {budget}")
        self._cache = {params_key(r.params): r for r in self.history}
        self._replaying: list[TrialRecord] = []
        """Stored records not yet handed back by :meth:`replay`, in their stored order."""
        self.cache_hits = 0
        self.on_record = on_record
        """Called with each new real record (progress bars, live best-so-far)."""

    # ------------------------------------------------------------------ state
    @property
    def used(self) -> int:
        return len(self.history)

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    @property
    def best(self) -> TrialRecord | None:
        """The highest-scoring record so far (first one on ties); None before any evaluation."""
        return max(self.history, key=lambda r: r.score, default=None)

    def best_so_far(self) -> np.ndarray:
        """``(used,)`` running maximum of the score (``-inf`` until a finite score appears)."""
        return np.maximum.accumulate(np.array([r.score for r in self.history], dtype=float)) if self.history else np.array([])

    def replay(self) -> None:
        """Hand the stored evaluations back in their stored order, each when the searcher proposes it again.

        After ``replay()`` the history starts empty; a proposal of the next stored configuration appends its
        stored record (no evaluation, no cost, nothing written), so a deterministic searcher whose state depends
        on the order of what it was told (``used``, ``remaining``, ``history``, ``best`` as it went) retraces its
        interrupted run exactly, then continues with real evaluations. A proposal that is not the next stored
        one (a run stored by other code, or on another CPU family) ends the replay with a warning: the rest of
        the stored history is restored at once and the run continues from it, as under the plain resume rule.
        Nothing to do on a fresh run.
        """
        if self.history:
            self._replaying, self.history, self._cache = list(self.history), [], {}

    @property
    def replaying(self) -> bool:
        """Whether stored records are still waiting to be handed back (:meth:`replay`)."""
        return bool(self._replaying)

    def end_replay(self, reason: str = "") -> None:
        """Restore every stored record not yet handed back (``reason``: warn why the replay ended early)."""
        if not self._replaying:
            return
        if reason:
            warnings.warn(f"{self.searcher} seed {self.seed}: replay of the stored run ended at evaluation "
                          f"{self.used} of {self.used + len(self._replaying)}: {reason}; continuing from the "
                          "stored history", stacklevel=2)
        for record in self._replaying:
            self._admit(record)
        self._replaying = []

    def _admit(self, record: TrialRecord) -> TrialRecord:
        """Append ``record`` to the history and the duplicate cache."""
        self.history.append(record)
        self._cache[params_key(record.params)] = record
        return record

    def refresh(self) -> None:
        """Re-read the store: in a shared run, the other workers' evaluations join the history and the cache."""
        self._replaying = []
        if self.store is not None:
            self.history = self.store.refresh()
            self._cache = {params_key(r.params): r for r in self.history}

    def seen(self, candidate: Candidate) -> bool:
        """Whether ``candidate`` was already evaluated (a free cache hit)."""
        if isinstance(candidate, (EnsembleParams, Mapping)):
            return params_key(self.space.values(self.to_params(candidate))) in self._cache
        return params_key(self.space.decode_values(np.asarray(candidate, dtype=float))) in self._cache

    # ------------------------------------------------------------------ evaluation
    def to_params(self, candidate: Candidate) -> EnsembleParams:
        if isinstance(candidate, EnsembleParams):
            return candidate
        if isinstance(candidate, Mapping):
            return self.space.params(candidate)
        return self.space.decode(np.asarray(candidate, dtype=float))

    def __call__(self, candidate: Candidate, trial: optuna.trial.Trial | None = None) -> TrialRecord:
        params = self.to_params(candidate)
        values = self.space.values(params)
        key = params_key(values)
        if self._replaying and key not in self._cache:
            if params_key(self._replaying[0].params) == key:
                return self._admit(self._replaying.pop(0))
            self.end_replay("the searcher proposed another configuration than the stored run did")
        if key in self._cache:
            self.cache_hits += 1
            record = self._cache[key]
            if trial is not None and self.store is not None:
                self.store.tell_duplicate(trial, record)
            return record
        if self.used >= self.budget:
            raise BudgetExhausted(f"{self.searcher} seed {self.seed}: budget of {self.budget} real evaluations spent")
        started = time.perf_counter()
        result = self.problem.evaluate(params)
        record = TrialRecord(
            eval_index=self.used, searcher=self.searcher, seed=self.seed, params=values, score=result.score,
            base=result.base, stress=result.stress, wall_time_s=time.perf_counter() - started,
            contract=result.contract, real=bool(getattr(self.problem, "real", True)),
        )
        if math.isnan(record.score):  # the harness raises first; belt and braces for custom problems
            raise RuntimeError("NaN score: a bug, never a result")
        faults.point("evaluated")
        if self.store is not None:
            self.store.append(record, trial)
        self._admit(record)
        if self.on_record is not None:
            self.on_record(record)
        return record
