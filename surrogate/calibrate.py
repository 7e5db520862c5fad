"""How good is the GP surrogate? Hold-out calibration on real trials.

    python -m surrogate.calibrate --universe synthetic-small --space core --trials 160
    python -m surrogate.calibrate --tsv runs/out/NAME/trials.tsv --space joint

Either evaluates ``--trials`` uniform random configurations with the real
harness (seeded; the HMM detector is fixed to ``--detector`` so the run takes
seconds, not minutes) or reads the records of an earlier run's TSV, then fits
the surrogate on a random part and reports, on the held-out rest: RMSE vs a
constant predictor (the training mean), 90% interval coverage of the finite
scores, and the accuracy of the feasibility (-inf) classifier. Averaged over
``--splits`` random splits per training fraction.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from env.objective import Objective
from instances.problem import Problem
from env.records import TrialRecord
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace
from surrogate.gp import calibration


def random_trials(universe: str, space: SearchSpace, trials: int, seed: int) -> list[TrialRecord]:
    """``trials`` real evaluations of uniform random points of ``space`` on ``universe``."""
    problem = Problem.from_universe(universe, space=space.name)
    problem.space = space
    objective = Objective(problem, trials, searcher="random", seed=seed)
    rng = np.random.default_rng(seed)
    while objective.remaining:
        objective(space.sample(rng))
    return objective.history


def tsv_trials(path: Path) -> list[TrialRecord]:
    with path.open(newline="") as handle:
        return [TrialRecord.from_row(row) for row in csv.DictReader(handle, delimiter="\t")]


def calibration_table(space: SearchSpace, records: list[TrialRecord], fractions: tuple[float, ...],
                      splits: int) -> list[dict[str, float]]:
    """Per training fraction, the mean over ``splits`` seeds of :func:`surrogate.gp.calibration`."""
    x = np.array([space.encode(space.params({k: v for k, v in r.params.items() if k in space.names}))
                  for r in records])
    y = np.array([r.score for r in records], dtype=float)
    rows = []
    for fraction in fractions:
        runs = [calibration(space, x, y, train_fraction=fraction, seed=s) for s in range(splits)]
        row = {key: float(np.nanmean([r[key] for r in runs])) for key in runs[0]}
        row["rmse_ratio"] = row["rmse"] / row["rmse_constant"]
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m surrogate.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--universe", default="synthetic-small")
    parser.add_argument("--space", default="core")
    parser.add_argument("--detector", default="ma200", help="hmm.detector held fixed for --trials runs")
    parser.add_argument("--trials", type=int, default=160)
    parser.add_argument("--tsv", type=Path, help="calibrate on this run's trials instead of new random ones")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--splits", type=int, default=5)
    args = parser.parse_args(argv)
    space = SearchSpace(args.space, base=EnsembleParams.from_dict({"hmm.detector": args.detector}))
    records = tsv_trials(args.tsv) if args.tsv else random_trials(args.universe, space, args.trials, args.seed)
    finite = sum(np.isfinite(r.score) for r in records)
    print(f"{len(records)} trials ({finite} finite) on the {space.name!r} space ({len(space)} axes)")
    print("| train fraction | n train | n test | RMSE | RMSE constant | ratio | 90% coverage | feasibility accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for fraction, row in zip((0.3, 0.5, 0.75), calibration_table(space, records, (0.3, 0.5, 0.75), args.splits)):
        print(f"| {fraction} | {row['n_train']:.0f} | {row['n_test']:.0f} | {row['rmse']:.3f} | {row['rmse_constant']:.3f} | "
              f"{row['rmse_ratio']:.2f} | {row['coverage_90']:.2f} | {row['feasibility_accuracy']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
