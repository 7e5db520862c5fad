"""Regime detector accuracy against a synthetic universe's true regime path.

    python -m runs.regimes --universe synthetic --seed 0 [--detector gaussian|student_t|ma200|all]

Prints, per detector, the share of days on which the top filtered regime equals
the true one, the majority-class baseline on the same days, per-regime recall,
and the wall time of computing the probabilities (cold).
"""

from __future__ import annotations

import argparse
import time

from data import load_universe
from strategy.regime import DETECTORS, HmmParams, regime_accuracy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.regimes", description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="synthetic", help="synthetic universe name (needs true regimes)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detector", choices=DETECTORS + ("all",), default="all")
    parser.add_argument("--refit", type=int, default=HmmParams().hmm_refit_interval, help="hmm_refit_interval (days)")
    args = parser.parse_args(argv)
    candles = load_universe(args.universe, seed=args.seed)
    print(f"{candles!r}; true regimes known on {candles.n_days} days")
    print("| detector | days | accuracy | majority baseline | recall bull | recall bear | recall ranging | seconds |")
    print("|---|---|---|---|---|---|---|---|")
    for detector in DETECTORS if args.detector == "all" else (args.detector,):
        params = HmmParams(detector=detector, hmm_refit_interval=args.refit)
        began = time.perf_counter()
        result = regime_accuracy(candles, params)
        seconds = time.perf_counter() - began
        recall = result.recall()
        print(f"| {detector} | {result.days} | {result.accuracy:.3f} | {result.majority_baseline:.3f} | "
              f"{recall['bull']:.3f} | {recall['bear']:.3f} | {recall['ranging']:.3f} | {seconds:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
