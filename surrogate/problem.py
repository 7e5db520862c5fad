"""A surrogate-backed problem: the same interface as ``instances.Problem`` (``space``, ``evaluate``), on predictions.

``GemSearchEnv(problem=SurrogateProblem(...))`` and ``Objective(SurrogateProblem(...), budget)``
then run on cheap predicted evaluations (microseconds to milliseconds) instead of the
harness. Its results carry ``contract="surrogate"`` and the drivers record them with
``real=False``, so predicted and real evaluations are never confused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from env.records import TrialRecord
from harness.evaluate import EvalResult
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace
from surrogate.gp import GPSurrogate


@dataclass
class SurrogateProblem:
    """Predicted ``ensemble_score``: the GP mean where ``P(feasible) >= 0.5``, else ``-inf``."""

    surrogate: GPSurrogate
    real = False  # records made on it are predictions, not harness evaluations

    @property
    def space(self) -> SearchSpace:
        return self.surrogate.space

    @classmethod
    def from_records(cls, space: SearchSpace, records: list[TrialRecord], seed: int = 0) -> "SurrogateProblem":
        """Fit a surrogate on real trial records (their unit-encoded params and scores)."""
        x = np.array([space.encode(space.params(r.params)) for r in records])
        y = np.array([r.score for r in records], dtype=float)
        return cls(GPSurrogate(space, seed=seed).fit(x, y))

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        p = self.surrogate.predict(self.space.encode(params)[None, :])
        score = float(p.mean[0]) if p.feasible[0] >= 0.5 else float("-inf")
        return EvalResult(score=score, base={}, stress={}, contract="surrogate", first_day="", last_day="",
                          extra={"std": float(p.std[0]), "p_feasible": float(p.feasible[0])})
