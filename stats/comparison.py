"""The summary of a searcher comparison over instances (what ``summary.json`` holds), as dataclasses (pure, no I/O).

:func:`aggregate_table` takes the suite's :class:`~stats.normalise.InstanceResults` and returns a
:class:`SuiteSummary`: per searcher a :class:`SearcherAggregate` (IQM and mean normalised score with bootstrap
CIs, mean rank, at the main budget and at every reported budget as :class:`BudgetAggregate`), ranks and tests per
budget (:class:`BudgetTests`), and every pair of searchers compared (:class:`Pairwise`).
:meth:`SuiteSummary.to_json` gives the layout of ``summary.json`` (budgets as string keys; pass it through
:func:`stats.json_safe` before ``json.dumps``); :meth:`SuiteSummary.from_json` reads it back.

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from itertools import combinations
from typing import Any, Mapping, Sequence

import numpy as np

from stats.bootstrap import bootstrap_aggregates, paired_difference, probability_of_improvement, seed_key, verdict
from stats.normalise import InstanceResults, NormalisedInstance, as_budgets, normalise_all
from stats.ranks import cd_groups, friedman_p, holm, mean_ranks, nemenyi_cd, wilcoxon_p
from stats.summaries import per_instance, searchers_of

Interval = list[float]
"""``[low, high]`` of a percentile bootstrap interval (NaN ends where it is undefined)."""


@dataclass(frozen=True)
class BudgetAggregate:
    """One searcher's normalised score over instances after ``b`` real evaluations (seed means per instance).

    ``iqm``/``mean`` with their 95% bootstrap intervals; ``mean_rank`` over the complete blocks (instances where
    every searcher ran; 1 = best; NaN when there are none)."""

    iqm: float
    iqm_ci: Interval
    mean: float
    mean_ci: Interval
    mean_rank: float


@dataclass(frozen=True)
class SearcherAggregate(BudgetAggregate):
    """One searcher's aggregate at the main budget (the inherited fields), its counts, and every reported budget."""

    n_instances: int = 0
    """Usable instances the searcher ran on."""
    n_runs: int = 0
    """Its instance x seed runs on them."""
    by_budget: dict[int, BudgetAggregate] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**{f.name: getattr(self, f.name) for f in fields(BudgetAggregate)}, "n_instances": self.n_instances,
                "n_runs": self.n_runs, "by_budget": {str(b): asdict(a) for b, a in self.by_budget.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SearcherAggregate":
        by_budget = {int(b): BudgetAggregate(**a) for b, a in data["by_budget"].items()}
        return cls(**{k: v for k, v in data.items() if k != "by_budget"}, by_budget=by_budget)


@dataclass(frozen=True)
class BudgetTests:
    """Ranks and tests over the complete blocks at one budget: Friedman p, Nemenyi critical difference (ranks),
    the number of blocks, and the groups of searchers within one CD of each other."""

    friedman_p: float | None
    cd: float | None
    rank_instances: int
    cd_groups: list[list[str]]


@dataclass(frozen=True)
class Pairwise:
    """Searcher ``a`` against ``b`` at the main budget, over the instances where both ran.

    ``diff_*``: IQM and mean of the per-instance differences ``a - b`` of seed-mean normalised scores, with 95%
    bootstrap intervals; ``p_improvement``: P(a run of ``a`` beats a run of ``b`` on the same instance), averaged
    over instances, with its interval; ``wilcoxon_p``: signed-rank test of the differences, Holm-corrected over
    all pairs (``wilcoxon_holm_p``) and over the pairs with the baseline only (``wilcoxon_holm_baseline_p``,
    None on the other pairs); ``verdict``: :func:`stats.verdict` on the IQM interval."""

    a: str
    b: str
    n_instances: int
    diff_iqm: float
    diff_iqm_ci: Interval
    diff_mean: float
    diff_mean_ci: Interval
    p_improvement: float
    p_improvement_ci: Interval
    wilcoxon_p: float | None
    verdict: str
    wilcoxon_holm_p: float | None = None
    wilcoxon_holm_baseline_p: float | None = None

    def oriented(self, first: str) -> "Pairwise":
        """This comparison read as ``first - other``: itself when ``first`` is ``a``; else ``a`` and ``b`` swapped,
        the differences and their intervals negated and ``P(A > B)`` complemented (the percentile intervals are
        symmetric under the swap: the same replicates give ``-[hi, lo]`` and ``1 - [hi, lo]``; Mann-Whitney counts
        ties as one half, so ``P(B > A) = 1 - P(A > B)``). The p-values and the verdict, which names the winner,
        are unchanged. The report reads every comparison with the baseline as "searcher - baseline"."""
        if first == self.a:
            return self
        if first != self.b:
            raise ValueError(f"{first!r} is neither side of the pair {self.a!r} vs {self.b!r}")
        return replace(self, a=self.b, b=self.a, diff_iqm=-self.diff_iqm, diff_iqm_ci=_negated(self.diff_iqm_ci),
                       diff_mean=-self.diff_mean, diff_mean_ci=_negated(self.diff_mean_ci),
                       p_improvement=1.0 - self.p_improvement, p_improvement_ci=_complement(self.p_improvement_ci))


def _negated(pair: Sequence[float]) -> Interval:
    return [-float(pair[1]), -float(pair[0])]


def _complement(pair: Sequence[float]) -> Interval:
    return [1.0 - float(pair[1]), 1.0 - float(pair[0])]


@dataclass(frozen=True)
class SuiteSummary:
    """A comparison's statistics over instances (:func:`aggregate_table`).

    ``main_budget`` and the reported ``budgets`` (real evaluations); ``instances``: the usable ones (``excluded``:
    the others, with the reason); ``aggregate``: per searcher; ``friedman_p``, ``cd``, ``cd_groups`` and
    ``rank_instances`` (the complete blocks' names) at the main budget, ``by_budget`` at each budget;
    ``pairwise``: every pair of searchers; ``settings``: the bootstrap and test settings."""

    main_budget: int
    budgets: list[int]
    n_instances: int
    instances: list[str]
    excluded: dict[str, str]
    aggregate: dict[str, SearcherAggregate]
    friedman_p: float | None
    cd: float | None
    cd_groups: list[list[str]]
    rank_instances: list[str]
    by_budget: dict[int, BudgetTests]
    pairwise: list[Pairwise]
    settings: dict[str, Any]

    @property
    def baseline(self) -> str | None:
        """The baseline the pairwise Holm family was formed against (None: no baseline ran)."""
        return self.settings.get("baseline")

    def against(self, baseline: str) -> list[Pairwise]:
        """Every comparison with ``baseline``, read as "searcher - baseline"."""
        return [p.oriented(p.b if p.a == baseline else p.a) for p in self.pairwise if baseline in (p.a, p.b)]

    def to_json(self) -> dict[str, Any]:
        """The layout of ``summary.json`` (string budget keys; non-finite floats still to be made strict)."""
        return {"main_budget": self.main_budget, "budgets": list(self.budgets), "n_instances": self.n_instances,
                "instances": list(self.instances), "excluded": dict(self.excluded),
                "aggregate": {s: a.to_json() for s, a in self.aggregate.items()},
                "friedman_p": self.friedman_p, "cd": self.cd, "cd_groups": self.cd_groups,
                "rank_instances": list(self.rank_instances),
                "by_budget": {str(b): asdict(t) for b, t in self.by_budget.items()},
                "pairwise": [asdict(p) for p in self.pairwise], "settings": dict(self.settings)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "SuiteSummary":
        """Read back the statistics part of a ``summary.json`` (strict JSON: ``None`` where a float was NaN)."""
        def number(value: Any) -> float:
            return math.nan if value is None else float(value)

        def interval(value: Any) -> Interval:
            return [number(v) for v in value]

        def budget_aggregate(entry: Mapping[str, Any]) -> dict[str, Any]:
            return {"iqm": number(entry["iqm"]), "iqm_ci": interval(entry["iqm_ci"]), "mean": number(entry["mean"]),
                    "mean_ci": interval(entry["mean_ci"]), "mean_rank": number(entry["mean_rank"])}

        aggregate = {s: SearcherAggregate(**budget_aggregate(a), n_instances=a["n_instances"], n_runs=a["n_runs"],
                                          by_budget={int(b): BudgetAggregate(**budget_aggregate(x))
                                                     for b, x in a["by_budget"].items()})
                     for s, a in data["aggregate"].items()}
        pairwise = [Pairwise(**{**p, **{k: number(p[k]) for k in ("diff_iqm", "diff_mean", "p_improvement")},
                                **{k: interval(p[k]) for k in ("diff_iqm_ci", "diff_mean_ci", "p_improvement_ci")}})
                    for p in data["pairwise"]]
        return cls(main_budget=int(data["main_budget"]), budgets=[int(b) for b in data["budgets"]],
                   n_instances=int(data["n_instances"]), instances=list(data["instances"]),
                   excluded=dict(data["excluded"]), aggregate=aggregate, friedman_p=data["friedman_p"],
                   cd=data["cd"], cd_groups=data["cd_groups"], rank_instances=list(data["rank_instances"]),
                   by_budget={int(b): BudgetTests(**t) for b, t in data["by_budget"].items()},
                   pairwise=pairwise, settings=dict(data["settings"]))


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
                    min_instances: int = 5, baseline: str | None = None) -> SuiteSummary:
    """The suite summary (what ``summary.json`` holds, :meth:`SuiteSummary.to_json`): aggregates, ranks, tests,
    pairwise verdicts.

    instances: the suite; budgets: where to report (``main_budget`` defaults to the largest and is added if
    missing). Aggregates use every usable instance a searcher ran on; ranks, Friedman and CD use the complete
    blocks (instances where every searcher ran); a pairwise comparison uses the instances where both ran.
    ``verdict``: :func:`stats.verdict` on the CI of the IQM of the paired differences at the main budget (and at
    least ``min_instances`` instances). Wilcoxon p-values are Holm-corrected over all pairs and, when ``baseline``
    names a searcher that ran, over the pairs with the baseline only (the family of the question "does X beat the
    baseline?", ``k - 1`` tests). Replicates are seeded from ``seed``, the searcher names and the budget, so the
    same inputs give the same summary whatever their order.
    """
    b = sorted(set(int(x) for x in as_budgets(budgets)) | ({int(main_budget)} if main_budget else set()))
    main = int(main_budget) if main_budget else b[-1]
    normalised = normalise_all(instances, b)
    usable = [n for n in normalised if not n.excluded]
    searchers = searchers_of(normalised)
    per_budget: dict[int, BudgetTests] = {}
    ranks_at: dict[int, dict[str, float]] = {}
    for x in b:
        table, names = score_table(usable, searchers, x)
        ranks = mean_ranks(table) if names else np.full(len(searchers), np.nan)
        ranks_at[x] = {s: float(r) for s, r in zip(searchers, ranks)}
        cd = nemenyi_cd(len(searchers), len(names), alpha) if names else None
        per_budget[x] = BudgetTests(friedman_p(table), cd, len(names),
                                    cd_groups(dict(zip(searchers, map(float, ranks))), cd) if names else [])
    aggregate: dict[str, SearcherAggregate] = {}
    for s in searchers:
        agg = bootstrap_aggregates(per_instance(usable, s), reps, seed_key(seed, s), level)
        by_budget = {x: BudgetAggregate(float(agg["iqm"][i]), [float(agg["iqm_ci"][0][i]), float(agg["iqm_ci"][1][i])],
                                        float(agg["mean"][i]), [float(agg["mean_ci"][0][i]), float(agg["mean_ci"][1][i])],
                                        ranks_at[x][s]) for i, x in enumerate(b)}
        aggregate[s] = SearcherAggregate(**asdict(by_budget[main]), n_instances=agg["n_instances"],
                                         n_runs=agg["n_runs"], by_budget=by_budget)
    _, main_names = score_table(usable, searchers, main)
    pairs = []
    for a, c in combinations(searchers, 2):
        both = [n for n in usable if a in n.scores and c in n.scores]
        xa, xc = [n.at(a, main) for n in both], [n.at(c, main) for n in both]
        diff = paired_difference(xa, xc, reps, seed_key(seed, a, c, main), level)
        poi = probability_of_improvement(xa, xc, reps, seed_key(seed, a, c, main, "poi"), level)
        pairs.append(Pairwise(a, c, len(both), diff["iqm"], diff["iqm_ci"], diff["mean"], diff["mean_ci"], poi["p"],
                              poi["ci"], wilcoxon_p(diff["differences"]),
                              verdict(diff["iqm_ci"], a, c, len(both), min_instances)))
    in_family = [baseline in (p.a, p.b) for p in pairs]
    family_holm = iter(holm([p.wilcoxon_p for p, member in zip(pairs, in_family) if member]))
    pairwise = [replace(p, wilcoxon_holm_p=all_holm, wilcoxon_holm_baseline_p=next(family_holm) if member else None)
                for p, all_holm, member in zip(pairs, holm([p.wilcoxon_p for p in pairs]), in_family)]
    return SuiteSummary(
        main_budget=main, budgets=b, n_instances=len(usable), instances=[n.instance for n in usable],
        excluded={n.instance: n.excluded for n in normalised if n.excluded}, aggregate=aggregate,
        friedman_p=per_budget[main].friedman_p, cd=per_budget[main].cd, cd_groups=per_budget[main].cd_groups,
        rank_instances=main_names, by_budget=per_budget, pairwise=pairwise,
        settings={"reps": reps, "seed": seed, "level": level, "alpha": alpha, "min_instances": min_instances,
                  "baseline": baseline if any(in_family) else None,
                  "bootstrap": "percentile; instances resampled with replacement, then seeds within each",
                  "normalised": "(best - R_b) / (optimum - R_b); R_b = random search's expected best of b draws"})
