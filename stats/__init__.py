"""Statistics for benchmarking searchers over many problem instances (pure functions, no I/O).

A *problem instance* is one market universe + search window + its own holdout. The instance is
the unit of replication: optimiser seeds are averaged within an instance first, and every
confidence interval resamples instances (and seeds within them). Definitions, formulas and the
reasons behind them: ``docs/reference/statistics.md``. Modules: :mod:`stats.normalise` (the data model and
per-instance normalisation), :mod:`stats.bootstrap` (intervals), :mod:`stats.ranks` (ranks and tests),
:mod:`stats.summaries` (ECDFs, decay, the summary table), :mod:`stats.jsonsafe` (strict JSON).

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

from stats.normalise import (
    Curves,
    InstanceResults,
    NormalisedInstance,
    HoldoutResults,
    pool_rank,
    as_budgets,
    expected_best_of_random,
    expected_best_of_subset,
    normalise_instance,
    normalise_all,
)
from stats.bootstrap import (
    VERDICT_CANNOT_TELL,
    iqm,
    seed_key,
    bootstrap_aggregates,
    paired_difference,
    probability_of_improvement,
    performance_profile,
    verdict,
)
from stats.ranks import mean_ranks, friedman_p, nemenyi_q, nemenyi_cd, holm, wilcoxon_p, cd_groups
from stats.summaries import (
    DEFAULT_LEVELS,
    per_instance,
    ecdf_targets,
    runtimes,
    runtime_ecdf,
    searchers_of,
    normalised_vs_budget,
    holdout_summary,
    in_sample_scales,

)
from stats.comparison import (
    BudgetAggregate,
    BudgetTests,
    Pairwise,
    SearcherAggregate,
    SuiteSummary,
    aggregate_table,
    score_table,
)
from stats.jsonsafe import json_safe

__all__ = [
    "Curves",
    "InstanceResults",
    "NormalisedInstance",
    "HoldoutResults",
    "pool_rank",
    "as_budgets",
    "expected_best_of_random",
    "expected_best_of_subset",
    "normalise_instance",
    "normalise_all",
    "VERDICT_CANNOT_TELL",
    "iqm",
    "seed_key",
    "bootstrap_aggregates",
    "paired_difference",
    "probability_of_improvement",
    "performance_profile",
    "verdict",
    "mean_ranks",
    "friedman_p",
    "nemenyi_q",
    "nemenyi_cd",
    "holm",
    "wilcoxon_p",
    "cd_groups",
    "DEFAULT_LEVELS",
    "ecdf_targets",
    "runtimes",
    "runtime_ecdf",
    "searchers_of",
    "normalised_vs_budget",
    "holdout_summary",
    "in_sample_scales",
    "score_table", "BudgetAggregate", "BudgetTests", "Pairwise", "SearcherAggregate", "SuiteSummary", "per_instance",
    "aggregate_table",
    "json_safe",
]
