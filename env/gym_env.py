"""``GemSearchEnv``: the search problem as a gymnasium MDP (registered as ``gemsearch/GemSearch-v0``).

* **Action** ``MultiDiscrete([d + 1, n_bins])``: pick an axis and a quantised new
  unit value for it (``bin / (n_bins - 1)``, snapped to what the axis can
  represent); axis ``d`` means "go back to the best configuration so far". The
  edited configuration is evaluated through the episode's :class:`Objective`
  (already-seen configurations are free cache hits, but still cost a step).
* **Observation** (``Box(-1, 1)``): the current configuration (unit vector), the
  best configuration and its squashed score, the last ``history`` evaluations
  (configuration, squashed score, rejected flag), per-axis coverage (distinct bins
  tried / ``n_bins``), and the remaining budget and step fractions.
* **Reward**: the improvement of the squashed best-so-far score, plus a small
  share of the squashed score itself; a rejection (``-inf``) is a bounded penalty
  and a wasted step (cache hit) a tiny one, so rewards are always finite.
* **Episode**: ends (terminated) when the real-evaluation budget is spent, and is
  truncated after ``4 x budget`` steps.

Backends: ``"real"`` (the harness on ``universe``), ``"task"`` (a cheap
:class:`~env.tasks.SyntheticTask`; each reset seed draws a new task unless
``task_seed`` fixes it), or any ``problem`` object with ``space`` and
``evaluate(params)`` (e.g. the GP surrogate's :class:`surrogate.problem.SurrogateProblem`).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from env.objective import Objective, Problem
from env.tasks import SyntheticTask
from strategy.space import SearchSpace

REJECTION_PENALTY = -0.2
REPEAT_PENALTY = -0.01
SCORE_SHARE = 0.05


def squash(score: float) -> float:
    """Signed-log score in ``[-1, 1]``; ``-inf`` (a rejection) maps to ``-1``."""
    if not math.isfinite(score):
        return -1.0
    return float(np.clip(math.copysign(math.log1p(abs(score)), score) / 3.0, -1.0, 1.0))


class GemSearchEnv(gym.Env):
    """Parameter search as an MDP over the joint space (see the module docstring)."""

    metadata = {"render_modes": []}

    def __init__(self, universe: str = "synthetic", budget: int = 100, *, backend: str = "real",
                 space: str = "joint", universe_seed: int = 0, task_seed: int | None = None,
                 problem: Any | None = None, objective_factory: Callable[[], Objective] | None = None,
                 n_bins: int = 11, history: int = 8) -> None:
        super().__init__()
        if backend not in ("real", "task") and problem is None and objective_factory is None:
            raise ValueError(f"backend must be 'real' or 'task' (or pass problem=...), got {backend!r}")
        self.budget = int(budget)
        self.n_bins = int(n_bins)
        self.history = int(history)
        self.backend = backend
        self.task_seed = task_seed
        self._problem = problem
        self._objective_factory = objective_factory
        if problem is None and objective_factory is None and backend == "real":
            self._problem = Problem.from_universe(universe, seed=universe_seed, space=space)
        self.space: SearchSpace = (
            self._problem.space if self._problem is not None
            else objective_factory().space if objective_factory is not None
            else SearchSpace(space)
        )
        d = len(self.space)
        self.d = d
        self.action_space = spaces.MultiDiscrete([d + 1, self.n_bins])
        size = 3 * d + 2 + self.history * (d + 2) + 2
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.objective: Objective | None = None

    # ------------------------------------------------------------------ episode
    def _new_objective(self, seed: int | None) -> Objective:
        if self._objective_factory is not None:
            return self._objective_factory()
        problem = self._problem
        if problem is None:  # task backend: a fresh task per reset unless task_seed pins it
            task_seed = self.task_seed if self.task_seed is not None else int(self.np_random.integers(2**31))
            problem = SyntheticTask(self.space, seed=task_seed)
        return Objective(problem, self.budget, searcher="env", seed=0 if seed is None else seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.objective = self._new_objective(seed)
        self.steps = 0
        self.tried = np.zeros((self.d, self.n_bins), dtype=bool)
        self.current = self.space.encode(self.objective.space.base)
        if not self.objective.seen(self.current) and self.objective.remaining > 0:
            self.objective(self.current)
        self._mark(self.current)
        return self._observation(), {}

    def _mark(self, unit: np.ndarray) -> None:
        bins = np.clip(np.round(unit * (self.n_bins - 1)).astype(int), 0, self.n_bins - 1)
        self.tried[np.arange(self.d), bins] = True

    def _best_unit(self) -> tuple[np.ndarray, float]:
        best = self.objective.best
        if best is None:
            return np.zeros(self.d), -1.0
        return self.space.encode(self.space.params(best.params)), squash(best.score)

    def _observation(self) -> np.ndarray:
        best_u, best_s = self._best_unit()
        recent = np.zeros((self.history, self.d + 2))
        for row, record in enumerate(self.objective.history[-self.history:][::-1]):
            recent[row, : self.d] = self.space.encode(self.space.params(record.params))
            recent[row, self.d] = squash(record.score)
            recent[row, self.d + 1] = 1.0 if record.rejected else 0.0
        obs = np.concatenate([
            self.current, best_u, [best_s, 1.0 if self.objective.best is not None else 0.0],
            recent.ravel(), self.tried.mean(axis=1) * 2 - 1,
            [self.objective.remaining / self.budget * 2 - 1, min(1.0, self.steps / (4 * self.budget)) * 2 - 1],
        ])
        return np.clip(obs, -1.0, 1.0).astype(np.float32)

    def step(self, action):
        axis, level = int(action[0]), int(action[1])
        before = self._best_unit()[1] if self.objective.best is not None else -1.0
        if axis == self.d:
            target = self._best_unit()[0] if self.objective.best is not None else self.current
        else:
            target = self.current.copy()
            target[axis] = level / (self.n_bins - 1)
        target = self.space.snap(target[None, :])[0]
        repeat = self.objective.seen(target)
        record = self.objective(target)
        self.current = target
        self._mark(target)
        self.steps += 1
        after = squash(self.objective.best.score)
        reward = max(0.0, after - before) + SCORE_SHARE * squash(record.score)
        if record.rejected:
            reward += REJECTION_PENALTY
        if repeat:
            reward += REPEAT_PENALTY
        terminated = self.objective.remaining == 0
        truncated = not terminated and self.steps >= 4 * self.budget
        info = {"score": record.score, "real_evaluations": self.objective.used, "repeat": repeat}
        return self._observation(), float(reward), terminated, truncated, info
