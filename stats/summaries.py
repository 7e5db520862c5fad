"""Summaries over instances: runtime ECDFs, normalised score vs budget, out-of-sample decay, (pure, no I/O); the comparison's summary table is :mod:`stats.comparison`.

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""


from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from stats.bootstrap import (
    bootstrap_aggregates,
    seed_key,
)
from stats.normalise import (
    HoldoutResults,
    InstanceResults,
    NormalisedInstance,
    as_budgets,
    normalise_all,
    pool_rank,
)
from stats.ranks import holm, wilcoxon_p

DEFAULT_LEVELS = (0.0, 0.5, 0.9, 0.99)
"""Runtime-ECDF targets in normalised units at the full budget (see :func:`ecdf_targets`)."""


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

def per_instance(normalised: Sequence[NormalisedInstance], searcher: str) -> list[np.ndarray]:
    """The ``(seeds, budgets)`` normalised scores of ``searcher`` on each usable instance it ran on."""
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
    b = as_budgets(budgets)
    normalised = normalise_all(instances, b)
    out = {}
    for searcher in searchers_of(normalised):
        agg = bootstrap_aggregates(per_instance(normalised, searcher), reps, seed_key(seed, searcher), level)
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
            "lift": bootstrap_aggregates(acc["lift"], reps, seed_key(seed, searcher, "lift"), level),
            "decay": bootstrap_aggregates(acc["decay"], reps, seed_key(seed, searcher, "decay"), level),
            "n_pairs": acc["n_pairs"], "n_rejected_holdout": acc["n_rejected_holdout"],
            "rejected_share": acc["n_rejected_holdout"] / scored if scored else math.nan,
            "n_in_sample_rejected": acc["n_in_sample_rejected"], "n_missing": acc["n_missing"],
            "n_default_rejected": acc["n_default_rejected"], "n_unscaled": acc["n_unscaled"],
        }
        for what in ranked:
            out[searcher][what] = bootstrap_aggregates(acc[what], reps, seed_key(seed, searcher, what), level)
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
