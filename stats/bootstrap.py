"""Hierarchical bootstrap over instances and seeds: IQM, aggregate intervals, paired differences, probability of improvement, performance profiles, verdicts (pure, no I/O).

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""


from __future__ import annotations

import math
import zlib
from typing import Any, Callable, Sequence

import numpy as np
from scipy import stats as sps

VERDICT_CANNOT_TELL = "the data cannot tell"


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


def seed_key(*parts: Any) -> list[int]:
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


