"""Per-instance sample-efficiency statistics of searcher runs (pure functions of the trial records).

A *run* is one searcher with one seed on one problem instance: its records in evaluation order.
Curves are ``(budget,)`` arrays indexed by the number of real evaluations spent minus one; a run
shorter than the budget carries its last value forward. Statistics over instances (normalised
scores, confidence intervals, ranks, tests) are in :mod:`stats`.

Conventions (maximisation; ``-inf`` = hard rejection):

* best-so-far ``b_t``: the running maximum of the scores.
* evaluations to reach a target: the first ``t`` with ``b_t >= target`` (``inf`` if never).
* AUC: the mean over ``t`` of ``b_t`` rescaled to ``[0, 1]`` between the worst finite and the best
  score seen on the instance (``-inf`` counts as 0): higher = found good configurations earlier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

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


def quantiles(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, 25th, 75th percentile); -inf values are ranked lowest, not dropped."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return (math.nan, math.nan, math.nan)
    q = np.quantile(np.where(np.isneginf(array), -1e300, array), [0.5, 0.25, 0.75])
    return tuple(float(-np.inf) if v <= -1e299 else float(v) for v in q)


@dataclass
class Summary:
    """Per-searcher statistics of one instance (see :func:`summarise`)."""

    searcher: str
    seeds: list[int]
    best_at: dict[int, tuple[float, float, float]]
    """budget -> (median, q25, q75) over seeds of the best score."""
    auc: float
    rejected_fraction: float
    wall_s: float
    final: list[float]
    """best score at the full budget, per seed (seed order)."""


def summarise(runs: Runs, budget: int, checkpoints: Sequence[int] = (25, 50, 100, 200),
              wall: Mapping[str, Mapping[int, float]] | None = None) -> list[Summary]:
    """One :class:`Summary` per searcher in ``runs`` (one instance)."""
    points = sorted({c for c in checkpoints if c < budget} | {budget})
    finite = [r.score for seeds in runs.values() for recs in seeds.values() for r in recs if math.isfinite(r.score)]
    best_known = max(finite) if finite else math.nan
    worst = min(finite) if finite else math.nan
    curves = {name: {seed: best_so_far(recs, budget) for seed, recs in seeds.items()} for name, seeds in runs.items()}
    out = []
    for name, seeds in curves.items():
        order = sorted(seeds)
        span = best_known - worst if math.isfinite(best_known) and best_known > worst else 1.0
        auc = float(np.mean([np.mean(np.clip(np.where(np.isfinite(seeds[s]), (seeds[s] - worst) / span, 0.0), 0, 1))
                             for s in order])) if order else math.nan
        records = [r for s in order for r in runs[name][s]]
        out.append(Summary(
            searcher=name, seeds=order, best_at={b: quantiles([at_budget(seeds[s], b) for s in order]) for b in points},
            auc=auc, rejected_fraction=float(np.mean([math.isinf(r.score) for r in records])) if records else math.nan,
            wall_s=float(sum((wall or {}).get(name, {}).get(s, 0.0) for s in order)) or float(sum(r.wall_time_s for r in records)),
            final=[at_budget(seeds[s], budget) for s in order],
        ))
    return out
