"""Speed benchmark of one real evaluation (base + stress run of the harness).

    python -m runs.bench            # a table
    python -m runs.bench --json     # one JSON object (the keys below)

Measures, in one process (cold = first evaluation, every fit computed; warm =
fits cached, only what the varied parameters touch is recomputed):

* ``bear_basket_eval_ms``: the bear specialist (default ``GemParams``) on the
  4-token 2022 bear basket (the real file in ``../shared/data`` when present,
  else the synthetic ``bear-basket``), warm, median; ``..._varied``: median over
  configurations cycling ``top_n``/``r2_threshold`` (more rebalances, slower).
* ``reference_eval_ms``: the same default evaluation by the slow per-token,
  per-day test oracle (``tests/reference.py``), and ``speedup`` = reference / warm.
* ``ensemble_eval_s_cold`` / ``ensemble_eval_s_warm``: the full ensemble on the
  default synthetic universe (437 tokens, search window), first evaluation and
  the median of warm ones (varying top_n, r2_threshold, cooldowns and the
  hard-switch threshold, which never refit).
* ``ensemble_eval_s_core_mean``: mean over random points of the ``core`` space
  (HMM refit interval and min-observation changes do refit the detector): what
  a searcher actually pays per evaluation.
* ``synthetic_generate_s`` and ``peak_rss_mb`` (peak resident memory of the process).

The on-disk regime cache (:mod:`strategy.diskcache`) is switched off for the
benchmark, so cold numbers are what a fresh machine pays.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from data import Candles, load_universe
from data.synthetic import REAL_DATA_DIR
from harness import SEARCH_END, evaluate
from strategy import PRESETS, STRATEGIES, GemParams
from strategy.space import SearchSpace

REPO = Path(__file__).resolve().parents[1]


def _timed(call: Callable[[], Any]) -> float:
    began = time.perf_counter()
    call()
    return time.perf_counter() - began


def _bear_basket() -> tuple[Candles, str]:
    real = REAL_DATA_DIR / "bear_portfolio_candles.csv"
    if real.is_file():
        from data.loaders import load_path

        return load_path(real), str(real.name)
    return load_universe("bear-basket"), "synthetic bear-basket"


def _reference_module():
    path = REPO / "tests" / "reference.py"
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("gemsearch_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def bench_bear(repeats: int) -> dict[str, Any]:
    candles, source = _bear_basket()
    strategy = STRATEGIES["bear"]
    variants = [GemParams(top_n=n, r2_threshold=r2) for n in (1, 2, 3, 5) for r2 in (0.3, 0.5, 0.7)]
    run = lambda p: evaluate(p, candles, strategy.fit_fn, strategy.portfolio_fn)  # noqa: E731
    cold = _timed(lambda: run(GemParams()))
    warm = [_timed(lambda: run(GemParams())) for _ in range(repeats)]
    varied = [_timed(lambda p=variants[i % len(variants)]: run(p)) for i in range(repeats)]
    out: dict[str, Any] = {"bear_basket_data": source, "bear_basket_eval_ms_cold": cold * 1e3,
                           "bear_basket_eval_ms": statistics.median(warm) * 1e3,
                           "bear_basket_eval_ms_varied": statistics.median(varied) * 1e3}
    reference = _reference_module()
    if reference is not None:
        ref = [_timed(lambda: reference.evaluate(GemParams(), candles)) for _ in range(2)]
        out["reference_eval_ms"] = min(ref) * 1e3
        out["speedup"] = out["reference_eval_ms"] / out["bear_basket_eval_ms"]
    return out


def bench_ensemble(universe: str, repeats: int, core_points: int) -> dict[str, Any]:
    generate = _timed(lambda: load_universe(universe))
    candles = load_universe(universe).between(None, SEARCH_END)
    strategy = STRATEGIES["ensemble"]
    run = lambda p: evaluate(p, candles, strategy.fit_fn, strategy.portfolio_fn)  # noqa: E731
    base = PRESETS["loop3-defaults"]
    cold = _timed(lambda: run(base))
    rng = np.random.default_rng(0)
    warm = []
    for _ in range(repeats):
        changes = {f"{b}.top_n": int(rng.integers(1, 25)) for b in ("bull", "bear", "ranging")}
        changes |= {f"{b}.r2_threshold": float(rng.choice([0.2, 0.3, 0.5, 0.7])) for b in ("bull", "bear", "ranging")}
        changes |= {f"{b}.rebalance_cooldown": int(rng.integers(3, 15)) for b in ("bull", "bear", "ranging")}
        changes["hmm.hard_switch_threshold"] = float(rng.choice([0.6, 0.7, 0.8, 0.9]))
        warm.append(_timed(lambda p=base.from_dict(changes, base=base): run(p)))
    space = SearchSpace("core")
    core = [_timed(lambda p=space.sample(rng): run(p)) for _ in range(core_points)]
    return {"universe": f"{universe} ({candles.n_days} days x {candles.n_tokens} tokens to {SEARCH_END})",
            "synthetic_generate_s": generate, "ensemble_eval_s_cold": cold,
            "ensemble_eval_s_warm": statistics.median(warm), "ensemble_eval_s_core_mean": statistics.fmean(core)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--universe", default="synthetic", help="universe of the ensemble benchmark")
    parser.add_argument("--repeats", type=int, default=20, help="warm evaluations per benchmark")
    parser.add_argument("--core-points", type=int, default=10, help="random core-space points")
    args = parser.parse_args(argv)
    os.environ["GEMSEARCH_CACHE"] = "off"  # cold means cold: no regime chain from an earlier run's disk cache
    results: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, "
                                          f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"}
    results |= bench_bear(max(args.repeats, 5))
    results |= bench_ensemble(args.universe, args.repeats, args.core_points)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(map(len, results))
        for key, value in results.items():
            print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
