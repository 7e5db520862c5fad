"""``GemSearchEnv``: the search problem as a gymnasium MDP (registered as ``gemsearch/GemSearch-v0``).

* **Action** ``MultiDiscrete([d + 1, n_bins])``: pick an axis and a quantised new
  unit value for it (``bin / (n_bins - 1)``, snapped to what the axis can
  represent); axis ``d`` means "go back to the best configuration so far" (and, with
  ``explore``, ``d + 1`` "a fresh space-filling point"). The
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
* **Edit design options** (``learn.train_ppo --design edit``, the ``ppo-edit`` searcher): ``planning``
  (free surrogate queries between real evaluations), ``reward="improvement"`` (decrease of the
  normalised regret, :func:`regret_scale`), ``permute_axes`` (per-episode axis permutation), ``explore`` (a
  fresh-point action); see the class.

Backends: ``"real"`` (the harness on ``universe``), ``"task"`` (a cheap
:class:`~env.tasks.SyntheticTask`; each reset seed draws a new task unless
``task_seed`` fixes it), or any ``problem`` object with ``space`` and
``evaluate(params)`` (e.g. the GP surrogate's :class:`surrogate.problem.SurrogateProblem`).

:class:`CandidateSearchEnv` (below) is the MetaBO-style variant the ``ppo`` searcher is
trained and deployed in: the action picks one of a few GP-proposed candidates and the
observation holds their GP-posterior features (see its docstring).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from typing import Any, Callable

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from scipy.linalg import cho_solve, solve_triangular
from scipy.stats import qmc
from scipy.special import ndtr

from env.objective import Objective
from instances.problem import Problem
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


def _from_factory(factory: Callable[[], Objective], seed: int | None) -> Objective:
    """The factory's next objective; a factory drawing episodes from an ``rng`` attribute (an
    ``EpisodeSampler`` of emulated instances) is reseeded by a seeded reset, so the episode follows the seed."""
    if seed is not None and isinstance(getattr(factory, "rng", None), np.random.Generator):
        factory.rng = np.random.default_rng([int(seed), 0xE9])
    return factory()


class GemSearchEnv(gym.Env):
    """Parameter search as an MDP over the joint space (see the module docstring).

    Options of the edit design (``learn.train_ppo --design edit``; defaults keep the seed's env):

    * ``planning = P > 0``: the seed's planning step. The action gains a third component,
      ``0`` = *ask the surrogate* (free: the edited configuration becomes the current one and a
      :class:`FeatureGP` fitted on the real history predicts it; no real evaluation) or ``1`` =
      *evaluate for real*. At most ``P`` surrogate queries per real evaluation: the step after the
      ``P``-th query is real whatever the action says. The observation gains 4 numbers: the
      surrogate's standardised mean above the best and its std at the current configuration,
      its P(feasible), and the queries left.
    * ``reward="improvement"``: on problems with a known scale (:func:`regret_scale`: the analytic
      bound of a :class:`~env.tasks.SyntheticTask`, the best of 1,024 random points of an emulated instance), the
      decrease of the normalised simple regret at each real evaluation (shaped on the best so
      far, as :class:`CandidateSearchEnv`), minus ``REPEAT_PENALTY`` for a cache hit;
      queries earn ``-query_cost`` (default 0: free). ``info["regret"]`` reports the regret. ``"legacy"``: the
      seed's reward.
    * ``permute_axes``: per episode, the policy's axis ``i`` is the space's axis ``perm[i]`` for a
      random permutation (observation and action alike): a randomisation against memorising axes.
    * ``explore``: the axis component gains the value ``d + 1``, *a fresh point*: the current configuration
      becomes the next point of the episode's scrambled Sobol sequence (seeded by the reset; the value
      component is ignored), evaluated or, with planning, asked of the surrogate like any edit. Without it a
      walk that starts from rejected defaults (12 of 20 real-v1 instances) can only leave the rejected region
      one axis at a time; with it the policy chooses between global and local moves.
    """

    metadata = {"render_modes": []}

    def __init__(self, universe: str = "synthetic", budget: int = 100, *, backend: str = "real",
                 space: str = "joint", universe_seed: int = 0, task_seed: int | None = None,
                 problem: Any | None = None, objective_factory: Callable[[], Objective] | None = None,
                 n_bins: int = 11, history: int = 8, planning: int = 0, reward: str = "legacy",
                 permute_axes: bool = False, explore: bool = False, query_cost: float = 0.0) -> None:
        super().__init__()
        if backend not in ("real", "task") and problem is None and objective_factory is None:
            raise ValueError(f"backend must be 'real' or 'task' (or pass problem=...), got {backend!r}")
        if reward not in ("legacy", "improvement"):
            raise ValueError(f"reward must be 'legacy' or 'improvement', got {reward!r}")
        self.budget = int(budget)
        self.n_bins = int(n_bins)
        self.history = int(history)
        self.planning = int(planning)
        self.reward = reward
        self.permute_axes = bool(permute_axes)
        self.explore = bool(explore)
        self.query_cost = float(query_cost)
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
        self.action_space = spaces.MultiDiscrete([d + 1 + self.explore, self.n_bins] + ([2] if self.planning else []))
        size = 3 * d + 2 + self.history * (d + 2) + 2 + (4 if self.planning else 0)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.objective: Objective | None = None
        self.perm = np.arange(d)
        self.gp_predictions = 0
        """Surrogate predictions made so far (the free planning queries, and one after each real evaluation)."""

    # ------------------------------------------------------------------ episode
    def _new_objective(self, seed: int | None) -> Objective:
        if self._objective_factory is not None:
            return _from_factory(self._objective_factory, seed)
        problem = self._problem
        if problem is None:  # task backend: a fresh task per reset unless task_seed pins it
            task_seed = self.task_seed if self.task_seed is not None else int(self.np_random.integers(2**31))
            problem = SyntheticTask(self.space, seed=task_seed)
        return Objective(problem, self.budget, searcher="env", seed=0 if seed is None else seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.objective = self._new_objective(seed)
        self.steps = 0
        self.perm = self.np_random.permutation(self.d) if self.permute_axes else np.arange(self.d)
        self.tried = np.zeros((self.d, self.n_bins), dtype=bool)
        self._fresh = qmc.Sobol(self.d, seed=self.np_random) if self.explore else None
        self.current = self.space.encode(self.objective.space.base)
        if not self.objective.seen(self.current) and self.objective.remaining > 0:
            self.objective(self.current)
        self._mark(self.current)
        self.bound = regret_scale(self.objective.problem, self.space) if self.reward == "improvement" else None
        self._last_regret = self._regret() if self.bound is not None else None
        if self.planning:
            self.queries_left = self.planning
            self._fit_surrogate()
        return self._observation(), {}

    def _mark(self, unit: np.ndarray) -> None:
        bins = np.clip(np.round(unit * (self.n_bins - 1)).astype(int), 0, self.n_bins - 1)
        self.tried[np.arange(self.d), bins] = True

    def _best_unit(self) -> tuple[np.ndarray, float]:
        """The best configuration so far (the first on ties, as ``objective.best``) and its squashed score."""
        self._sync()
        if not len(self._y):
            return np.zeros(self.d), -1.0
        best = int(np.argmax(self._y))
        return self._x[best], squash(float(self._y[best]))

    def _regret(self) -> float:
        self._sync()
        return normalised_regret(float(self._y.max()) if len(self._y) else -math.inf, self.bound)

    def _sync(self) -> None:
        """Encode the history's records added since the last call (``self._x``, ``self._y``)."""
        if self.objective is not getattr(self, "_synced", None):
            self._x, self._y, self._synced = np.zeros((0, self.d)), np.zeros(0), self.objective
        new = self.objective.history[len(self._y):]
        if new:
            self._x = np.vstack([self._x, [self.space.encode_values(r.params) for r in new]])
            self._y = np.append(self._y, [r.score for r in new])

    # ------------------------------------------------------------------ planning: the free surrogate
    def _fit_surrogate(self) -> None:
        """Refit the planning GPs (scores, feasibility) on the real history; then predict the current configuration."""
        self._sync()
        y = self._y
        finite = np.isfinite(y)
        self._best_score = float(y[finite].max()) if finite.any() else 0.0
        lengths = tuple(scale * math.sqrt(self.d) for scale in MATERN_LENGTHS)
        dist = distances(self._x, self._x)
        self._gp = FeatureGP(dist[np.ix_(finite, finite)], y[finite], lengths) if finite.any() else None
        self._finite = finite
        self._feasible_gp = (FeatureGP(dist, finite.astype(float), (self._gp.length,))
                             if self._gp is not None and not finite.all() else None)
        self._predict(self.current)

    def _predict(self, unit: np.ndarray) -> None:
        """The surrogate's view of ``unit``: standardised mean above the best, std, P(feasible)."""
        self.gp_predictions += 1
        d_q = distances(unit[None, :], self._x)
        if self._gp is None:
            self.prediction = (0.0, 1.0, float(self._finite.mean()) if self._finite.size else 0.5)
            return
        mean, std = self._gp.predict(d_q[:, self._finite])
        p = float(np.clip(self._feasible_gp.predict(d_q)[0][0], 0, 1)) if self._feasible_gp is not None else 1.0
        self.prediction = (float(mean[0] - self._best_score) / self._gp.sd, float(std[0]) / self._gp.sd, p)

    def _observation(self) -> np.ndarray:
        view = self.perm  # the policy's axis i is the space's axis perm[i]
        best_u, best_s = self._best_unit()
        recent = np.zeros((self.history, self.d + 2))
        for row, (unit, score) in enumerate(zip(self._x[-self.history:][::-1], self._y[-self.history:][::-1])):
            recent[row, : self.d] = unit[view]
            recent[row, self.d] = squash(score)
            recent[row, self.d + 1] = 0.0 if math.isfinite(score) else 1.0
        budget = self.objective.budget
        parts = [
            self.current[view], best_u[view], [best_s, 1.0 if self.objective.best is not None else 0.0],
            recent.ravel(), self.tried.mean(axis=1)[view] * 2 - 1,
            [self.objective.remaining / budget * 2 - 1, min(1.0, self.steps / self._max_steps) * 2 - 1],
        ]
        if self.planning:
            mean, std, p_feasible = self.prediction
            parts.append([np.tanh(mean), np.tanh(std), 2 * p_feasible - 1, 2 * self.queries_left / self.planning - 1])
        return np.clip(np.concatenate(parts), -1.0, 1.0).astype(np.float32)

    @property
    def _max_steps(self) -> int:
        """Truncation: ``4 x budget`` real-evaluation attempts (each with up to ``planning`` queries before it)."""
        return 4 * self.objective.budget * (1 + self.planning)

    def step(self, action):
        axis, level = int(action[0]), int(action[1])
        real = not self.planning or int(action[2]) == 1 or self.queries_left == 0
        best_unit, before = self._best_unit()
        if axis == self.d:
            target = best_unit.copy() if len(self._y) else self.current
        elif axis == self.d + 1:  # explore: a fresh point of the episode's Sobol sequence
            with warnings.catch_warnings():  # one point at a time: scipy's note on powers of 2 does not apply
                warnings.simplefilter("ignore", UserWarning)
                target = self._fresh.random(1)[0]
        else:
            target = self.current.copy()
            target[self.perm[axis]] = level / (self.n_bins - 1)
        target = self.space.snap(target[None, :])[0]
        self.current = target
        self.steps += 1
        truncated = self.steps >= self._max_steps
        if not real:  # a free surrogate query: the planning walk moves, the budget does not
            self.queries_left -= 1
            self._predict(target)
            info = {"score": None, "real_evaluations": self.objective.used, "repeat": False, "query": True}
            if self.bound is not None:
                info["regret"] = self._last_regret
            return self._observation(), -self.query_cost, False, truncated, info
        used = self.objective.used
        record = self.objective(target)
        repeat = self.objective.used == used  # answered from the cache
        self._mark(target)
        if self.bound is not None:
            regret = self._regret()
            reward = self._last_regret - regret + (REPEAT_PENALTY if repeat else 0.0)
            self._last_regret = regret
        else:
            after = self._best_unit()[1]
            reward = max(0.0, after - before) + SCORE_SHARE * squash(record.score)
            if record.rejected:
                reward += REJECTION_PENALTY
            if repeat:
                reward += REPEAT_PENALTY
        if self.planning:
            self.queries_left = self.planning
            if not repeat:
                self._fit_surrogate()
            else:
                self._predict(target)
        terminated = self.objective.remaining == 0
        truncated = truncated and not terminated
        info = {"score": record.score, "real_evaluations": self.objective.used, "repeat": repeat, "query": False}
        if self.bound is not None:
            info["regret"] = self._last_regret
        return self._observation(), float(reward), terminated, truncated, info


def normalised_regret(best: float, scale: tuple[float, float]) -> float:
    """``(bound - best) / (bound - reference)`` for ``scale = (bound, reference)`` (:func:`regret_scale`), clipped to
    ``[-1, 2]``; 2 while nothing feasible was found (``best = -inf``)."""
    bound, reference = scale
    return float(np.clip((bound - best) / (bound - reference), -1.0, 2.0)) if math.isfinite(best) else 2.0


def regret_scale(problem: Any, space: SearchSpace) -> tuple[float, float] | None:
    """``(bound, reference)`` of the normalised regret ``(bound - best) / (bound - reference)``, or None.

    * :class:`~env.tasks.SyntheticTask`: the analytic upper bound, and the median finite score of 256
      snapped uniform points seeded by the task;
    * an emulated instance (anything with ``evaluate_unit``): over 1,024 seeded snapped uniform points,
      scored without noise, the median finite score (reference) and the highest (bound). So a regret of 0 is "as good as the best of
      1,024 random configurations"; better is negative (clipped at -1 by the envs), a rejection-only
      history is 2.
    """
    d = len(space)
    if isinstance(problem, SyntheticTask):
        scores = problem.score_unit(space.snap(np.random.default_rng(problem.seed).random((256, d))))
        bound = problem.upper_bound
    elif hasattr(problem, "evaluate_unit"):
        if dataclasses.is_dataclass(problem) and getattr(problem, "noise", 0):
            problem = dataclasses.replace(problem, noise=0.0)  # the same landscape, scored in one batch
        scores = problem.evaluate_unit(space.snap(np.random.default_rng(0xB0B).random((1024, d))))
        finite = scores[np.isfinite(scores)]
        bound = finite.max() if finite.size else 1.0
    else:
        return None
    finite = scores[np.isfinite(scores)]
    reference = float(np.median(finite)) if finite.size else float(bound) - 1.0
    return float(max(bound, reference + 1e-9)), reference


# ====================================================================== GP-posterior candidate env (MetaBO-style)
MATERN_LENGTHS = (0.15, 0.25, 0.4, 0.65, 1.0)
"""Isotropic length-scale grid, in units of ``sqrt(d)`` (chosen per step by marginal likelihood)."""
GP_NOISE = 1e-3
"""Noise variance of the feature GP, in standardised score units."""
N_INIT = 5
"""Initial design: the space's base configuration plus ``N_INIT - 1`` seeded uniform points."""
POOL_GLOBAL = 256
POOL_LOCAL = 128
LOCAL_RADII = (0.05, 0.15, 0.35)
"""Gaussian step (unit coordinates) of the three local pools around the incumbent."""
SLOTS = ("ei_local_small", "ei_local_medium", "ei_local_large", "ei_global", "ucb", "mean", "random")
"""What each of the ``K`` candidates is: the EI argmax of one pool, the UCB and mean argmax over all pools, a random point."""
N_CANDIDATE_FEATURES = 6
N_GLOBAL_FEATURES = 5


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(n, m)`` Euclidean distances between ``(n, d)`` and ``(m, d)`` points."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(sq, 0.0))


def matern52(dist: np.ndarray, length: float) -> np.ndarray:
    """Matern-5/2 kernel (unit amplitude) of a distance matrix."""
    r = dist * (math.sqrt(5.0) / length)
    return (1.0 + r + r * r / 3.0) * np.exp(-r)


class FeatureGP:
    """A small exact GP (isotropic Matern-5/2, standardised targets) cheap enough to refit at every step.

    Deliberately simpler than :class:`surrogate.gp.GPSurrogate` (no ARD, no optimiser):
    it is refitted at every one of the meta-training steps, so it must cost about a
    millisecond; the length-scale is the best of ``lengths`` by marginal likelihood.
    Works on precomputed distance matrices so that several GPs share them.
    """

    def __init__(self, dist: np.ndarray, y: np.ndarray, lengths: tuple[float, ...]) -> None:
        """``dist`` ``(n, n)`` distances between the training points, ``y`` ``(n,)`` finite targets."""
        self.mu = float(y.mean())
        self.sd = float(y.std()) if len(y) > 1 and y.std() > 1e-12 else 1.0
        z = (y - self.mu) / self.sd
        best = None
        for length in lengths:
            chol = np.linalg.cholesky(matern52(dist, length) + GP_NOISE * np.eye(len(y)))
            alpha = cho_solve((chol, True), z)
            loglik = -0.5 * z @ alpha - np.log(np.diag(chol)).sum()
            if best is None or loglik > best[0]:
                best = (loglik, length, chol, alpha)
        _, self.length, self.chol, self.alpha = best

    def predict(self, dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and std (score units) at ``m`` points given their ``(m, n)`` distances to the training points."""
        k = matern52(dist, self.length)
        v = solve_triangular(self.chol, k.T, lower=True)
        var = np.maximum(1.0 - (v * v).sum(0), 1e-10)
        return self.mu + self.sd * (k @ self.alpha), self.sd * np.sqrt(var)


class CandidateSearchEnv(gym.Env):
    """Choose the next real evaluation among ``K = len(SLOTS)`` GP-proposed candidates (MetaBO-style).

    * **Reset** evaluates the initial design (base configuration + seeded uniform points;
      those already in the objective's history are free cache hits), so an objective
      handed over with stored trials resumes where it stopped.
    * **Each step** fits :class:`FeatureGP` on the finite scores (and a second one on the
      0/1 feasibility labels), scores ``POOL_GLOBAL + 3 * POOL_LOCAL`` snapped, unseen
      points (uniform, and Gaussian steps of :data:`LOCAL_RADII` around the incumbent),
      and offers the ``K`` candidates of :data:`SLOTS`. Pools are drawn from
      ``default_rng([episode_seed, used])``: the state is a function of the history.
    * **Action** ``Discrete(K)``: which candidate is evaluated (one real evaluation).
    * **Observation** ``Box(-1, 1, (K * 6 + 5,))``: per candidate (in slot order) the
      standardised GP mean above the incumbent, GP std, EI x P(feasible), P(feasible),
      distance to the incumbent and to the nearest evaluated point (both / ``sqrt(d)``);
      then remaining-budget fraction, used fraction, rejected fraction, steps since the
      last improvement / budget, and the selected length-scale.
    * **Reward** (shaped against the best so far): on problems with a known bound
      (:class:`~env.tasks.SyntheticTask`), minus the normalised simple regret after the step,
      ``-(bound - best) / (bound - median random score)`` clipped to ``[-2, 1]`` (above 0 only on emulated
      instances, whose bound is the best of 1,024 random points: :func:`regret_scale`), so the
      return is the area under the regret curve (anytime performance); or, with
      ``reward="improvement"``, the decrease of that regret (zero on steps that do not
      improve: lower variance, speed rewarded only through the discount); on problems
      without a bound, the improvement of the squashed best score.
    * **Episode** ends when the budget is spent (truncated after ``4 x budget`` steps, which only
      a space too small to offer unseen candidates reaches).

    Backends as for :class:`GemSearchEnv`: a fresh :class:`~env.tasks.SyntheticTask` per reset with its
    seed drawn from ``task_seeds`` (training tasks; held-out seeds stay below ``task_seeds[0]``), a
    fixed ``problem``, or an ``objective_factory`` (how a searcher runs the policy on the real budget).
    ``budget`` may be a ``(low, high)`` range, drawn per reset, for meta-training over budgets.
    """

    metadata = {"render_modes": []}

    def __init__(self, space: str | SearchSpace = "joint", budget: int | tuple[int, int] = 60, *,
                 task_seeds: tuple[int, int] = (1_000_000, 2**31 - 1), problem: Any | None = None,
                 objective_factory: Callable[[], Objective] | None = None, reward: str = "regret") -> None:
        super().__init__()
        if reward not in ("regret", "improvement"):
            raise ValueError(f"reward must be 'regret' or 'improvement', got {reward!r}")
        self.reward = reward
        self._objective_factory = objective_factory
        self._problem = problem
        self.task_seeds = task_seeds
        self.budget_range = (int(budget), int(budget)) if np.isscalar(budget) else (int(budget[0]), int(budget[1]))
        self.space: SearchSpace = (
            problem.space if problem is not None
            else objective_factory().space if objective_factory is not None
            else space if isinstance(space, SearchSpace) else SearchSpace(space)
        )
        self.d = len(self.space)
        self.k = len(SLOTS)
        self.action_space = spaces.Discrete(self.k)
        size = self.k * N_CANDIDATE_FEATURES + N_GLOBAL_FEATURES
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(size,), dtype=np.float32)
        self.objective: Objective | None = None
        self.gp_predictions = 0
        """Surrogate (GP) predictions made so far: the cheap "planning" steps, reported beside real evaluations."""

    # ------------------------------------------------------------------ episode
    def _new_objective(self, budget: int, seed: int | None = None) -> Objective:
        if self._objective_factory is not None:
            return _from_factory(self._objective_factory, seed)
        problem = self._problem
        if problem is None:
            problem = SyntheticTask(self.space, seed=int(self.np_random.integers(*self.task_seeds)))
        return Objective(problem, budget, searcher="env", seed=self.episode_seed)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.episode_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31))
        self.objective = self._new_objective(int(self.np_random.integers(self.budget_range[0], self.budget_range[1] + 1)), seed)
        self.budget = self.objective.budget
        self.x = np.array([self.space.encode_values(r.params) for r in self.objective.history]).reshape(-1, self.d)
        self.y = np.array([r.score for r in self.objective.history], dtype=float)
        self.seen = {self._key(u) for u in self.x}
        self.steps = 0
        init_rng = np.random.default_rng([self.episode_seed, 0xD5])
        design = np.vstack([self.space.encode(self.space.base)[None, :], init_rng.random((N_INIT - 1, self.d))])
        for unit in self.space.snap(design)[: min(N_INIT, self.budget)]:
            if self.objective.remaining == 0:
                break
            self._evaluate(unit)
        self._regret_scale()
        self._last_regret = self._regret() if self.bound is not None else None
        self._prepare()
        return self._observation, {}

    def _key(self, unit: np.ndarray) -> bytes:
        """A fast approximate identity of a unit point, to drop evaluated points from the pools.

        Decoding rounds float values, so a proposal and its stored record differ by ~1e-10:
        6 decimals merge the two; the exact check is ``objective.seen`` on the picks.
        """
        return np.round(unit, 6).tobytes()

    def _evaluate(self, unit: np.ndarray) -> None:
        """Evaluate ``unit`` (snapped) unless already seen (then its stored record is the cache's)."""
        if self.objective.seen(unit):
            return
        record = self.objective(unit)
        # the state holds what the history holds (as a resumed run rebuilds it), not the proposal itself
        stored = self.space.encode_values(record.params)
        self.x = np.vstack([self.x, stored[None, :]])
        self.y = np.append(self.y, record.score)
        self.seen.add(self._key(stored))

    def _regret_scale(self) -> None:
        """Set ``self.bound`` to the regret reward's ``(bound, reference)``, or None when the problem has no known bound."""
        self.bound = regret_scale(self.objective.problem, self.space)

    def _best(self) -> float:
        finite = self.y[np.isfinite(self.y)]
        return float(finite.max()) if finite.size else -math.inf

    def _regret(self) -> float:
        return normalised_regret(self._best(), self.bound)  # < 0 only on emulated instances

    # ------------------------------------------------------------------ candidates and features
    def _pools(self, rng: np.random.Generator) -> list[np.ndarray]:
        """Snapped, unseen candidate pools: one uniform, then one per local radius around the incumbent."""
        finite = np.isfinite(self.y)
        incumbent = self.x[int(np.argmax(np.where(finite, self.y, -np.inf)))] if finite.any() else rng.random(self.d)
        pools = [rng.random((POOL_GLOBAL, self.d))]
        for radius in LOCAL_RADII:
            share = rng.uniform(1.0 / self.d, 0.5, (POOL_LOCAL, 1))  # each point moves a random share of the axes
            mask = rng.random((POOL_LOCAL, self.d)) < share
            mask[np.arange(POOL_LOCAL), rng.integers(self.d, size=POOL_LOCAL)] = True
            step = rng.normal(0.0, radius, (POOL_LOCAL, self.d))
            pools.append(np.where(mask, incumbent + step, incumbent))
        snapped = self.space.snap(np.vstack(pools))  # one pass over the axes for all pools (snapping is row-wise)
        out = []
        for pool in np.split(snapped, np.cumsum([len(p) for p in pools[:-1]])):
            keep = [row.tobytes() not in self.seen for row in np.round(pool, 6)]
            pool = pool[keep] if any(keep) else self.space.snap(rng.random((1, self.d)))
            out.append(pool)
        return out

    def _pick(self, points: np.ndarray, values: np.ndarray, offset: int) -> int:
        """Index (into ``points``) of the best of ``values`` that the objective has not evaluated (exact check)."""
        order = np.argsort(-values, kind="stable")
        for i in order[:8]:
            if not self.objective.seen(points[offset + i]):
                return offset + int(i)
        return offset + int(order[0])  # every top point evaluated: a free cache hit, the step is wasted

    def _prepare(self) -> None:
        """Fit the feature GPs on the history and build the ``K`` candidates and the observation."""
        rng = np.random.default_rng([self.episode_seed, self.objective.used])
        pools = self._pools(rng)
        points = np.vstack(pools)
        finite = np.isfinite(self.y)
        best = self._best()
        lengths = tuple(scale * math.sqrt(self.d) for scale in MATERN_LENGTHS)
        d_xx, d_qx = distances(self.x, self.x), distances(points, self.x)
        if finite.sum() >= 1:
            gp = FeatureGP(d_xx[np.ix_(finite, finite)], self.y[finite], lengths)
            mean, std = gp.predict(d_qx[:, finite])
            scale, length = gp.sd, gp.length
        else:  # nothing finite yet: an uninformative prior, exploration only
            mean, std, scale, length = np.zeros(len(points)), np.ones(len(points)), 1.0, lengths[0]
        if 0 < finite.sum() < finite.size:  # feasibility: GP regression on 0/1 labels at the score GP's length-scale
            p_feasible = np.clip(FeatureGP(d_xx, finite.astype(float), (length,)).predict(d_qx)[0], 0.0, 1.0)
        else:
            p_feasible = np.full(len(points), (finite.sum() + 1.0) / (finite.size + 2.0))
        self.gp_predictions += 2 * len(points)
        if math.isfinite(best):
            z = (mean - best) / std
            ei = ((mean - best) * ndtr(z) + std * np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)) * p_feasible
        else:
            ei = std * p_feasible
        plausible = p_feasible >= 0.5
        ucb = np.where(plausible, mean + 2.0 * std, -np.inf)
        exploit = np.where(plausible, mean, -np.inf)
        offsets = np.cumsum([0] + [len(p) for p in pools])
        whole = slice(0, offsets[-1])
        ranges = [slice(offsets[i], offsets[i + 1]) for i in (1, 2, 3, 0)] + [whole, whole]
        picks = [self._pick(points, values[part], part.start) for values, part in zip([ei] * 4 + [ucb, exploit], ranges)]
        picks.append(self._pick(points, rng.random(offsets[1]), 0))
        self.candidates = points[picks]
        incumbent = self.x[int(np.argmax(np.where(finite, self.y, -np.inf)))] if finite.any() else self.candidates[0]
        nearest = d_qx[picks].min(1)
        root_d = math.sqrt(self.d)
        reference = best if math.isfinite(best) else 0.0
        per_candidate = np.stack([
            np.tanh((mean[picks] - reference) / scale),
            np.tanh(std[picks] / scale),
            np.tanh(5.0 * ei[picks] / scale),
            2.0 * p_feasible[picks] - 1.0,
            2.0 * np.linalg.norm(self.candidates - incumbent, axis=1) / root_d - 1.0,
            2.0 * nearest / root_d - 1.0,
        ], axis=1)
        scores = np.where(finite, self.y, -np.inf)
        since = len(self.y) - 1 - int(np.argmax(scores)) if finite.any() else len(self.y)
        glob = np.array([
            2.0 * self.objective.remaining / self.budget - 1.0,
            2.0 * self.objective.used / self.budget - 1.0,
            2.0 * (1.0 - finite.mean()) - 1.0 if finite.size else -1.0,
            2.0 * min(1.0, since / self.budget) - 1.0,
            2.0 * (length / root_d - MATERN_LENGTHS[0]) / (MATERN_LENGTHS[-1] - MATERN_LENGTHS[0]) - 1.0,
        ])
        self._observation = np.clip(np.concatenate([per_candidate.ravel(), glob]), -1.0, 1.0).astype(np.float32)

    def step(self, action):
        before = self._best()
        self._evaluate(self.candidates[int(action)])
        after = self._best()
        if self.bound is not None:
            regret = self._regret()
            reward = -regret if self.reward == "regret" else self._last_regret - regret
            self._last_regret = regret
        else:
            reward = squash(after) - squash(before) if math.isfinite(before) else max(0.0, squash(after) + 1.0)
        self.steps += 1
        terminated = self.objective.remaining == 0
        truncated = not terminated and self.steps >= 4 * self.budget  # only when every pool is exhausted
        if not terminated:
            self._prepare()
        info = {"score": float(self.y[-1]), "best": after, "real_evaluations": self.objective.used}
        if self.bound is not None:
            info["regret"] = self._regret()
        return self._observation, float(reward), terminated, truncated, info

