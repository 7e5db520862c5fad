"""The frozen evaluation contract. See ``program.md`` and ``docs/CONTRACT.md``.

Public surface: :func:`evaluate` (a split's search window), :func:`evaluate_holdout`
(its holdout, post-search only), :class:`Split` and :data:`DEFAULT_SPLIT`, :class:`Plan`,
:func:`ensemble_score`, the constants in :mod:`harness.contract`, and the bluechip
baseline in :mod:`harness.baseline`.
The harness never imports the strategy: it is injected as ``fit_fn`` and
``portfolio_fn``.
"""

from harness.contract import CONTRACT_VERSION, FEE_RATE, FEE_STRESS_MULTIPLIER, INITIAL_CAPITAL, SEARCH_END, SEARCH_START, WARMUP_DAYS
from harness.evaluate import EvalResult, HarnessError, LookaheadError, evaluate, evaluate_holdout
from harness.metrics import ensemble_score
from harness.plan import Plan, PlanError
from harness.split import DEFAULT_SPLIT, Split, WindowError

__all__ = [
    "CONTRACT_VERSION", "FEE_RATE", "FEE_STRESS_MULTIPLIER", "INITIAL_CAPITAL", "SEARCH_END", "SEARCH_START",
    "WARMUP_DAYS", "EvalResult", "HarnessError", "LookaheadError", "WindowError", "evaluate", "evaluate_holdout",
    "ensemble_score", "Plan", "PlanError", "DEFAULT_SPLIT", "Split",
]
