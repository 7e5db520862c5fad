"""Speed benchmark of one real evaluation (base + stress run of the harness, causality audit included).

    python -m runs.bench                 # a table
    python -m runs.bench --json          # one JSON object (the keys below)
    python -m runs.bench --stages        # where the milliseconds go, per stage (also with --json)
    python -m runs.bench --memory 2000   # resident memory over 2,000 evaluations on small universes
    python -m runs.bench --envs 800      # meta-training environments: steps/s of each action design

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
* ``jit_load_s``: loading (or, on a fresh machine, compiling) the compiled kernels, paid once per process
  before the first evaluation; not part of the cold numbers.

``--stages`` adds ``stages``: milliseconds per evaluation, exclusive, of the strategy's ``fit_fn``
(its regime detector and specialist tables broken out) and ``portfolio_fn`` on the search window,
the same on the audit's truncated histories, the two backtests, the metrics, and the harness's
remainder, for a warm bear-basket, a warm ensemble and a cold ensemble evaluation.

``--memory N`` adds ``memory``: the resident set size after each quarter of ``N`` evaluations of
random ``joint``-space points on four ``synthetic-small`` draws (scored 2021-2022), and what each
strategy cache holds at the end; bounded caches keep it flat.

``--envs N`` adds ``envs``: environment steps per second of the two meta-training environments
(``learn.train_ppo.make_env``: ``candidates`` and ``edit``) on the ``binance-to-bybit`` training
instances (emulated, randomised per episode), ``N`` steps of seeded uniformly random actions each, resets
included, one process, one BLAS/OpenMP thread: the environment's own cost, without PPO.

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
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from data import Candles, load_universe
from data.calibration import REAL_DATA_DIR
from harness import SEARCH_END, evaluate
from strategy import PRESETS, STRATEGIES, GemParams, Strategy
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


def _ensemble_universe(universe: str, seed: int = 0) -> Candles:
    return load_universe(universe, seed=seed).between(None, SEARCH_END)


def _run(strategy: Strategy, candles: Candles) -> Callable[[Any], Any]:
    return lambda p: evaluate(p, candles, strategy.fit_fn, strategy.portfolio_fn)


def load_kernels() -> float:
    """Seconds to load (or compile) every compiled kernel: one tiny evaluation of each strategy."""
    candles = load_universe("synthetic-small").head(400)  # into the search window (2021)
    return _timed(lambda: [_run(STRATEGIES[name], candles)(params) for name, params in
                           (("bear", GemParams()), ("ensemble", PRESETS["loop3-defaults"]))])


def bench_bear(repeats: int) -> dict[str, Any]:
    candles, source = _bear_basket()
    run = _run(STRATEGIES["bear"], candles)
    variants = [GemParams(top_n=n, r2_threshold=r2) for n in (1, 2, 3, 5) for r2 in (0.3, 0.5, 0.7)]
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


def _warm_variant(base: Any, rng: np.random.Generator) -> Any:
    """The defaults with new top_n, r2_threshold, cooldowns and hard-switch threshold (no refit)."""
    changes = {f"{b}.top_n": int(rng.integers(1, 25)) for b in ("bull", "bear", "ranging")}
    changes |= {f"{b}.r2_threshold": float(rng.choice([0.2, 0.3, 0.5, 0.7])) for b in ("bull", "bear", "ranging")}
    changes |= {f"{b}.rebalance_cooldown": int(rng.integers(3, 15)) for b in ("bull", "bear", "ranging")}
    changes["hmm.hard_switch_threshold"] = float(rng.choice([0.6, 0.7, 0.8, 0.9]))
    return base.from_dict(changes, base=base)


def bench_ensemble(universe: str, repeats: int, core_points: int) -> dict[str, Any]:
    generate = _timed(lambda: load_universe(universe))
    candles = _ensemble_universe(universe)
    run = _run(STRATEGIES["ensemble"], candles)
    base = PRESETS["loop3-defaults"]
    cold = _timed(lambda: run(base))
    rng = np.random.default_rng(0)
    warm = [_timed(lambda p=_warm_variant(base, rng): run(p)) for _ in range(repeats)]
    space = SearchSpace("core")
    core = [_timed(lambda p=space.sample(rng): run(p)) for _ in range(core_points)]
    return {"universe": f"{universe} ({candles.n_days} days x {candles.n_tokens} tokens to {SEARCH_END})",
            "synthetic_generate_s": generate, "ensemble_eval_s_cold": cold,
            "ensemble_eval_s_warm": statistics.median(warm), "ensemble_eval_s_core_mean": statistics.fmean(core)}


# --------------------------------------------------------------------------- --stages
class _Stages:
    """Exclusive wall time per stage: a timed call's time less that of the timed calls inside it."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._stack: list[list[Any]] = []  # [name, time spent in timed children]

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            label = f"audit.{name}" if any(frame[0] == "audit" for frame in self._stack) else name
            self._stack.append([label, 0.0])
            began = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - began
                _, inner = self._stack.pop()
                self.totals[label] += elapsed - inner
                if self._stack:
                    self._stack[-1][1] += elapsed

        return timed

    @contextmanager
    def patched(self) -> Iterator[None]:
        """Time the harness's audit, backtests and metrics and the strategy's detector and specialist tables."""
        import strategy.ensemble

        harness_module = sys.modules[evaluate.__module__]
        targets = [(harness_module, "_audit", "audit"), (harness_module, "run_backtest", "backtests"),
                   (harness_module, "compute_metrics", "metrics"),
                   (strategy.ensemble, "regime_probabilities", "fit_fn.regime"),
                   (strategy.ensemble, "specialist_signals", "fit_fn.specialist_tables")]
        saved = [(module, attr, getattr(module, attr)) for module, attr, _ in targets]
        for module, attr, name in targets:
            setattr(module, attr, self.wrap(name, getattr(module, attr)))
        try:
            yield
        finally:
            for module, attr, original in saved:
                setattr(module, attr, original)

    def profile(self, strategy: Strategy, candles: Candles, params: Any, repeats: int) -> dict[str, float]:
        """Milliseconds per evaluation by stage over ``repeats`` evaluations, plus ``total``."""
        fit_fn, portfolio_fn = self.wrap("fit_fn", strategy.fit_fn), self.wrap("portfolio_fn", strategy.portfolio_fn)
        run = self.wrap("harness (views, checks, score)",
                        lambda: evaluate(params, candles, fit_fn, portfolio_fn))
        self.totals.clear()
        with self.patched():
            total = sum(_timed(run) for _ in range(repeats))
        stages = {name: round(seconds / repeats * 1e3, 3) for name, seconds in
                  sorted(self.totals.items(), key=lambda item: -item[1])}
        return stages | {"total": round(total / repeats * 1e3, 3)}


def bench_stages(universe: str, repeats: int) -> dict[str, dict[str, float]]:
    """Per-stage milliseconds of a warm bear-basket, a cold ensemble and a warm ensemble evaluation."""
    stages = _Stages()
    bear, _ = _bear_basket()
    _run(STRATEGIES["bear"], bear)(GemParams())
    out = {"bear_basket_warm": stages.profile(STRATEGIES["bear"], bear, GemParams(), max(repeats, 50))}
    candles = _ensemble_universe(universe)
    for memo in strategy_caches().values():
        memo.items.clear()  # a cold evaluation even after the other benchmarks ran
    base = PRESETS["loop3-defaults"]
    out["ensemble_cold"] = stages.profile(STRATEGIES["ensemble"], candles, base, 1)
    out["ensemble_warm"] = stages.profile(STRATEGIES["ensemble"], candles, base, repeats)
    return out


# --------------------------------------------------------------------------- --memory
MEMORY_END = "2022-12-31"
"""The memory benchmark scores 2021-2022 only: shorter histories, so 2,000 evaluations take minutes."""


def _rss_mb() -> float:
    """Current resident set size (Linux ``/proc``; elsewhere the peak)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def strategy_caches() -> dict[str, Any]:
    """The strategy's in-memory caches by name (``module.NAME``): each an ``_LRU``."""
    from strategy import ensemble, fits, gem, regime

    return {f"{module.__name__.split('.')[-1]}.{name}": getattr(module, name)
            for module, names in ((fits, ("_FITS", "_VOLS", "_COUNTS")), (gem, ("_SIGNALS",)),
                                  (regime, ("_INDEX", "_PROBS")), (ensemble, ("_RISK",)))
            for name in names}


def bench_memory(evaluations: int, draws: int = 4) -> dict[str, Any]:
    """Resident memory after each quarter of ``evaluations`` random ``joint`` points on ``draws`` small universes.

    Every evaluation draws new continuous parameters (``r2_exponent``, ``min_history``...), so an
    unbounded cache would grow with the number of evaluations; the bounded ones stay flat.
    """
    from strategy.fits import _array_bytes

    universes = [load_universe("synthetic-small", seed=seed).between(None, MEMORY_END) for seed in range(draws)]
    strategy, space, rng = STRATEGIES["ensemble"], SearchSpace("joint"), np.random.default_rng(0)
    quarters = {evaluations * q // 4 for q in range(1, 5)}
    rss: list[float] = []
    began = time.perf_counter()
    for i in range(1, evaluations + 1):
        evaluate(space.sample(rng), universes[i % draws], strategy.fit_fn, strategy.portfolio_fn, end=MEMORY_END)
        if i in quarters:
            rss.append(round(_rss_mb(), 1))
    caches = {name: f"{len(memo.items)} entries, {sum(map(_array_bytes, memo.items.values())) / 2**20:.1f} MB"
              for name, memo in strategy_caches().items()}
    return {"evaluations": evaluations, "universes": f"{draws} draws of synthetic-small to {MEMORY_END}",
            "rss_mb_by_quarter": rss, "rss_growth_mb_last_half": round(rss[-1] - rss[len(rss) // 2 - 1], 1),
            "seconds": round(time.perf_counter() - began, 1), "caches": caches}


def bench_envs(steps: int) -> dict[str, Any]:
    """Steps per second of ``steps`` random actions in each meta-training environment (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    from learn.train_ppo import make_env

    out: dict[str, Any] = {"steps": steps, "tasks": "binance-to-bybit training instances (emulated)"}
    for design in ("candidates", "edit"):
        env = make_env(design, "joint", (20, 100), "improvement", split="binance-to-bybit", seed=0)
        rng = np.random.default_rng(0)
        with threadpool_limits(limits=1):
            env.reset(seed=0)
            began = time.perf_counter()
            for _ in range(steps):
                space = env.action_space
                action = rng.integers(space.nvec) if hasattr(space, "nvec") else int(rng.integers(space.n))
                _, _, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    env.reset()
            out[f"{design}_steps_per_s"] = round(steps / (time.perf_counter() - began), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument("--universe", default="synthetic", help="universe of the ensemble benchmark")
    parser.add_argument("--repeats", type=int, default=20, help="warm evaluations per benchmark")
    parser.add_argument("--core-points", type=int, default=10, help="random core-space points")
    parser.add_argument("--stages", action="store_true", help="also time each stage of an evaluation")
    parser.add_argument("--memory", type=int, default=0, metavar="N",
                        help="also measure resident memory over N evaluations on small universes (e.g. 2000)")
    parser.add_argument("--envs", type=int, default=0, metavar="N",
                        help="also measure the meta-training environments' steps/s over N random actions (e.g. 800)")
    args = parser.parse_args(argv)
    os.environ["GEMSEARCH_CACHE"] = "off"  # cold means cold: no regime chain from an earlier run's disk cache
    results: dict[str, Any] = {"machine": f"{platform.processor() or platform.machine()}, "
                                          f"{len(os.sched_getaffinity(0))} cores, Python {platform.python_version()}"}
    results["jit_load_s"] = load_kernels()
    results |= bench_bear(max(args.repeats, 5))
    results |= bench_ensemble(args.universe, args.repeats, args.core_points)
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if args.stages:
        results["stages"] = bench_stages(args.universe, args.repeats)
    if args.memory:
        results["memory"] = bench_memory(args.memory)
    if args.envs:
        results["envs"] = bench_envs(args.envs)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        width = max(map(len, results))
        for key, value in results.items():
            print(f"{key:<{width}}  {value:.4g}" if isinstance(value, float) else f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
