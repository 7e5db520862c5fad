"""Per-instance normalisation of best-so-far curves against random search's expected best (pure, no I/O).

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""


from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from scipy.special import gammaln

Curves = Mapping[str, Mapping[int, np.ndarray]]
"""``{searcher: {seed: (budget,) best-so-far curve}}``."""


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

def as_budgets(budgets: int | Sequence[int] | np.ndarray) -> np.ndarray:
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
    b = as_budgets(budgets).astype(float)
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
    b = as_budgets(budgets)
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


