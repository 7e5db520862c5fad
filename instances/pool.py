"""The random pool of an instance: the same seeded uniform configurations, evaluated by the real harness.

Every instance of a suite is evaluated at :data:`POOL_SIZE` uniform random points of its space (drawn
with ``SearchSpace.sample`` on ``default_rng(POOL_SEED)``, so every instance sees the same points) plus
the space's defaults (the users' Loop 3 starting point). The pool answers three questions:

* how hard the instance is (share of ``-inf``, median and best of random configurations: the suite's
  description table, ``python -m runs.instances --describe``);
* what random search is expected to reach at each budget (the random reference of the normalised
  score in the benchmark statistics);
* what real landscapes look like (the first rows of the emulator datasets).

The same points scored on each instance's holdout (``<suite>.holdout-pool.parquet``, built by the run drivers'
tooling, ``python -m runs.instances --suite S --holdout-pool``; never read by a searcher) place a winner's holdout
score among random configurations' (``stats.pool_rank``), one scale on every instance.

Rows are stored beside the suite file (``<suite>.pool.parquet``), one per (instance, configuration),
with the instance's fingerprint and the contract id that produced them: a row is reused only when both
still match, so editing the data, the instance or the harness recomputes instead of serving stale
scores. A rejection keeps its reason (:func:`rejection_reason`).
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from harness import EvalResult, evaluate_holdout
from harness.contract import REJECT_ANNUALIZED_BELOW
from harness.metrics import ensemble_score
from harness.integrity import contract_id
from instances.instance import Instance
from instances.problem import Problem
from strategy.diskcache import no_writes
from strategy.space import SearchSpace

POOL_SIZE = 200
POOL_SEED = 0
DEFAULTS_INDEX = -1
"""The ``index`` of the defaults' row (the random points are 0..POOL_SIZE-1)."""
WINDOWS = ("search", "holdout")


ANNUAL_GATE = f"annualised return below {REJECT_ANNUALIZED_BELOW:.0%}"
"""The harness's first hard gate: the base run's annualised return below ``REJECT_ANNUALIZED_BELOW``."""
CALMAR_GATE = "stress Calmar below 0"
"""The harness's second hard gate: the stress run's (1.5x fees) Calmar ratio below zero."""
UNNAMED_GATE = "rejected by harness.ensemble_score (a gate not named here)"
_PASSING = ({"annualized_return_pct": 0.0}, {"calmar_ratio": 0.0})
"""Metric values that pass the respective gate (a zero return, a zero stress Calmar)."""


def rejection_gates(base: dict[str, float], stress: dict[str, float]) -> list[str]:
    """The hard gates of :func:`harness.ensemble_score` that reject ``base``/``stress`` metrics, in the harness's
    order (``[]``: not rejected, or metrics without the gates' inputs).

    Each gate is read from the harness's own function: ``ensemble_score`` is asked again with the other gate's
    input set to a passing value, so the verdict is the harness's, whatever its thresholds. A rejection that stays
    with both inputs passing (a gate the harness gained later) is :data:`UNNAMED_GATE`."""
    if "annualized_return_pct" not in base or "calmar_ratio" not in stress:  # not the harness's metrics
        return []
    rejected = -math.inf
    base = {"max_drawdown_pct": 0.0, "hhi": 0.0, **base}  # the score's other inputs, should a caller lack them
    if ensemble_score(base, stress) != rejected:
        return []
    annual, calmar = {**base, **_PASSING[0]}, {**stress, **_PASSING[1]}
    if ensemble_score(annual, calmar) == rejected:
        return [UNNAMED_GATE]
    return [gate for gate, (b, s) in ((ANNUAL_GATE, (base, calmar)), (CALMAR_GATE, (annual, stress)))
            if ensemble_score(b, s) == rejected]


def rejection_reason(base: dict[str, float], stress: dict[str, float]) -> str:
    """Why a configuration scored ``-inf``: the first of its :func:`rejection_gates` (what the random pools and the
    emulator datasets store), or ``""`` when it did not."""
    gates = rejection_gates(base, stress)
    return gates[0] if gates else ""


def pool_points(instance: Instance, size: int = POOL_SIZE) -> list[tuple[int, dict[str, Any]]]:
    """``[(index, flat values)]``: the defaults (index -1), then ``size`` seeded uniform points of the space."""
    space = SearchSpace(instance.space)
    rng = np.random.default_rng(POOL_SEED)
    return [(DEFAULTS_INDEX, space.values(space.base))] + [(k, space.values(space.sample(rng))) for k in range(size)]


def pool_path(suite_path: Path, window: str = "search") -> Path:
    """``<suite>.pool.parquet`` (the search windows) or ``<suite>.holdout-pool.parquet`` (the holdouts)."""
    return suite_path.with_name(suite_path.stem + (".pool.parquet" if window == "search" else ".holdout-pool.parquet"))


def evaluate_on_holdout(instance: Instance, values: dict[str, Any], problem: Problem | None = None) -> EvalResult:
    """``values`` scored on the instance's own holdout window: for drivers and reports after the searches, never
    for a searcher. Nothing computed from holdout prices is written to the shared disk cache (a search of a later
    instance must not find it); ``harness.WindowError`` when the data end before the holdout. ``problem``: the
    instance's (built once by a caller scoring many points; its space and strategy are what is used)."""
    problem = problem or Problem.from_instance(instance)
    with no_writes():
        return evaluate_holdout(problem.space.params(values), instance.holdout_candles(), problem.strategy.fit_fn,
                                problem.strategy.portfolio_fn, split=instance.split)


def evaluate_points(instance: Instance, points: Sequence[tuple[int, dict[str, Any]]],
                    window: str = "search") -> list[dict[str, Any]]:
    """Real evaluations of ``points`` on the instance's search window (or its holdout: ``window="holdout"``), as
    pool rows."""
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {WINDOWS}, got {window!r}")
    problem = Problem.from_instance(instance)
    rows = []
    for index, values in points:
        began = time.perf_counter()
        result = (problem.evaluate(problem.space.params(values)) if window == "search"
                  else evaluate_on_holdout(instance, values, problem))
        rows.append({
            "instance": instance.id, "fingerprint": instance.fingerprint, "contract": result.contract, "index": index,
            "score": result.score, "reason": rejection_reason(result.base, result.stress) if result.rejected else "",
            "wall_s": time.perf_counter() - began,
            **{f"p.{k}": v for k, v in values.items()},
            **{f"base.{k}": float(v) for k, v in result.base.items()},
            **{f"stress.{k}": float(v) for k, v in result.stress.items()},
        })
    return rows


def read_pool(path: Path) -> pd.DataFrame:
    """The stored rows (an empty frame when there is no file)."""
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def current_rows(frame: pd.DataFrame, instance: Instance) -> pd.DataFrame:
    """The rows of ``instance`` made by this contract for its current fingerprint."""
    if frame.empty:
        return frame
    keep = ((frame["instance"] == instance.id) & (frame["fingerprint"] == instance.fingerprint)
            & (frame["contract"] == contract_id()))
    return frame[keep]


def build_pools(instances: Sequence[Instance], path: Path, size: int = POOL_SIZE, jobs: int = 1,
                progress: Callable[[str], None] | None = None, window: str = "search") -> pd.DataFrame:
    """Evaluate the missing pool points of every instance (``jobs`` processes) on ``window`` (``"search"`` or
    ``"holdout"``) and store them in ``path``; return all rows.

    Resumable: finished instances are written as they complete (atomically: a temporary file, then a
    rename), and a rerun evaluates only what is missing or stale.
    """
    frame = read_pool(path)
    todo = []
    for instance in instances:
        have = set(current_rows(frame, instance)["index"]) if not frame.empty else set()
        missing = [(k, v) for k, v in pool_points(instance, size) if k not in have]
        if missing:
            todo.append((instance, missing))
    for instance, rows in _evaluated(todo, jobs, window):
        frame = pd.concat([frame[frame["instance"] != instance.id] if not frame.empty else frame,
                           current_rows(frame, instance), pd.DataFrame(rows)], ignore_index=True)
        frame = frame.sort_values(["instance", "index"], kind="stable").reset_index(drop=True)
        _write(frame, path)
        if progress is not None:
            progress(instance.id)
    return frame


def _evaluated(todo: Sequence[tuple[Instance, list]], jobs: int,
               window: str) -> Iterator[tuple[Instance, list[dict[str, Any]]]]:
    """``(instance, rows)`` as each instance's evaluations finish (in this process when ``jobs <= 1``)."""
    if jobs <= 1:
        for instance, missing in todo:
            yield instance, evaluate_points(instance, missing, window)
        return
    with ProcessPoolExecutor(jobs) as pool:
        futures = {pool.submit(evaluate_points, instance, missing, window): instance for instance, missing in todo}
        for future in as_completed(futures):
            yield futures[future], future.result()


def _write(frame: pd.DataFrame, path: Path) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)


def describe(instance: Instance, rows: pd.DataFrame) -> dict[str, Any]:
    """The instance's line of the suite table: size, market moves, the defaults' score, the random pool."""
    search = instance.search_candles()
    split = instance.split
    window = search.between(split.search_start, split.search_end)
    holdout = instance.holdout_candles().between(split.holdout_start, split.holdout_end)
    return {
        "id": instance.id, "venue": instance.venue, "universe": instance.universe,
        "search": [str(split.search_start), str(split.search_end)],
        "holdout": [str(split.holdout_start), str(split.holdout_end)],
        "tokens": int(window.listed.any(axis=0).sum()), "days": int(window.n_days),
        "holdout_days": int(holdout.n_days),
        "btc_return_search": _btc_return(window), "btc_return_holdout": _btc_return(holdout),
        **pool_summary(rows),
    }


def pool_summary(rows: pd.DataFrame) -> dict[str, Any]:
    """The defaults' score and the random configurations' count, rejected share, median and best, of one
    instance's pool rows (either window)."""
    random = rows[rows["index"] != DEFAULTS_INDEX]["score"].to_numpy(dtype=float) if len(rows) else np.empty(0)
    defaults = rows[rows["index"] == DEFAULTS_INDEX]["score"].to_numpy(dtype=float) if len(rows) else np.empty(0)
    finite = random[np.isfinite(random)]
    return {
        "defaults_score": float(defaults[0]) if defaults.size else math.nan,
        "random_n": int(random.size), "random_reject_share": float(np.mean(~np.isfinite(random))) if random.size else math.nan,
        "random_median": float(np.median(np.where(np.isfinite(random), random, -np.inf))) if random.size else math.nan,
        "random_best": float(finite.max()) if finite.size else -math.inf,
    }


def _btc_return(candles) -> float:
    """BTCUSDT's simple return from the first to the last close of ``candles`` (NaN without BTC)."""
    if "BTCUSDT" not in candles.tokens or candles.n_days == 0:
        return math.nan
    close = candles.close[:, candles.column("BTCUSDT")]
    close = close[np.isfinite(close)]
    return float(close[-1] / close[0] - 1.0) if close.size >= 2 else math.nan
