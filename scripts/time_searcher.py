"""Time (or profile) one searcher's own proposing on a cheap synthetic task, with or without our speed fixes.

Runs the searcher (seed 0) on ``SyntheticTask(SearchSpace(space), seed=3)``, a stand-in score that costs
microseconds, so nearly every second measured is the searcher's. Prints the wall time and a hash of the score
history (equal hashes: equal proposals).

    python scripts/time_searcher.py smac|optuna-gp [--trials 30] [--space joint] [--upstream] [--profile]

``--upstream`` undoes our speed fix for that searcher (the library's own path): ``smac`` keeps SMAC's forest
capacity (``policies.smac_search.leaf_capacity_from_rows`` off), ``optuna-gp`` keeps Optuna's
``with torch.device("cpu")`` (``policies.optuna_samplers.without_cpu_device_mode`` off). ``--profile`` prints
cProfile's top 45 functions by cumulative time.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import pstats
import time

import policies
import policies.optuna_samplers
import policies.smac_search
from env import Objective, SyntheticTask
from strategy.space import SearchSpace

UPSTREAM = {
    "smac": (policies.smac_search, "leaf_capacity_from_rows", lambda model: None),
    "optuna-gp": (policies.optuna_samplers, "without_cpu_device_mode", contextlib.nullcontext),
}
"""Per searcher: the module, the name of our speed fix in it, and what replaces it for ``--upstream``."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("searcher", choices=sorted(UPSTREAM))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--space", default="joint")
    parser.add_argument("--upstream", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.upstream:
        module, name, replacement = UPSTREAM[args.searcher]
        setattr(module, name, replacement)
    objective = Objective(SyntheticTask(SearchSpace(args.space), seed=3), budget=args.trials, searcher=args.searcher,
                          seed=0)
    profile = cProfile.Profile() if args.profile else None
    start = time.perf_counter()
    if profile:
        profile.enable()
    policies.run(policies.make(args.searcher), objective, 0)
    if profile:
        profile.disable()
    wall = time.perf_counter() - start
    if profile:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    scores = tuple(round(record.score, 12) for record in objective.history)
    print(f"wall {wall:.1f} s, best {max(scores):.6f}, history hash {hash(scores)}")


if __name__ == "__main__":
    main()
