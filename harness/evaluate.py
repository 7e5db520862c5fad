"""``evaluate``: the loop's only currency. Base + 1.5x-fee stress backtests -> one scalar.

The strategy is injected (``fit_fn``, ``portfolio_fn``; see :mod:`harness.plan`),
never imported. The harness

1. seals the candles at the split's ``search_end`` (:meth:`data.candles.Candles.sealed`:
   no later day, no token that lists later, no metadata that regenerates the future; a
   problem instance brings its own :class:`~harness.split.Split`, the default is the
   seed's 2021-2025 protocol) and cuts them to the window plus warm-up,
2. asks the strategy for bulk signals and a plan,
3. audits causality: at :data:`~harness.contract.AUDIT_DAYS` days it recomputes
   signals and plan from data truncated at that day and rejects any difference
   (:class:`LookaheadError`),
4. runs the base and stress backtests with pinned fees and capital and scores them.

Only :func:`evaluate_holdout`, called by the run drivers after a search has
ended, scores the split's holdout window (and sees nothing after its end).
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from data.candles import Candles
from harness.backtest import run_backtest
from harness.contract import AUDIT_DAYS, FEE_RATE, FEE_STRESS_MULTIPLIER, INITIAL_CAPITAL
from harness.integrity import contract_id
from harness.metrics import compute_metrics, ensemble_score
from harness.plan import FitFn, Plan, PortfolioFn, PlanError, check_plan, check_signals
from harness.split import DEFAULT_SPLIT, Split, WindowError, as_date


class HarnessError(RuntimeError):
    """The harness produced something impossible (a NaN metric): a bug, never a score."""


class LookaheadError(PlanError):
    """The strategy's output on a day changed when later data was removed."""




@dataclass(frozen=True)
class EvalResult:
    """One evaluation: the scalar score, both metric sets, and what produced them.

    ``score`` is ``-inf`` for a hard rejection. ``first_day``/``last_day`` are the
    scored days (ISO dates); ``contract`` is ``"<version>+<source fingerprint>"``.
    """

    score: float
    base: dict[str, float]
    stress: dict[str, float]
    contract: str
    first_day: str
    last_day: str
    holdout: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rejected(self) -> bool:
        return self.score == float("-inf")

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; ``-inf`` is written as the string ``"-inf"``."""
        return {
            "score": "-inf" if self.rejected else self.score,
            "base": self.base,
            "stress": self.stress,
            "contract": self.contract,
            "window": [self.first_day, self.last_day],
            "holdout": self.holdout,
        }


_VIEWS: "OrderedDict[tuple, Candles]" = OrderedDict()
VIEWS_MAX = 64
VIEWS_MAX_BYTES = 512 * 2**20


def _view(candles: Candles, how: str, *args: Any) -> Candles:
    """``candles.<how>(*args)`` (``sealed``, ``between``, ``head``), memoised by the data's fingerprint.

    Repeated evaluations hand strategies the very same object, so their caches (keyed by
    fingerprints) hit and no view is rebuilt or re-hashed; at most :data:`VIEWS_MAX` views and
    :data:`VIEWS_MAX_BYTES` of their price matrices are kept (least recently used go first).
    """
    key = (candles.fingerprint, how, *args)
    if key not in _VIEWS:
        _VIEWS[key] = getattr(candles, how)(*args)
        while len(_VIEWS) > VIEWS_MAX or (len(_VIEWS) > 1 and sum(_nbytes(v) for v in _VIEWS.values()) > VIEWS_MAX_BYTES):
            _VIEWS.popitem(last=False)
    _VIEWS.move_to_end(key)
    return _VIEWS[key]


def _nbytes(candles: Candles) -> int:
    return 5 * candles.close.nbytes


def _audit_days(candles: Candles, first: int) -> tuple[int, ...]:
    """Deterministic audit days among the scored days ``first..n-1`` (seeded by the data)."""
    return _audit_day_list(candles.fingerprint, candles.n_days, first)


@lru_cache(maxsize=256)
def _audit_day_list(fingerprint: str, n_days: int, first: int) -> tuple[int, ...]:
    rng = np.random.default_rng(int(fingerprint[:16], 16))
    scored = n_days - first
    if scored <= 0:
        return ()
    return tuple(sorted({first + int(d) for d in rng.integers(0, scored, size=AUDIT_DAYS)}))


def _rows_equal(a: np.ndarray, b: np.ndarray) -> bool:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape == b.shape and a.tobytes() == b.tobytes():  # identical bits: equal under any tolerance
        return True
    return bool(np.allclose(a, b, rtol=1e-7, atol=1e-10, equal_nan=True))


def _changed(full: Mapping[str, np.ndarray], early: Mapping[str, np.ndarray], names: Sequence[str], t: int) -> str | None:
    """The first of ``names`` whose row ``t`` differs between ``full`` and ``early`` (None if all agree).

    All rows are compared in one :func:`_rows_equal` call; only on a mismatch is the culprit searched.
    """
    a = np.concatenate([np.ravel(np.asarray(full[n][t], float)) for n in names])
    b = np.concatenate([np.ravel(np.asarray(early[n][t], float)) for n in names])
    if a.shape == b.shape and _rows_equal(a, b):
        return None
    return next(n for n in names if not _rows_equal(full[n][t], early[n][t]))


def _audit(params: Any, candles: Candles, first: int, fit_fn: FitFn, portfolio_fn: PortfolioFn,
           signals: dict, plan: Plan) -> None:
    fields = ("weights", "momentum", "priority", "cooldown")
    for t in _audit_days(candles, first):
        prefix = _view(candles, "head", t + 1)
        early = fit_fn(prefix, params)
        check_signals(early, t + 1)
        name = _changed(signals, early, list(signals), t)
        if name is not None:
            raise LookaheadError(
                f"fit_fn looks ahead: signal {name!r} on {candles.dates[t]} changes when data after that day is removed"
            )
        early_plan = portfolio_fn(early, params)
        name = _changed(vars(plan), vars(early_plan), fields, t)
        if name is not None:
            raise LookaheadError(
                f"portfolio_fn looks ahead: plan.{name} on {candles.dates[t]} changes when data after that day is removed"
            )


def _score_window(params: Any, candles: Candles, fit_fn: FitFn, portfolio_fn: PortfolioFn,
                  start: dt.date, end: dt.date, warmup_days: int, holdout: bool) -> EvalResult:
    if end < start:
        raise WindowError(f"window end {end} is before its start {start}")
    visible = _view(candles, "between", start - dt.timedelta(days=int(warmup_days)), end)
    first = int(np.searchsorted(visible.dates, np.datetime64(start, "D")))
    if first >= visible.n_days:
        raise WindowError(f"{candles.name}: no candles between {start} and {end}")

    signals = dict(fit_fn(visible, params))
    check_signals(signals, visible.n_days)
    plan = portfolio_fn(signals, params)
    check_plan(plan, visible.shape)
    _audit(params, visible, first, fit_fn, portfolio_fn, signals, plan)

    scored_plan, scored_close = plan.rows(first), visible.close[first:]
    base = compute_metrics(run_backtest(scored_plan, scored_close, FEE_RATE, INITIAL_CAPITAL))
    stress = compute_metrics(
        run_backtest(scored_plan, scored_close, FEE_RATE * FEE_STRESS_MULTIPLIER, INITIAL_CAPITAL)
    )
    score = ensemble_score(base, stress)
    for name, value in [("score", score), *base.items(), *(("stress." + k, v) for k, v in stress.items())]:
        if isinstance(value, float) and math.isnan(value):
            raise HarnessError(f"{name} is NaN for {candles.name} {start}..{end}: a bug, not a score")
    return EvalResult(
        score=score,
        base=base,
        stress=stress,
        contract=contract_id(),
        first_day=str(visible.dates[first]),
        last_day=str(visible.dates[-1]),
        holdout=holdout,
    )


def evaluate(params: Any, candles: Candles, fit_fn: FitFn, portfolio_fn: PortfolioFn, *,
             split: Split = DEFAULT_SPLIT, start: object | None = None, end: object | None = None,
             warmup_days: int | None = None) -> EvalResult:
    """Score ``params`` on the search window of ``split`` (or on ``start..end`` inside it).

    The candles are sealed at ``split.search_end`` before the strategy sees them
    (:meth:`~data.candles.Candles.sealed`); asking for an ``end`` beyond it raises
    :class:`WindowError`. ``start``/``end`` (inclusive ISO dates or ``date``) default to
    the split's search window, ``warmup_days`` (calendar days of history before ``start``
    that fits may use) to the split's. Fee rate and capital are the contract's
    (:data:`FEE_RATE`, :data:`INITIAL_CAPITAL`), whatever ``params`` holds.
    """
    start = split.search_start if start is None else as_date(start)
    end = split.search_end if end is None else as_date(end)
    warmup = split.warmup_days if warmup_days is None else warmup_days
    if end > split.search_end:
        raise WindowError(f"end {end} reaches into the sealed holdout (after {split.search_end}); use the search window")
    if warmup < 0:
        raise WindowError("warmup_days must be >= 0")
    return _score_window(params, _view(candles, "sealed", split.search_end), fit_fn, portfolio_fn, start, end, warmup,
                         holdout=False)


def evaluate_holdout(params: Any, candles: Candles, fit_fn: FitFn, portfolio_fn: PortfolioFn, *,
                     split: Split = DEFAULT_SPLIT) -> EvalResult:
    """Score ``params`` on the split's holdout window only (``holdout_start..holdout_end``).

    The candles are sealed at ``holdout_end`` (the data's last day when None); the fits may use
    ``split.warmup_days`` before ``holdout_start`` (search-window days included). For the run
    drivers only, after a search has finished; never hand it to a searcher.
    """
    start = split.holdout_start
    if candles.n_days == 0 or candles.dates[-1] < np.datetime64(start, "D"):
        raise WindowError(f"{candles.name} has no data after {split.search_end}: no holdout to score")
    end = split.holdout_end or dt.date.fromisoformat(str(candles.dates[-1]))
    return _score_window(params, _view(candles, "sealed", end), fit_fn, portfolio_fn, start, end, split.warmup_days,
                         holdout=True)
