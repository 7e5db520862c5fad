"""What the strategy feeds on, synthetic beside real, and the full calibration table.

``python -m instances.calibration --report [--json] [--universe NAME] [--seed N] [--real-dir DIR]`` prints
the data-level rows of ``python -m data.synthetic --report`` followed, for crypto universes, by the
strategy-level rows below, with data.calibration's printer (:func:`data.calibration.print_report`; the data
layer itself imports nothing from here). ``--json`` prints strict JSON by data.synthetic's convention
(a non-finite number as ``null`` with a ``"<key>_reason"`` beside it), the strategy-level values under
``"feeds_on"`` (:func:`strategy_calibration`); a ``-inf`` score there is a configuration the harness rejected.

GEM buys tokens whose recent exponential trend is strong and clean, so a synthetic market is a fair
stand-in for a real one only if it offers that signal as often and as reliably as real markets do, and
if the strategy scores in the same range on it. Beside the stylised facts of
:func:`data.calibration.calibration`:

* the 4-week cross-sectional momentum rank IC (:func:`data.calibration.momentum_rank_ic`), 2021-2025,
  on the reported draw and averaged over the ``synthetic-v1`` draws;
* from the 30-day exponential fits the specialists use (:func:`strategy.fits.trend_fit`): the share of
  listed crypto tokens with ``a1 > 1`` and ``R^2 > 0.5`` on a day (mean over days) and the median ``R^2``;
* the Loop 3 defaults' score and the best of 200 random joint-space configurations, over the
  instances of ``synthetic-v1`` and of ``real-v1`` (median [min, max]), read from the suites' random
  pools (``python -m runs.instances --suite NAME --describe`` computes them).

Real values: ``binance_top50_daily.csv.gz`` (crypto tokens: wrapped tokens, PAXG and stablecoins
excluded), 2021-2025.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from data.candles import Candles
from data.calibration import build_parser, load_real, momentum_rank_ic, print_report, report_rows, strict_json
from data.synthetic import CRYPTO_KINDS, UNIVERSES, generate
from instances.pool import DEFAULTS_INDEX, pool_path, read_pool
from instances.suite import load_suite
from strategy.fits import trend_fit

START, END = "2021-01-01", "2025-12-31"


def crypto_columns(candles: Candles, kinds: dict[str, str]) -> np.ndarray:
    """``(tokens,)`` bool: the tokens of a crypto kind (btc, eth, major, alt)."""
    return np.array([kinds.get(t, "") in CRYPTO_KINDS for t in candles.tokens], dtype=bool)


def trend_shares(candles: Candles, columns: np.ndarray, start: str = START, end: str = END,
                 fit_window: int = 30) -> tuple[float, float]:
    """``(share of listed tokens with a1 > 1 and R^2 > 0.5, median R^2)`` of ``columns`` over ``start..end``."""
    fit = trend_fit(candles, fit_window)
    rows = np.flatnonzero((candles.dates >= np.datetime64(start, "D")) & (candles.dates <= np.datetime64(end, "D")))
    a1, r2 = fit.a1[rows][:, columns], fit.r2[rows][:, columns]
    has = np.isfinite(a1) & np.isfinite(r2)
    rising_clean = np.where(has, (a1 > 1.0) & (r2 > 0.5), False).sum(axis=1) / np.maximum(has.sum(axis=1), 1)
    return float(rising_clean[has.any(axis=1)].mean()), float(np.median(r2[has]))


def market_side(candles: Candles, kinds: dict[str, str]) -> dict[str, float]:
    """Rank IC (mean, s.e.), trend share and median R^2 of one universe, 2021-2025."""
    columns = crypto_columns(candles, kinds)
    ic, se, _ = momentum_rank_ic(candles, columns, START, END)
    share, r2 = trend_shares(candles, columns)
    return {"momentum_rank_ic": ic, "momentum_rank_ic_se": se, "trend_share": share, "median_r2": r2}


def pool_scores(suite: str) -> dict[str, list[float]] | None:
    """Per instance of ``suite``: the defaults' score and the best of the random pool (None without a pool)."""
    loaded = load_suite(suite)
    frame = read_pool(pool_path(loaded.path))
    if frame.empty:
        return None
    out: dict[str, list[float]] = {"defaults": [], "best_of_random": []}
    for instance_id in loaded.ids:
        rows = frame[frame["instance"] == instance_id]
        if rows.empty:
            return None
        out["defaults"] += list(rows[rows["index"] == DEFAULTS_INDEX]["score"])
        random = rows[rows["index"] != DEFAULTS_INDEX]["score"].to_numpy(dtype=float)
        out["best_of_random"].append(float(random.max()))
    return out


def _spread(values: list[float] | None) -> dict[str, float] | None:
    """median, min, max (``-inf`` ranked lowest) of a list, None when absent."""
    if not values:
        return None
    array = np.sort(np.asarray(values, dtype=float))
    return {"median": float(np.median(array)), "min": float(array[0]), "max": float(array[-1]), "n": int(array.size)}


def strategy_calibration(candles: Candles, real_dir: Path | None) -> dict[str, Any]:
    """The strategy-level calibration of ``candles`` (a synthetic draw) against the real market (module docstring)."""
    synthetic = market_side(candles, dict(candles.meta["kinds"]))
    draws = [load_suite("synthetic-v1").get(i) for i in load_suite("synthetic-v1").ids]
    over_draws = [market_side(generate(d.universe, d.seed), dict(generate(d.universe, d.seed).meta["kinds"]))
                  for d in draws]
    real = None
    if real_dir is not None and Path(real_dir).is_dir():
        top50, kinds, _ = load_real(Path(real_dir))
        real = market_side(top50, kinds)
    syn_scores, real_scores = pool_scores("synthetic-v1"), pool_scores("real-v1")
    out: dict[str, Any] = {}
    for key in ("momentum_rank_ic", "trend_share", "median_r2"):
        out[key] = {"synthetic": synthetic[key],
                    "synthetic_v1_mean": float(np.mean([d[key] for d in over_draws])),
                    "real": None if real is None else real[key]}
    out["momentum_rank_ic"]["synthetic_se"] = synthetic["momentum_rank_ic_se"]
    out["momentum_rank_ic"]["real_se"] = None if real is None else real["momentum_rank_ic_se"]
    for key, label in (("defaults", "defaults_score"), ("best_of_random", "best_of_200")):
        out[label] = {"synthetic": _spread(syn_scores[key]) if syn_scores else None,
                      "real": _spread(real_scores[key]) if real_scores else None}
    return out


def feeds_on_rows(cal: dict[str, Any], real: bool) -> list[list[object]]:
    """Table rows (statistic, synthetic, real) for :func:`strategy_calibration`'s result."""
    def num(value: float | None) -> str:
        return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"

    def spread(entry: dict[str, float] | None, suite: str) -> str:
        if entry is None:
            return f"n/a (python -m runs.instances --suite {suite} --describe)"
        return f"{num(entry['median'])} [{num(entry['min'])}, {num(entry['max'])}] (n={entry['n']})"

    ic = cal["momentum_rank_ic"]
    rows: list[list[object]] = [
        ["4-week momentum rank IC, 2021-2025 (s.e.)", f"{num(ic['synthetic'])} ({num(ic['synthetic_se'])}); "
         f"synthetic-v1 draws: {num(ic['synthetic_v1_mean'])}", f"{num(ic['real'])} ({num(ic['real_se'])})"],
        ["share of tokens with a1 > 1 and R^2 > 0.5 (30-day fit)", f"{num(cal['trend_share']['synthetic'])}; "
         f"synthetic-v1 draws: {num(cal['trend_share']['synthetic_v1_mean'])}", num(cal["trend_share"]["real"])],
        ["median 30-day exponential-fit R^2", f"{num(cal['median_r2']['synthetic'])}; synthetic-v1 draws: "
         f"{num(cal['median_r2']['synthetic_v1_mean'])}", num(cal["median_r2"]["real"])],
        ["Loop 3 defaults' score: median [min, max] over instances", spread(cal["defaults_score"]["synthetic"],
         "synthetic-v1"), spread(cal["defaults_score"]["real"], "real-v1")],
        ["best of 200 random joint configurations: median [min, max]", spread(cal["best_of_200"]["synthetic"],
         "synthetic-v1"), spread(cal["best_of_200"]["real"], "real-v1")],
    ]
    return rows if real else [row[:2] for row in rows]


REJECTED_REASON = "-inf: the harness rejected the configuration (a hard gate fired)"
"""What the JSON report writes beside a ``null`` that stands for a ``-inf`` score."""


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m instances.calibration [--report [--json]] [--universe NAME] [--seed N] [--real-dir DIR]``.

    The data-level table of :func:`data.calibration.report_rows` plus, for crypto universes, the rows of
    :func:`feeds_on_rows`; printed by :func:`data.calibration.print_report` (markdown or strict JSON).
    """
    args = build_parser("python -m instances.calibration", __doc__.splitlines()[0],
                        "print the full calibration table: data rows and what the strategy feeds on").parse_args(argv)
    began = time.perf_counter()
    candles = generate(args.universe, args.seed)
    print(f"{candles!r} generated in {time.perf_counter() - began:.2f} s", file=sys.stderr)
    if not args.report:
        return 0
    title, header, rows, note = report_rows(args.universe, args.seed, args.real_dir)
    sections: dict[str, Any] = {}
    if UNIVERSES[args.universe].crypto:
        feeds_on = strategy_calibration(candles, args.real_dir)
        rows = rows + feeds_on_rows(feeds_on, real=len(header) > 2)
        sections["feeds_on"] = strict_json(feeds_on, {"-inf": REJECTED_REASON})  # its -inf are rejected scores
    print_report(title, header, rows, note, as_json=args.json, sections=sections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
