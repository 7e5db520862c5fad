"""Ranks and tests over instances: mean ranks, Friedman, Nemenyi critical difference, Holm, Wilcoxon (pure, no I/O).

Conventions and definitions: the package docstring (:mod:`stats`) and ``docs/reference/statistics.md``.
"""


from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
from scipy import stats as sps

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


