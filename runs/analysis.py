"""Sample-efficiency statistics of searcher runs (pure functions of the trial records).

A *run* is one searcher with one seed: its records in evaluation order. All
curves are ``(budget,)`` arrays indexed by the number of real evaluations spent
minus one; a run shorter than the budget carries its last value forward.

Conventions (maximisation; ``-inf`` = hard rejection):

* best-so-far ``b_t``: the running maximum of the scores.
* normalised score at a budget (Bayesmark): ``(best_known - b_t) / (best_known - random_t)``
  with ``random_t`` the median over seeds of random search's ``b_t``: 0 = the best
  score anyone found, 1 = random search, below 1 = better than random.
* evaluations to reach a target: the first ``t`` with ``b_t >= target`` (``inf`` if never).
* AUC: the mean over ``t`` of ``b_t`` rescaled to ``[0, 1]`` between the worst
  finite and the best known score (``-inf`` counts as 0): higher = found good
  configurations earlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from env.records import TrialRecord

Runs = Mapping[str, Mapping[int, Sequence[TrialRecord]]]
"""``{searcher: {seed: records in evaluation order}}``."""


def best_so_far(records: Sequence[TrialRecord], budget: int) -> np.ndarray:
    """``(budget,)`` running maximum of the scores (``-inf`` before the first finite one)."""
    scores = np.full(budget, -np.inf)
    ordered = sorted(records, key=lambda r: r.eval_index)[:budget]
    scores[: len(ordered)] = [r.score for r in ordered]
    return np.maximum.accumulate(scores)


def at_budget(curve: np.ndarray, budget: int) -> float:
    return float(curve[min(budget, curve.size) - 1])


def evals_to_reach(curve: np.ndarray, target: float) -> float:
    """1-based number of evaluations until ``curve >= target`` (``inf`` if never)."""
    hit = np.flatnonzero(curve >= target)
    return float(hit[0] + 1) if hit.size else math.inf


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile); -inf values are ranked lowest, not dropped."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return (math.nan, math.nan, math.nan)
    q = np.quantile(np.where(np.isneginf(array), -1e300, array), [0.5, 0.25, 0.75])
    return tuple(float(-np.inf) if v <= -1e299 else float(v) for v in q)


def bootstrap_median_ci(values: Sequence[float], seed: int = 0, n: int = 2000, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values``."""
    array = np.asarray(values, dtype=float)
    if array.size < 2 or not np.all(np.isfinite(array)):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    medians = np.median(array[rng.integers(0, array.size, (n, array.size))], axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


def wilcoxon_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired ``a - b`` (NaN when undefined)."""
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diff.size < 2 or not np.all(np.isfinite(diff)) or np.all(diff == 0):
        return math.nan
    return float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)


@dataclass
class Summary:
    """Per-searcher statistics of one comparison (see :func:`summarise`)."""

    searcher: str
    seeds: list[int]
    best_at: dict[int, tuple[float, float, float]]
    """budget -> (median, q25, q75) over seeds of the best score."""
    normalised_at: dict[int, float]
    """budget -> median over seeds of the normalised score (NaN without a random baseline)."""
    evals_to_target: dict[str, tuple[float, float]]
    """target name -> (median evaluations over seeds, fraction of seeds that reached it)."""
    auc: float
    rejected_fraction: float
    wall_s: float
    final: list[float]
    """best score at the full budget, per seed (seed order)."""
    vs_baseline_p: float = math.nan
    vs_baseline_ci: tuple[float, float] = (math.nan, math.nan)
    """bootstrap CI of the median paired difference to the baseline's final best."""


def targets(runs: Runs, budget: int, baseline: str | None) -> dict[str, float]:
    """Quality targets: the baseline's final best (median over seeds) and fractions of the best known."""
    finite = [r.score for seeds in runs.values() for records in seeds.values() for r in records if math.isfinite(r.score)]
    if not finite:
        return {}
    best, worst = max(finite), min(finite)
    out = {}
    if baseline in runs and runs[baseline]:
        out[f"{baseline} final"] = quantiles([at_budget(best_so_far(r, budget), budget) for r in runs[baseline].values()])[0]
    for share in (0.5, 0.9, 0.99):
        out[f"{int(share * 100)}% of range"] = worst + share * (best - worst)
    return {k: v for k, v in out.items() if math.isfinite(v)}


def summarise(runs: Runs, budget: int, checkpoints: Sequence[int] = (25, 50, 100, 200),
              baseline: str | None = "phased", reference: str = "random",
              wall: Mapping[str, Mapping[int, float]] | None = None) -> list[Summary]:
    """One :class:`Summary` per searcher in ``runs``."""
    points = sorted({c for c in checkpoints if c < budget} | {budget})
    finite = [r.score for seeds in runs.values() for recs in seeds.values() for r in recs if math.isfinite(r.score)]
    best_known = max(finite) if finite else math.nan
    worst = min(finite) if finite else math.nan
    curves = {name: {seed: best_so_far(recs, budget) for seed, recs in seeds.items()} for name, seeds in runs.items()}
    random_at = ({b: quantiles([at_budget(c, b) for c in curves[reference].values()])[0] for b in points}
                 if reference in curves and curves[reference] else {})
    goal = targets(runs, budget, baseline)
    out = []
    for name, seeds in curves.items():
        order = sorted(seeds)
        best_at = {b: quantiles([at_budget(seeds[s], b) for s in order]) for b in points}
        normalised = {}
        for b in points:
            rand = random_at.get(b, math.nan)
            if math.isfinite(best_known) and math.isfinite(rand) and best_known > rand:
                vals = [(best_known - at_budget(seeds[s], b)) / (best_known - rand) for s in order]
                normalised[b] = float(np.median(vals))
            else:
                normalised[b] = math.nan
        reach = {}
        for label, target in goal.items():
            evals = [evals_to_reach(seeds[s], target) for s in order]
            reach[label] = (float(np.median(evals)), float(np.mean(np.isfinite(evals))))
        span = best_known - worst if math.isfinite(best_known) and best_known > worst else 1.0
        auc = float(np.mean([np.mean(np.clip(np.where(np.isfinite(seeds[s]), (seeds[s] - worst) / span, 0.0), 0, 1))
                             for s in order])) if order else math.nan
        records = [r for s in order for r in runs[name][s]]
        out.append(Summary(
            searcher=name, seeds=order, best_at=best_at, normalised_at=normalised, evals_to_target=reach, auc=auc,
            rejected_fraction=float(np.mean([math.isinf(r.score) for r in records])) if records else math.nan,
            wall_s=float(sum((wall or {}).get(name, {}).get(s, 0.0) for s in order)) or float(sum(r.wall_time_s for r in records)),
            final=[at_budget(seeds[s], budget) for s in order],
        ))
    if baseline in curves:
        base = {s: at_budget(c, budget) for s, c in curves[baseline].items()}
        for summary in out:
            if summary.searcher == baseline:
                continue
            paired = [s for s in summary.seeds if s in base]
            mine = [at_budget(curves[summary.searcher][s], budget) for s in paired]
            theirs = [base[s] for s in paired]
            summary.vs_baseline_p = wilcoxon_p(mine, theirs)
            summary.vs_baseline_ci = bootstrap_median_ci(np.subtract(mine, theirs))
    return out
