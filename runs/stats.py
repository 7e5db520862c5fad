"""Statistics for benchmarking searchers over many problem instances (pure functions, no I/O).

A *problem instance* is one market universe + search window + its own holdout. The instance is
the unit of replication: optimiser seeds are averaged within an instance first, and every
confidence interval resamples instances (and seeds within them). Definitions, formulas and the
reasons behind them: ``docs/STATISTICS.md``.

Conventions

* Scores are ``ensemble_score`` values, maximised; ``-inf`` = hard rejection / nothing feasible yet.
* A *curve* is a best-so-far array of shape ``(budget,)``: element ``t-1`` is the best score after
  ``t`` real evaluations (``-inf`` before the first feasible one). A raw score sequence is accepted
  as well (its running maximum is taken); a curve shorter than a requested budget carries its
  last value forward.
* Normalised score at budget ``b`` on an instance (see :func:`normalise_instance`)::

      norm = (best_b - R_b) / (optimum - R_b)

  ``R_b`` = random search's *expected* best of ``b`` draws (with replacement) from the instance's
  pool of uniform random configurations (:func:`expected_best_of_random`); ``optimum`` = the best
  score ever seen on the instance. 1 = the best ever seen, 0 = random search's expectation,
  negative = worse than random. ``-inf`` is scored at the instance's *floor* (lowest finite score
  seen on it), so no ``inf``/``NaN`` ever enters a statistic.
* Every interval is a percentile bootstrap (default 95%, 2000 replicates) that resamples instances
  with replacement and, inside every drawn instance, that instance's seeds with replacement
  (hierarchical bootstrap). Replicates come from ``numpy.random.default_rng`` seeded from the
  caller's ``seed`` (and, in :func:`aggregate_table`, the searcher names and the budget through a
  stable CRC32), so the same inputs and seed give byte-identical output.

Why not ``rliable`` (checked 2026-11, Python 3.11, numpy 2.4.6, pandas 3.1.1, scipy 1.17.1):
``rliable`` 1.2.0 requires ``arch<8``; ``arch`` 7.2.0 fails at import under pandas 3.1
(``TypeError: deprecate_kwarg() missing 1 required positional argument: 'new_arg_name'`` from
``arch/univariate/base.py``), so ``import rliable`` fails; with ``arch`` 8.0.0 (pip warns of the
conflict) rliable imports but every interval estimate fails inside arch
(``TypeError: Only NumPy arrays and pandas DataFrames and Series are supported in keyword
arguments. Input `random_state` has type ...``: arch 8 no longer takes ``random_state``).
Besides, rliable's ``StratifiedBootstrap`` resamples runs *within* each task and keeps the set of
tasks fixed, whereas the instance is our unit of replication and must be resampled too. So the
estimators are rliable's (IQM = ``scipy.stats.trim_mean(x, 0.25)``, probability of improvement
= Mann-Whitney ``U / (m n)`` averaged over tasks, performance profiles) and the bootstrap is
implemented here with numpy. Ranks, Friedman, Nemenyi and Wilcoxon use scipy directly
(``autorank`` 1.3.0 installs and gives the same mean ranks and critical difference, but refuses
fewer than 5 instances and runs its own test selection; ``tests/test_stats.py`` cross-checks it
when it is installed).
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field, is_dataclass
from functools import lru_cache
from itertools import combinations
from pathlib import PurePath
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import stats as sps
from scipy.special import gammaln

Curves = Mapping[str, Mapping[int, np.ndarray]]
"""``{searcher: {seed: (budget,) best-so-far curve}}``."""

DEFAULT_LEVELS = (0.0, 0.5, 0.9, 0.99)
"""Runtime-ECDF targets in normalised units at the full budget (see :func:`ecdf_targets`)."""

VERDICT_CANNOT_TELL = "the data cannot tell"


# ---------------------------------------------------------------------------------------------
# data model
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstanceResults:
    """Everything the statistics need about one problem instance.

    instance: its name (instances are processed sorted by name, so input order does not matter).
    curves: ``{searcher: {seed: curve}}``, each curve of shape ``(budget,)`` (see module doc).
    random_pool: ``(n,)`` scores of independent uniform random configurations on this instance
        (``-inf`` allowed; NaN entries are dropped). Hundreds of values make ``R_b`` precise.
    optimum: best score ever seen on the instance across all stored runs; ``None`` = the best
        finite value in ``curves`` and ``random_pool``. Must not be below any of those.
    floor: lowest finite score seen on the instance (raw trial scores of the runs and the pool);
        ``None`` = the lowest finite value in ``curves`` and ``random_pool``. A given floor above an
        observed finite value is lowered to it.
    """

    instance: str
    curves: Curves
    random_pool: np.ndarray
    optimum: float | None = None
    floor: float | None = None


@dataclass(frozen=True)
class NormalisedInstance:
    """One instance's normalised scores (output of :func:`normalise_instance`).

    budgets: ``(nb,)`` int budgets; random_best: ``(nb,)`` ``R_b``; optimum, floor: floats used.
    scores: ``{searcher: (n_seeds, nb)}`` normalised scores (finite), rows in ``seeds`` order.
    excluded: ``None``, or the reason the instance cannot be normalised (then ``scores`` is empty).
    """

    instance: str
    budgets: np.ndarray
    random_best: np.ndarray
    optimum: float
    floor: float
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    seeds: dict[str, tuple[int, ...]] = field(default_factory=dict)
    excluded: str | None = None

    def at(self, searcher: str, budget: int) -> np.ndarray:
        """``(n_seeds,)`` normalised scores of ``searcher`` at ``budget`` (empty if it did not run)."""
        if searcher not in self.scores:
            return np.empty(0)
        column = np.flatnonzero(self.budgets == budget)
        if column.size == 0:
            raise KeyError(f"budget {budget} was not normalised on {self.instance}")
        return self.scores[searcher][:, column[0]]


@dataclass(frozen=True)
class HoldoutResults:
    """Out-of-sample results of one instance (input of :func:`holdout_summary`).

    default_holdout: holdout score of the default configuration (``-inf`` = rejected, NaN = missing).
    winners: ``{searcher: {seed: (in_sample, holdout)}}`` of each run's winner (raw scores).
    scale: optional positive divisor applied to both differences on this instance (e.g.
        ``optimum - R_B`` in-sample, :func:`in_sample_scales`) to put instances on one scale; ``None`` = raw
        score units (then, if any other instance has a scale, this one's differences are left out of the means).
    holdout_pool, search_pool: optional scores ``(P,)`` of the same random configurations on the holdout and on
        the search window (``instances.pool``); with both, every score is also placed among them
        (:func:`pool_rank`), which puts instances on one scale without dividing by anything and ranks a
        rejection (-inf) with the pool's rejections.
    """

    instance: str
    default_holdout: float
    winners: Mapping[str, Mapping[int, tuple[float, float]]]
    scale: float | None = None
    holdout_pool: np.ndarray | None = None
    search_pool: np.ndarray | None = None


def pool_rank(value: float, pool: Any) -> float:
    """Where ``value`` falls among a pool of random configurations' scores ``(P,)``: the share of the pool below it
    plus half the share equal to it (the mid-rank), in ``[0, 1]``; ``-inf`` ties with the pool's rejections. NaN
    for a NaN value or an empty pool (NaN pool entries, missing scores, are dropped)."""
    scores = np.asarray(pool, dtype=float).ravel()
    scores = scores[~np.isnan(scores)]
    if math.isnan(value) or scores.size == 0:
        return math.nan
    return float((np.sum(scores < value) + 0.5 * np.sum(scores == value)) / scores.size)


# ---------------------------------------------------------------------------------------------
# per-instance normalisation
# ---------------------------------------------------------------------------------------------

def _budgets(budgets: int | Sequence[int] | np.ndarray) -> np.ndarray:
    array = np.atleast_1d(np.asarray(budgets))
    if array.size == 0 or not np.issubdtype(array.dtype, np.integer) and not np.all(array == np.round(array)):
        raise ValueError(f"budgets must be positive integers, got {budgets!r}")
    array = array.astype(np.int64)
    if np.any(array < 1):
        raise ValueError(f"budgets must be at least 1, got {budgets!r}")
    return array


def expected_best_of_random(pool: np.ndarray, budgets: int | Sequence[int]) -> np.ndarray:
    """Random search's expected best score after ``b`` draws, for each ``b`` in ``budgets``.

    pool: ``(n,)`` finite scores (substitute the floor for ``-inf`` first); draws are uniform with
    replacement from the pool's empirical distribution. Returns ``(len(budgets),)`` floats.

    With the pool sorted, ``s_1 <= ... <= s_n``: ``E[max] = sum_k s_k ((k/n)^b - ((k-1)/n)^b)``,
    computed in the equivalent telescoped form ``s_1 + sum_{j<n} (s_{j+1} - s_j)(1 - (j/n)^b)``,
    whose terms are all non-negative: the result lies in ``[s_1, s_n]`` exactly (a constant pool
    gives its constant, with no rounding above the maximum).
    """
    values = np.sort(np.asarray(pool, dtype=float).ravel())
    if values.size == 0:
        raise ValueError("the random pool is empty")
    if not np.all(np.isfinite(values)):
        raise ValueError("the random pool must be finite here (substitute the floor for -inf)")
    b = _budgets(budgets).astype(float)
    n = values.size
    steps = np.diff(values)  # (n-1,) >= 0
    below = np.arange(1, n) / n  # P(one draw <= s_j) for j = 1..n-1
    survive = 1.0 - below[None, :] ** b[:, None]  # P(max of b draws > s_j)
    return values[0] + survive @ steps


def expected_best_of_subset(scores: Sequence[float], m: int) -> float:
    """Expected maximum of ``m`` of ``scores`` drawn uniformly without replacement (``1 <= m <= len(scores)``).

    With the scores sorted, ``s_1 <= ... <= s_n``: ``E[max] = sum_{k>=m} s_k C(k-1, m-1) / C(n, m)`` (the
    without-replacement twin of :func:`expected_best_of_random`).
    """
    values = np.sort(np.asarray(scores, dtype=float))
    n = values.size
    k = np.arange(m, n + 1)  # 1-based ranks that can be the maximum
    log_p = gammaln(k) - gammaln(m) - gammaln(k - m + 1) - (gammaln(n + 1) - gammaln(m + 1) - gammaln(n - m + 1))
    p = np.exp(log_p)
    return float(values[m - 1:] @ (p / p.sum()))


def _finite(values: np.ndarray) -> np.ndarray:
    return values[np.isfinite(values)]


def _carry(curve: np.ndarray, budgets: np.ndarray) -> np.ndarray:
    return curve[np.minimum(budgets, curve.size) - 1]


def _clean_curve(curve: Any, instance: str, searcher: str, seed: int) -> np.ndarray:
    array = np.asarray(curve, dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{instance}: {searcher} seed {seed} has an empty curve")
    if np.any(np.isnan(array)) or np.any(array == np.inf):
        raise ValueError(f"{instance}: {searcher} seed {seed} curve contains NaN or +inf")
    return np.maximum.accumulate(array)


def normalise_instance(instance: InstanceResults, budgets: int | Sequence[int]) -> NormalisedInstance:
    """Normalised scores of every searcher and seed of one instance at ``budgets``.

    ``norm = (best_b - R_b) / (optimum - R_b)`` with ``-inf`` scored at the floor (module doc).
    Excluded (``excluded`` holds the reason, ``scores`` is empty) when: the pool has no value; no
    finite score exists on the instance at all; or ``optimum - R_b`` is not positive at some
    budget (only when the pool is constant at the optimum: random search cannot be beaten there,
    so the instance cannot discriminate searchers). Raises ``ValueError`` when a given optimum is
    below an observed score (inconsistent inputs).
    """
    b = _budgets(budgets)
    name = instance.instance
    curves = {s: {int(k): _clean_curve(c, name, s, k) for k, c in seeds.items()}
              for s, seeds in instance.curves.items()}
    pool = np.asarray(instance.random_pool, dtype=float).ravel()
    pool = pool[~np.isnan(pool)]
    if np.any(pool == np.inf):
        raise ValueError(f"{name}: random pool contains +inf")
    observed = np.concatenate([_finite(pool)] + [_finite(c) for seeds in curves.values() for c in seeds.values()])
    nan = np.full(b.size, np.nan)

    def excluded(reason: str, optimum: float = math.nan, floor: float = math.nan) -> NormalisedInstance:
        return NormalisedInstance(name, b, nan, optimum, floor, excluded=reason)

    optimum = instance.optimum
    if optimum is not None and not math.isfinite(optimum):
        optimum = None
    if observed.size and optimum is not None and optimum < observed.max() - 1e-9 * max(1.0, abs(optimum)):
        raise ValueError(f"{name}: optimum {optimum} is below an observed score {observed.max()}")
    if optimum is None:
        optimum = float(observed.max()) if observed.size else math.nan
    floor = float(observed.min()) if observed.size else math.nan
    if instance.floor is not None and math.isfinite(instance.floor):
        floor = float(instance.floor) if math.isnan(floor) else min(floor, float(instance.floor))
    if pool.size == 0:
        return excluded("empty random pool", optimum, floor)
    if not (math.isfinite(optimum) and math.isfinite(floor)):
        return excluded("no finite score on this instance (every pool and run score is -inf)", optimum, floor)
    floor = min(floor, optimum)
    random_best = expected_best_of_random(np.where(np.isfinite(pool), pool, floor), b)
    denominator = optimum - random_best
    tolerance = 1e-12 * max(1.0, abs(optimum), float(np.max(np.abs(random_best))))
    flat = denominator <= tolerance
    if np.any(flat):
        return excluded(f"optimum equals random search's expected best at budget {int(b[np.argmax(flat)])} "
                        "(flat instance: random search cannot be beaten)", optimum, floor)
    scores, seeds = {}, {}
    for searcher in sorted(curves):
        order = tuple(sorted(curves[searcher]))
        if not order:
            continue
        values = np.array([_carry(curves[searcher][k], b) for k in order])  # (n_seeds, nb)
        values = np.where(np.isfinite(values), values, floor)
        scores[searcher] = (values - random_best) / denominator
        seeds[searcher] = order
    return NormalisedInstance(name, b, random_best, float(optimum), float(floor), scores, seeds)


def normalise_all(instances: Sequence[InstanceResults], budgets: int | Sequence[int]) -> list[NormalisedInstance]:
    """:func:`normalise_instance` for each instance, sorted by instance name (names must be unique)."""
    names = [i.instance for i in instances]
    if len(set(names)) != len(names):
        raise ValueError("instance names must be unique")
    return [normalise_instance(i, budgets) for i in sorted(instances, key=lambda i: i.instance)]


# ---------------------------------------------------------------------------------------------
# hierarchical bootstrap core
# ---------------------------------------------------------------------------------------------

def iqm(values: Any, axis: int | None = -1) -> Any:
    """Interquartile mean: ``scipy.stats.trim_mean(values, 0.25, axis)`` (rliable's IQM)."""
    return sps.trim_mean(np.asarray(values, dtype=float), 0.25, axis=axis)


STATISTICS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "iqm": lambda x: iqm(x, axis=-1),
    "mean": lambda x: np.mean(x, axis=-1),
}
"""Statistic over instances: ``(..., N)`` -> ``(...)``."""


def _rng(seed: int | Sequence[int]) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed))


def _key(*parts: Any) -> list[int]:
    """Stable entropy for a seed sequence from ints and strings (CRC32 of strings, not ``hash``)."""
    return [p if isinstance(p, (int, np.integer)) and p >= 0 else zlib.crc32(str(p).encode()) for p in parts]


def _check_groups(groups: Sequence[Any], what: str) -> list[np.ndarray]:
    out = []
    for i, group in enumerate(groups):
        array = np.asarray(group, dtype=float)
        if array.ndim == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[0] == 0:
            raise ValueError(f"{what}: instance {i} needs at least one seed, shape (n_seeds,) or (n_seeds, K)")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{what}: instance {i} holds a non-finite value (normalise first)")
        out.append(array)
    if out and len({a.shape[1] for a in out}) != 1:
        raise ValueError(f"{what}: every instance needs the same number of columns")
    return out


def _pad(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``N`` arrays ``(n_i, K)`` -> padded ``(N, m, K)`` (zeros beyond ``n_i``) and counts ``(N,)``."""
    counts = np.array([g.shape[0] for g in groups])
    padded = np.zeros((len(groups), counts.max(), groups[0].shape[1]))
    for i, g in enumerate(groups):
        padded[i, : g.shape[0]] = g
    return padded, counts


class _Resample:
    """One hierarchical resampling plan: ``reps`` draws of ``N`` instances, then seeds within each."""

    def __init__(self, rng: np.random.Generator, reps: int, n_instances: int):
        self.rng = rng
        self.reps = reps
        self.instances = rng.integers(0, n_instances, size=(reps, n_instances))  # (reps, N)

    def seeds(self, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Seed indices ``(reps, N, width)`` drawn within each drawn instance, and their validity mask."""
        n = counts[self.instances]  # (reps, N)
        u = self.rng.random((self.reps, self.instances.shape[1], width))
        index = np.minimum(np.floor(u * n[..., None]).astype(np.int64), n[..., None] - 1)
        valid = np.arange(width)[None, None, :] < n[..., None]
        return index, valid

    def values(self, padded: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Resampled values ``(reps, N, m, K)`` (invalid slots zero) and the mask ``(reps, N, m)``."""
        index, valid = self.seeds(counts, padded.shape[1])
        drawn = padded[self.instances[..., None], index]  # (reps, N, m, K)
        return np.where(valid[..., None], drawn, 0.0), valid

    def seed_means(self, padded: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Per drawn instance, the mean of its resampled seeds: ``(reps, N, K)`` (columns share the draws)."""
        index, valid = self.seeds(counts, padded.shape[1])
        n = valid.sum(axis=2)
        rows = self.instances[..., None]
        out = np.empty(self.instances.shape + (padded.shape[2],))
        for k in range(padded.shape[2]):  # one column at a time: memory (reps, N, m), not (reps, N, m, K)
            out[..., k] = np.where(valid, padded[rows, index, k], 0.0).sum(axis=2) / n
        return out


def _interval(samples: np.ndarray, level: float) -> np.ndarray:
    """Percentile interval along axis 0: ``(2, ...)``."""
    tail = (1.0 - level) / 2.0
    return np.quantile(samples, [tail, 1.0 - tail], axis=0)


def _check_level(level: float, reps: int) -> None:
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")


def bootstrap_aggregates(per_instance: Sequence[Any], reps: int = 2000, seed: int | Sequence[int] = 0,
                         level: float = 0.95, statistics: Sequence[str] = ("iqm", "mean")) -> dict[str, Any]:
    """Aggregate over instances of the per-instance seed-mean, with hierarchical bootstrap CIs.

    per_instance: ``N`` arrays, instance ``i`` of shape ``(n_i,)`` (its seeds' finite scores, e.g.
    normalised) or ``(n_i, K)`` (``K`` columns such as budgets, resampled jointly). Returns
    ``{"iqm": float, "iqm_ci": [lo, hi], "mean": ..., "mean_ci": ..., "n_instances": N, "n_runs":
    sum n_i}`` (arrays of shape ``(K,)`` / ``(2, K)`` for 2-D input). ``N == 0`` gives NaNs; with
    ``N == 1`` the interval reflects seed noise only.
    """
    _check_level(level, reps)
    groups = _check_groups(per_instance, "bootstrap_aggregates")
    two_d = any(np.asarray(g).ndim == 2 for g in per_instance)
    out: dict[str, Any] = {"n_instances": len(groups), "n_runs": int(sum(g.shape[0] for g in groups))}
    if not groups:
        for name in statistics:
            out[name], out[f"{name}_ci"] = math.nan, [math.nan, math.nan]
        return out
    padded, counts = _pad(groups)
    means = np.stack([g.mean(axis=0) for g in groups], axis=-1)  # (K, N)
    plan = _Resample(_rng(seed), reps, len(groups))
    boot_means = np.moveaxis(plan.seed_means(padded, counts), 1, -1)  # (reps, K, N)
    for name in statistics:
        fn = STATISTICS[name]
        point, ci = fn(means), _interval(fn(boot_means), level)  # (K,), (2, K)
        out[name] = point if two_d else float(point[0])
        out[f"{name}_ci"] = ci if two_d else [float(ci[0, 0]), float(ci[1, 0])]
    return out


def paired_difference(a: Sequence[Any], b: Sequence[Any], reps: int = 2000, seed: int | Sequence[int] = 0,
                      level: float = 0.95) -> dict[str, Any]:
    """Paired difference A - B over instances: per instance ``mean(a_i) - mean(b_i)``.

    a, b: ``N`` arrays each (instance ``i``: A's and B's seed scores, ``(n_i,)`` and ``(m_i,)``,
    same instance order). The bootstrap draws instances, then A's and B's seeds independently
    within each. Returns ``{"iqm", "iqm_ci", "mean", "mean_ci", "n_instances", "differences"}``
    (``differences``: the ``(N,)`` per-instance seed-mean differences).
    """
    _check_level(level, reps)
    ga, gb = _check_groups(a, "paired_difference A"), _check_groups(b, "paired_difference B")
    if len(ga) != len(gb):
        raise ValueError("paired_difference: A and B need the same instances")
    if not ga:
        return {"iqm": math.nan, "iqm_ci": [math.nan, math.nan], "mean": math.nan, "mean_ci": [math.nan, math.nan],
                "n_instances": 0, "differences": np.empty(0)}
    diff = np.array([x[:, 0].mean() - y[:, 0].mean() for x, y in zip(ga, gb)])
    plan = _Resample(_rng(seed), reps, len(ga))
    (pa, ca), (pb, cb) = _pad(ga), _pad(gb)
    boot = plan.seed_means(pa, ca)[..., 0] - plan.seed_means(pb, cb)[..., 0]  # (reps, N)
    out: dict[str, Any] = {"n_instances": len(ga), "differences": diff}
    for name in ("iqm", "mean"):
        fn = STATISTICS[name]
        ci = _interval(fn(boot), level)
        out[name], out[f"{name}_ci"] = float(fn(diff)), [float(ci[0]), float(ci[1])]
    return out


def _prob_greater(x: np.ndarray, y: np.ndarray, vx: np.ndarray | None = None, vy: np.ndarray | None = None) -> np.ndarray:
    """Mann-Whitney ``P(X > Y) + P(X = Y)/2`` over the last axis of ``x`` and ``y`` (masked slots ignored)."""
    gt = (x[..., :, None] > y[..., None, :]).astype(float)
    eq = (x[..., :, None] == y[..., None, :]).astype(float)
    score = gt + 0.5 * eq
    if vx is None:
        return score.mean(axis=(-2, -1))
    weight = (vx[..., :, None] & vy[..., None, :]).astype(float)
    return (score * weight).sum(axis=(-2, -1)) / weight.sum(axis=(-2, -1))


def probability_of_improvement(a: Sequence[Any], b: Sequence[Any], reps: int = 2000,
                               seed: int | Sequence[int] = 0, level: float = 0.95) -> dict[str, Any]:
    """rliable's probability of improvement ``P(A > B)`` with a hierarchical bootstrap CI.

    Per instance: the Mann-Whitney probability over seeds, ``(#{a > b} + #{a = b}/2) / (m n)``;
    averaged over instances. a, b as in :func:`paired_difference`. Returns
    ``{"p": float, "ci": [lo, hi], "n_instances": N}``; 0.5 = no difference.
    """
    _check_level(level, reps)
    ga, gb = _check_groups(a, "probability_of_improvement A"), _check_groups(b, "probability_of_improvement B")
    if len(ga) != len(gb):
        raise ValueError("probability_of_improvement: A and B need the same instances")
    if not ga:
        return {"p": math.nan, "ci": [math.nan, math.nan], "n_instances": 0}
    point = float(np.mean([_prob_greater(x[:, 0], y[:, 0]) for x, y in zip(ga, gb)]))
    plan = _Resample(_rng(seed), reps, len(ga))
    (pa, ca), (pb, cb) = _pad(ga), _pad(gb)
    xa, va = plan.values(pa, ca)
    xb, vb = plan.values(pb, cb)
    boot = np.zeros(reps)
    for j in range(len(ga)):  # one instance slot at a time: memory (reps, m, m)
        boot += _prob_greater(xa[:, j, :, 0], xb[:, j, :, 0], va[:, j], vb[:, j])
    boot /= len(ga)
    ci = _interval(boot, level)
    return {"p": point, "ci": [float(ci[0]), float(ci[1])], "n_instances": len(ga)}


def performance_profile(per_instance: Sequence[Any], taus: Sequence[float] | np.ndarray | None = None,
                        reps: int = 2000, seed: int | Sequence[int] = 0, level: float = 0.95) -> dict[str, np.ndarray]:
    """Score distribution (rliable's performance profile): share of runs with score ``> tau``.

    per_instance: ``N`` arrays ``(n_i,)`` of one searcher's normalised scores. For each ``tau``:
    per instance the fraction of its seeds above ``tau``, averaged over instances (each instance
    weighs the same whatever its number of seeds; equal to the fraction of (instance, seed) runs
    when every instance has the same seeds). ``taus`` default: 81 points on ``[-1, 1]``.
    Returns ``{"tau": (T,), "profile": (T,), "lo": (T,), "hi": (T,)}`` (NaN when ``N == 0``).
    """
    _check_level(level, reps)
    tau = np.linspace(-1.0, 1.0, 81) if taus is None else np.asarray(taus, dtype=float).ravel()
    groups = _check_groups(per_instance, "performance_profile")
    if not groups:
        nan = np.full(tau.size, np.nan)
        return {"tau": tau, "profile": nan, "lo": nan.copy(), "hi": nan.copy()}
    profile = np.array([np.mean([np.mean(g[:, 0] > t) for g in groups]) for t in tau])
    padded, counts = _pad(groups)
    plan = _Resample(_rng(seed), reps, len(groups))
    drawn, valid = plan.values(padded, counts)
    drawn, n = drawn[..., 0], valid.sum(axis=2)
    boot = np.empty((reps, tau.size))
    for j, t in enumerate(tau):
        boot[:, j] = (((drawn > t) & valid).sum(axis=2) / n).mean(axis=1)
    lo, hi = _interval(boot, level)
    return {"tau": tau, "profile": profile, "lo": lo, "hi": hi}


def verdict(ci: Sequence[float], a: str = "A", b: str = "B", n_instances: int | None = None,
            min_instances: int = 5) -> str:
    """The claim a CI of the difference A - B supports.

    ``"{a} beats {b}"`` only when the whole interval is above zero, ``"{b} beats {a}"`` only when
    it is entirely below zero, otherwise ``"the data cannot tell"`` -- also when the interval is
    undefined (NaN) or rests on fewer than ``min_instances`` instances (when ``n_instances`` is given).
    """
    lo, hi = float(ci[0]), float(ci[1])
    if math.isnan(lo) or math.isnan(hi) or (n_instances is not None and n_instances < min_instances):
        return VERDICT_CANNOT_TELL
    if lo > 0:
        return f"{a} beats {b}"
    if hi < 0:
        return f"{b} beats {a}"
    return VERDICT_CANNOT_TELL


# ---------------------------------------------------------------------------------------------
# ranks and tests
# ---------------------------------------------------------------------------------------------

def mean_ranks(table: Any) -> np.ndarray:
    """Average rank of each column over rows: ``table`` ``(N, k)`` scores (higher = better).

    Within each row rank 1 = the highest score, ties get the average of their ranks. Returns ``(k,)``.
    """
    array = np.asarray(table, dtype=float)
    if array.ndim != 2 or array.shape[0] == 0:
        return np.full(array.shape[-1] if array.ndim == 2 else 0, np.nan)
    return sps.rankdata(-array, axis=1, method="average").mean(axis=0)


def friedman_p(table: Any) -> float | None:
    """Friedman test p-value over rows (instances) of ``table`` ``(N, k)`` (scipy.stats.friedmanchisquare).

    ``None`` when undefined: fewer than 3 columns, fewer than 2 rows, or every row all ties.
    """
    array = np.asarray(table, dtype=float)
    if array.ndim != 2 or array.shape[1] < 3 or array.shape[0] < 2:
        return None
    if np.all(array == array[:, :1]):
        return None
    p = sps.friedmanchisquare(*array.T).pvalue
    return float(p) if math.isfinite(p) else None


@lru_cache(maxsize=None)
def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Demsar's ``q_alpha``: the studentized range quantile (``k`` groups, infinite df) over ``sqrt(2)``."""
    return float(sps.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def nemenyi_cd(k: int, n: int, alpha: float = 0.05) -> float | None:
    """Nemenyi critical difference of mean ranks: ``q_alpha sqrt(k (k+1) / (6 n))`` (Demsar 2006).

    k searchers, n instances; ``None`` for ``k < 2`` or ``n < 1``. Two searchers whose mean ranks
    differ by more than this differ at level ``alpha`` (family-wise).
    """
    if k < 2 or n < 1:
        return None
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); ``None`` entries stay ``None``.

    Sorted ascending ``p_(1..m)``: ``adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; returned in input order.
    """
    index = [i for i, p in enumerate(pvalues) if p is not None and not math.isnan(p)]
    out: list[float | None] = [None] * len(pvalues)
    m = len(index)
    running = 0.0
    for rank, i in enumerate(sorted(index, key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))
        out[i] = running
    return out


def wilcoxon_p(differences: Any) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of paired differences over instances.

    ``scipy.stats.wilcoxon`` (zero differences dropped, ``zero_method="wilcox"``). ``None`` with
    fewer than 2 differences; 1.0 when every difference is zero (no evidence of a difference).
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size < 2 or not np.all(np.isfinite(d)):
        return None
    if np.all(d == 0):
        return 1.0
    return float(sps.wilcoxon(d, zero_method="wilcox").pvalue)


def cd_groups(ranks: Mapping[str, float], cd: float | None) -> list[list[str]]:
    """Maximal groups of searchers (in rank order) whose mean ranks all lie within ``cd`` of each other.

    These are the bars of a critical-difference diagram (no significant difference inside a bar);
    singletons are left out. Empty when ``cd`` is ``None``.
    """
    if cd is None:
        return []
    order = sorted(ranks, key=lambda s: (ranks[s], s))
    groups: list[list[str]] = []
    for i in range(len(order)):
        j = i
        while j + 1 < len(order) and ranks[order[j + 1]] - ranks[order[i]] <= cd:
            j += 1
        if j > i and not any(set(order[i: j + 1]) <= set(g) for g in groups):
            groups.append(order[i: j + 1])
    return groups


# ---------------------------------------------------------------------------------------------
# runtime ECDF over (instance, target) pairs
# ---------------------------------------------------------------------------------------------

def ecdf_targets(normalised: NormalisedInstance, levels: Sequence[float] = DEFAULT_LEVELS) -> np.ndarray:
    """Target scores of one instance for the runtime ECDF: ``T_q = R_B + q (optimum - R_B)``.

    ``B`` = the largest budget ``normalised`` was computed at (the full budget), ``R_B`` random
    search's expected best at it. So ``q = 0`` is "as good as random search's expectation after
    the whole budget", ``q = 0.99`` "99% of the way from there to the best ever seen", ``q = 1``
    "the best ever seen". Returns ``(len(levels),)`` raw scores.
    """
    if normalised.excluded:
        raise ValueError(f"{normalised.instance} is excluded: {normalised.excluded}")
    r = float(normalised.random_best[np.argmax(normalised.budgets)])
    return r + np.asarray(levels, dtype=float) * (normalised.optimum - r)


def runtimes(curve: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """1-based evaluations until the best-so-far first reaches each target (``inf`` if never).

    ``-inf`` never reaches a target. curve ``(budget,)``, targets ``(T,)`` -> ``(T,)`` floats.
    """
    best = np.maximum.accumulate(np.asarray(curve, dtype=float).ravel())
    out = np.full(len(targets), np.inf)
    for j, target in enumerate(targets):
        hit = np.flatnonzero(best >= target)
        if hit.size:
            out[j] = hit[0] + 1
    return out


def runtime_ecdf(instances: Sequence[InstanceResults], budget: int, levels: Sequence[float] = DEFAULT_LEVELS
                 ) -> dict[str, Any]:
    """COCO-style runtime ECDF per searcher over (instance, seed, target) triples.

    For each ``t = 1..budget``: per instance, the fraction of its (seed, target) pairs whose target
    (:func:`ecdf_targets` at full budget ``budget``) was reached within ``t`` evaluations; averaged
    over the instances the searcher ran on (each instance weighs the same). Returns
    ``{"t": (budget,), "levels": [...], "searchers": {name: {"ecdf": (budget,), "n_instances": int}},
    "targets": {instance: [T_q ...]}, "excluded": {instance: reason}}``.
    """
    t = np.arange(1, int(budget) + 1)
    normalised = {n.instance: n for n in normalise_all(instances, [budget])}
    per: dict[str, list[np.ndarray]] = {}
    targets, excluded = {}, {}
    for inst in sorted(instances, key=lambda i: i.instance):
        norm = normalised[inst.instance]
        if norm.excluded:
            excluded[inst.instance] = norm.excluded
            continue
        goal = ecdf_targets(norm, levels)
        targets[inst.instance] = goal
        for searcher, seeds in inst.curves.items():
            if not seeds:
                continue
            hits = np.concatenate([runtimes(np.asarray(c, dtype=float)[:budget], goal) for c in seeds.values()])
            per.setdefault(searcher, []).append((hits[None, :] <= t[:, None]).mean(axis=1))
    return {"t": t, "levels": list(levels),
            "searchers": {s: {"ecdf": np.mean(v, axis=0), "n_instances": len(v)} for s, v in sorted(per.items())},
            "targets": targets, "excluded": excluded}


# ---------------------------------------------------------------------------------------------
# normalised score vs budget, out-of-sample decay
# ---------------------------------------------------------------------------------------------

def _per_instance(normalised: Sequence[NormalisedInstance], searcher: str) -> list[np.ndarray]:
    return [n.scores[searcher] for n in normalised if not n.excluded and searcher in n.scores]


def searchers_of(normalised: Sequence[NormalisedInstance]) -> list[str]:
    """Sorted names of the searchers with at least one seed on a usable instance."""
    return sorted({s for n in normalised if not n.excluded for s in n.scores})


def normalised_vs_budget(instances: Sequence[InstanceResults], budgets: Sequence[int], reps: int = 2000,
                         seed: int = 0, level: float = 0.95) -> dict[str, dict[str, Any]]:
    """IQM and mean over instances of the normalised score at each budget, with bootstrap CIs.

    One resampling plan per searcher serves every budget (bands are bootstrap bands of curves).
    Returns ``{searcher: {"budget": (nb,), "iqm": (nb,), "iqm_lo", "iqm_hi", "mean", "mean_lo",
    "mean_hi", "n_instances": N}}``.
    """
    b = _budgets(budgets)
    normalised = normalise_all(instances, b)
    out = {}
    for searcher in searchers_of(normalised):
        agg = bootstrap_aggregates(_per_instance(normalised, searcher), reps, _key(seed, searcher), level)
        out[searcher] = {"budget": b, "iqm": agg["iqm"], "iqm_lo": agg["iqm_ci"][0], "iqm_hi": agg["iqm_ci"][1],
                         "mean": agg["mean"], "mean_lo": agg["mean_ci"][0], "mean_hi": agg["mean_ci"][1],
                         "n_instances": agg["n_instances"]}
    return out


def holdout_summary(results: Sequence[HoldoutResults], reps: int = 2000, seed: int = 0,
                    level: float = 0.95) -> dict[str, dict[str, Any]]:
    """Out-of-sample behaviour of each searcher's winners over instances.

    Per (instance, seed) winner with in-sample score ``x`` and holdout score ``h``, default
    configuration's holdout ``d`` (divided by the instance's ``scale`` when given; when some instances have a
    scale and others none, the unscaled ones' differences are left out, as their units differ, and counted in
    ``n_unscaled``):
    ``lift = h - d`` (did the search beat the defaults out of sample?) and ``decay = h - x``
    (how much of the in-sample score survives; negative = decay). ``-inf`` never enters a mean:
    ``h = -inf`` counts as *rejected on the holdout* (its share is reported); ``x = -inf`` (the run
    found nothing feasible) and NaN/None (missing) are counted and left out; ``d`` not finite
    leaves the instance out of ``lift``. Seeds are averaged within an instance, then
    :func:`bootstrap_aggregates` over instances. Returns per searcher ``{"lift": {...},
    "decay": {...}, "n_pairs", "n_rejected_holdout", "rejected_share", "n_in_sample_rejected",
    "n_missing", "n_default_rejected", "n_unscaled"}`` (``lift``/``decay``: the dicts of
    :func:`bootstrap_aggregates` plus ``wilcoxon_p``, the signed-rank test of the per-instance means against
    zero, and ``wilcoxon_holm_p``, that p Holm-corrected over the searchers given: the family of "whose
    winners beat the defaults out of sample?"; ``n_unscaled``: instances left out of them for want of a scale)
    and ``"lift_rank"``, ``"decay_rank"`` (the same dicts) on the instances with both random pools:
    ``rank(h) - rank(d)`` among the pool's holdout scores and ``rank(h) - rank(x)``, the in-sample rank among
    the pool's search-window scores (:func:`pool_rank`); a winner rejected on the holdout enters these (at the
    rank of the pool's rejections), a missing holdout score does not.
    """
    per: dict[str, dict[str, Any]] = {}
    ranked = ("lift_rank", "decay_rank")
    mixed = any(res.scale is not None for res in results)
    for res in sorted(results, key=lambda r: r.instance):
        scale = 1.0 if res.scale is None else float(res.scale)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"{res.instance}: scale must be positive and finite, got {res.scale}")
        unscaled = mixed and res.scale is None
        default = math.nan if res.default_holdout is None else float(res.default_holdout)
        for searcher, seeds in res.winners.items():
            acc = per.setdefault(searcher, {"lift": [], "decay": [], "lift_rank": [], "decay_rank": [], "n_pairs": 0,
                                            "n_rejected_holdout": 0, "n_in_sample_rejected": 0, "n_missing": 0,
                                            "n_default_rejected": 0, "n_unscaled": 0})
            acc["n_unscaled"] += unscaled
            lift, decay, lift_rank, decay_rank = [], [], [], []
            for _, (x, h) in sorted(seeds.items()):
                x = math.nan if x is None else float(x)
                h = math.nan if h is None else float(h)
                if res.holdout_pool is not None and res.search_pool is not None and not math.isnan(h):
                    rank_h = pool_rank(h, res.holdout_pool)
                    if not math.isnan(rank_h):
                        lift_rank.append(rank_h - pool_rank(default, res.holdout_pool))
                        decay_rank.append(rank_h - pool_rank(x, res.search_pool))
                acc["n_pairs"] += 1
                if math.isnan(h) or math.isnan(x):
                    acc["n_missing"] += 1
                elif h == -math.inf:
                    acc["n_rejected_holdout"] += 1
                elif x == -math.inf:
                    acc["n_in_sample_rejected"] += 1
                else:
                    decay.append((h - x) / scale)
                    if math.isfinite(default):
                        lift.append((h - default) / scale)
            if not math.isfinite(default):
                acc["n_default_rejected"] += 1
            if lift and not unscaled:
                acc["lift"].append(np.array(lift))
            if decay and not unscaled:
                acc["decay"].append(np.array(decay))
            for key, values in (("lift_rank", lift_rank), ("decay_rank", decay_rank)):
                values = [v for v in values if not math.isnan(v)]
                if values:
                    acc[key].append(np.array(values))
    out = {}
    for searcher in sorted(per):
        acc = per[searcher]
        scored = acc["n_pairs"] - acc["n_missing"]
        out[searcher] = {
            "lift": bootstrap_aggregates(acc["lift"], reps, _key(seed, searcher, "lift"), level),
            "decay": bootstrap_aggregates(acc["decay"], reps, _key(seed, searcher, "decay"), level),
            "n_pairs": acc["n_pairs"], "n_rejected_holdout": acc["n_rejected_holdout"],
            "rejected_share": acc["n_rejected_holdout"] / scored if scored else math.nan,
            "n_in_sample_rejected": acc["n_in_sample_rejected"], "n_missing": acc["n_missing"],
            "n_default_rejected": acc["n_default_rejected"], "n_unscaled": acc["n_unscaled"],
        }
        for what in ranked:
            out[searcher][what] = bootstrap_aggregates(acc[what], reps, _key(seed, searcher, what), level)
        for what in ("lift", "decay", *ranked):
            out[searcher][what]["wilcoxon_p"] = wilcoxon_p([v.mean() for v in acc[what]])
    for what in ("lift", "decay", *ranked):
        for searcher, adjusted in zip(out, holm([out[s][what]["wilcoxon_p"] for s in out])):
            out[searcher][what]["wilcoxon_holm_p"] = adjusted
    return out


def in_sample_scales(instances: Sequence[InstanceResults], budget: int) -> dict[str, float]:
    """``{instance: optimum - R_budget}``: the in-sample range that the normalised score divides by at ``budget``
    (the :class:`HoldoutResults` ``scale`` that puts out-of-sample differences in the units of the normalised
    score: 1 = the gap between random search's expected best and the best ever seen). Instances excluded from
    normalisation have none (absent)."""
    return {n.instance: float(n.optimum - n.random_best[0]) for n in normalise_all(instances, [budget]) if not n.excluded}


# ---------------------------------------------------------------------------------------------
# the summary table
# ---------------------------------------------------------------------------------------------

def score_table(normalised: Sequence[NormalisedInstance], searchers: Sequence[str], budget: int
                ) -> tuple[np.ndarray, list[str]]:
    """Complete-block table ``(N, k)`` of per-instance seed-mean normalised scores at ``budget``.

    Rows: the usable instances on which every one of ``searchers`` ran (their names returned too).
    """
    rows, names = [], []
    for n in normalised:
        if n.excluded or not all(s in n.scores for s in searchers):
            continue
        rows.append([float(n.at(s, budget).mean()) for s in searchers])
        names.append(n.instance)
    return np.array(rows, dtype=float).reshape(len(rows), len(searchers)), names


def aggregate_table(instances: Sequence[InstanceResults], budgets: Sequence[int], main_budget: int | None = None,
                    reps: int = 2000, seed: int = 0, level: float = 0.95, alpha: float = 0.05,
                    min_instances: int = 5, baseline: str | None = None) -> dict[str, Any]:
    """The suite summary (what ``summary.json`` holds): aggregates, ranks, tests, pairwise verdicts.

    instances: the suite; budgets: where to report (``main_budget`` defaults to the largest and is
    added if missing). Returns (plain dicts; pass through :func:`json_safe` before ``json.dumps``)::

        {"main_budget": B, "budgets": [...], "n_instances": N_usable, "instances": [...],
         "excluded": {instance: reason},
         "aggregate": {searcher: {"iqm", "iqm_ci": [lo, hi], "mean", "mean_ci", "mean_rank",
                                  "n_instances", "n_runs",
                                  "by_budget": {"<b>": {"iqm", "iqm_ci", "mean", "mean_ci", "mean_rank"}}}},
         "friedman_p": p or None, "cd": Nemenyi CD or None, "rank_instances": [...],
         "cd_groups": [[searcher, ...], ...],
         "by_budget": {"<b>": {"friedman_p", "cd", "rank_instances": n}},
         "pairwise": [{"a", "b", "n_instances", "diff_iqm", "diff_iqm_ci", "diff_mean", "diff_mean_ci",
                       "p_improvement", "p_improvement_ci", "wilcoxon_p", "wilcoxon_holm_p",
                       "wilcoxon_holm_baseline_p", "verdict"}],
         "settings": {...}}

    Aggregates use every usable instance a searcher ran on; ranks, Friedman and CD use the complete
    blocks (instances where every searcher ran); a pairwise comparison uses the instances where both
    ran. ``verdict``: :func:`verdict` on the CI of the IQM of the paired differences at the main
    budget (and at least ``min_instances`` instances). Wilcoxon p-values are Holm-corrected over
    all pairs (``wilcoxon_holm_p``) and, when ``baseline`` names a searcher that ran, over the pairs
    with the baseline only (``wilcoxon_holm_baseline_p``, the family of the question "does X beat the
    baseline?", ``k - 1`` tests; ``None`` on the other pairs).
    """
    b = sorted(set(int(x) for x in _budgets(budgets)) | ({int(main_budget)} if main_budget else set()))
    main = int(main_budget) if main_budget else b[-1]
    normalised = normalise_all(instances, b)
    usable = [n for n in normalised if not n.excluded]
    searchers = searchers_of(normalised)
    aggregate: dict[str, dict[str, Any]] = {}
    for s in searchers:
        agg = bootstrap_aggregates(_per_instance(usable, s), reps, _key(seed, s), level)
        column = {x: i for i, x in enumerate(b)}
        by_budget = {str(x): {"iqm": float(agg["iqm"][i]), "iqm_ci": [float(agg["iqm_ci"][0][i]), float(agg["iqm_ci"][1][i])],
                              "mean": float(agg["mean"][i]), "mean_ci": [float(agg["mean_ci"][0][i]), float(agg["mean_ci"][1][i])],
                              "mean_rank": math.nan} for x, i in column.items()}
        aggregate[s] = {**by_budget[str(main)], "n_instances": agg["n_instances"], "n_runs": agg["n_runs"],
                        "by_budget": by_budget}
    per_budget = {}
    for x in b:
        table, names = score_table(usable, searchers, x)
        ranks = mean_ranks(table) if names else np.full(len(searchers), np.nan)
        for s, r in zip(searchers, ranks):
            aggregate[s]["by_budget"][str(x)]["mean_rank"] = float(r)
            if x == main:
                aggregate[s]["mean_rank"] = float(r)
        cd = nemenyi_cd(len(searchers), len(names), alpha) if names else None
        per_budget[str(x)] = {"friedman_p": friedman_p(table), "cd": cd, "rank_instances": len(names),
                              "cd_groups": cd_groups(dict(zip(searchers, map(float, ranks))), cd) if names else []}
    _, main_names = score_table(usable, searchers, main)
    pairwise = []
    for a, c in combinations(searchers, 2):
        both = [n for n in usable if a in n.scores and c in n.scores]
        xa, xc = [n.at(a, main) for n in both], [n.at(c, main) for n in both]
        diff = paired_difference(xa, xc, reps, _key(seed, a, c, main), level)
        poi = probability_of_improvement(xa, xc, reps, _key(seed, a, c, main, "poi"), level)
        pairwise.append({"a": a, "b": c, "n_instances": len(both),
                         "diff_iqm": diff["iqm"], "diff_iqm_ci": diff["iqm_ci"],
                         "diff_mean": diff["mean"], "diff_mean_ci": diff["mean_ci"],
                         "p_improvement": poi["p"], "p_improvement_ci": poi["ci"],
                         "wilcoxon_p": wilcoxon_p(diff["differences"]),
                         "verdict": verdict(diff["iqm_ci"], a, c, len(both), min_instances)})
    for row, adjusted in zip(pairwise, holm([r["wilcoxon_p"] for r in pairwise])):
        row["wilcoxon_holm_p"] = adjusted
    family = [r for r in pairwise if baseline in (r["a"], r["b"])]
    for row in pairwise:
        row["wilcoxon_holm_baseline_p"] = None
    for row, adjusted in zip(family, holm([r["wilcoxon_p"] for r in family])):
        row["wilcoxon_holm_baseline_p"] = adjusted
    return {
        "main_budget": main, "budgets": b, "n_instances": len(usable), "instances": [n.instance for n in usable],
        "excluded": {n.instance: n.excluded for n in normalised if n.excluded},
        "aggregate": aggregate,
        "friedman_p": per_budget[str(main)]["friedman_p"], "cd": per_budget[str(main)]["cd"],
        "cd_groups": per_budget[str(main)]["cd_groups"], "rank_instances": main_names,
        "by_budget": per_budget, "pairwise": pairwise,
        "settings": {"reps": reps, "seed": seed, "level": level, "alpha": alpha, "min_instances": min_instances,
                     "baseline": baseline if family else None,
                     "bootstrap": "percentile; instances resampled with replacement, then seeds within each",
                     "normalised": "(best - R_b) / (optimum - R_b); R_b = random search's expected best of b draws"},
    }


# ---------------------------------------------------------------------------------------------
# strict JSON
# ---------------------------------------------------------------------------------------------

def _json_float(value: float) -> float | str | None:
    if math.isnan(value):
        return None
    if value == math.inf:
        return "inf"
    if value == -math.inf:
        return "-inf"
    return value


def _json_key(key: Any) -> str | int | float | bool | None:
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, float):
        converted = _json_float(key)
        return "nan" if converted is None else converted
    if key is None or isinstance(key, (str, int, bool)):
        return key
    return str(key)


def json_safe(obj: Any) -> Any:
    """A copy of ``obj`` that ``json.dumps(..., allow_nan=False)`` accepts.

    NaN -> ``None``; ``inf`` -> ``"inf"``; ``-inf`` -> ``"-inf"``; numpy scalars -> Python scalars;
    arrays, tuples, lists, sets (sorted when possible) -> lists; mappings -> dicts (keys: str/int/
    float/bool/None kept, non-finite float keys as strings, anything else ``str``); dataclasses ->
    dicts; paths and any other object -> ``str``.
    """
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        return _json_float(obj)
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()] if obj.ndim else json_safe(obj.item())
    if isinstance(obj, Mapping):
        return {_json_key(k): json_safe(v) for k, v in obj.items()}
    if is_dataclass(obj) and not isinstance(obj, type):
        return json_safe(asdict(obj))
    if isinstance(obj, (set, frozenset)):
        try:
            obj = sorted(obj)
        except TypeError:
            obj = list(obj)
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return str(obj)
