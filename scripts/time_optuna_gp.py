"""Time the ``optuna-gp`` searcher's own proposing on a cheap synthetic task (no harness).

Runs ``optuna-gp`` (seed 0) on ``SyntheticTask(SearchSpace(space), seed=3)`` and prints the wall time and a hash
of the score history (equal hashes: equal proposals).

    python scripts/time_optuna_gp.py [--trials 30] [--space joint] [--optuna-device-mode]

``--optuna-device-mode`` keeps Optuna's ``with torch.device("cpu")`` around each ask (Optuna's own path) instead
of ``policies.optuna_samplers.without_cpu_device_mode``.
"""

from __future__ import annotations

import argparse
import contextlib
import time

import policies
import policies.optuna_samplers as samplers
from env import Objective, SyntheticTask
from strategy.space import SearchSpace


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--space", default="joint")
    parser.add_argument("--optuna-device-mode", action="store_true")
    args = parser.parse_args()
    if args.optuna_device_mode:
        samplers.without_cpu_device_mode = contextlib.nullcontext
    objective = Objective(SyntheticTask(SearchSpace(args.space), seed=3), budget=args.trials, searcher="optuna-gp",
                          seed=0)
    start = time.perf_counter()
    policies.run(policies.make("optuna-gp"), objective, 0)
    scores = tuple(round(record.score, 12) for record in objective.history)
    print(f"wall {time.perf_counter() - start:.1f} s, best {max(scores):.6f}, history hash {hash(scores)}")


if __name__ == "__main__":
    main()
