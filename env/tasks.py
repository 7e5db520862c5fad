"""Cheap stand-ins for the harness: analytic tasks over the real search space.

``SyntheticTask`` has the shape of the real problem — the same axes, a known
optimum, cross-block interactions a one-at-a-time sweep cannot resolve (bull x
bear ``r2_threshold`` in particular), and a hard-rejection region scored ``-inf``
— at microseconds per evaluation. Each ``seed`` draws another task of the same
family, which makes it (a) a fixture with a known answer for searcher tests and
(b) a task distribution for meta-training search policies without spending real
evaluations. It implements the :class:`~instances.problem.Problem` interface
(``space`` and ``evaluate(params)``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from harness.evaluate import EvalResult
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace


@dataclass
class SyntheticTask:
    """``score(u) = sum_i w_i * (1 - (u_i - c_i)^2) + interactions - penalty``; ``-inf`` in a rejected corner.

    The optimum ``optimum`` (unit vector) is drawn per seed; interactions couple
    pairs of axes so that the best value of one depends on the other
    (``-a * (u_i - u_j - delta)^2``), with bull/bear ``r2_threshold`` always coupled.
    Scores are in the same range as real ``ensemble_score`` values (about -1..3).
    """

    space: SearchSpace = field(default_factory=SearchSpace)
    seed: int = 0
    noise: float = 0.0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        d = len(self.space)
        self.center = rng.uniform(0.15, 0.85, d)
        self.weights = rng.gamma(1.0, 1.0, d)
        self.weights *= 2.0 / self.weights.sum()
        names = self.space.names
        pairs = [tuple(rng.choice(d, 2, replace=False)) for _ in range(max(1, d // 4))]
        if "bull.r2_threshold" in names and "bear.r2_threshold" in names:
            pairs.insert(0, (names.index("bull.r2_threshold"), names.index("bear.r2_threshold")))
        self.pairs = [(int(i), int(j), float(rng.uniform(-0.3, 0.3)), float(rng.uniform(0.5, 1.5))) for i, j in pairs]
        self.reject_axis = int(rng.integers(d))
        self.reject_side = bool(rng.integers(2))
        self._noise = np.random.default_rng(self.seed + 1)

    @cached_property
    def _optimum(self) -> tuple[np.ndarray, float]:
        return self._argmax()

    @property
    def optimum(self) -> np.ndarray:
        """``(d,)`` snapped unit point of the best score (computed on first use: ~0.2 s for 35 axes)."""
        return self._optimum[0]

    @property
    def best_score(self) -> float:
        """The score at :attr:`optimum`."""
        return self._optimum[1]

    @property
    def upper_bound(self) -> float:
        """A cheap analytic bound ``>= best_score``: every quadratic term at zero (``sum(weights) - 1``)."""
        return float(self.weights.sum() - 1.0)

    def score_unit(self, u: np.ndarray) -> np.ndarray:
        """Scores of ``(n, d)`` unit points (vectorised, noiseless)."""
        u = np.atleast_2d(u)
        score = (self.weights * (1.0 - (u - self.center) ** 2)).sum(axis=1)
        for i, j, delta, strength in self.pairs:
            score -= strength * (u[:, i] - u[:, j] - delta) ** 2
        edge = u[:, self.reject_axis]
        rejected = edge > 0.9 if self.reject_side else edge < 0.1
        return np.where(rejected, -np.inf, score - 1.0)

    def _argmax(self) -> tuple[np.ndarray, float]:
        """The optimum over the snapped space and its score: multi-start coordinate ascent over each axis's grid."""
        rng = np.random.default_rng(self.seed + 2)
        d = len(self.space)
        line = self.space.snap(np.repeat(np.linspace(0, 1, 41)[:, None], d, axis=1))
        grids = [np.unique(line[:, k]) for k in range(d)]
        best_u, best = None, -np.inf
        for u in self.space.snap(rng.random((16, d))):
            for _ in range(50):
                before = self.score_unit(u)[0]
                for k, grid in enumerate(grids):
                    trial = np.tile(u, (grid.size, 1))
                    trial[:, k] = grid
                    u = trial[int(np.argmax(self.score_unit(trial)))]
                if self.score_unit(u)[0] <= before + 1e-12:
                    break
            if self.score_unit(u)[0] > best:
                best_u, best = u.copy(), self.score_unit(u)[0]
        return best_u, float(best)

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        score = float(self.score_unit(self.space.encode(params))[0])
        if self.noise and np.isfinite(score):
            score += float(self._noise.normal(0, self.noise))
        return EvalResult(score=score, base={}, stress={}, contract=f"synthetic-task-{self.seed}",
                          first_day="", last_day="")
