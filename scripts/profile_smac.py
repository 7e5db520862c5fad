"""Time (or profile) the ``smac`` searcher's own proposing, without the harness.

The same ask/tell loop as ``policies.smac_search.SmacSearch`` on the joint space, scored by a cheap
deterministic stand-in (minus the squared distance of the unit-cube encoding to 0.3), so every second
measured is SMAC's. Prints the wall time and a hash of the score history (equal hashes: equal proposals).

    python scripts/profile_smac.py [--trials 60] [--smac-capacity] [--profile]

``--smac-capacity`` runs SMAC's forest with its own node capacity (``max_leaf_nodes=2**20``) instead of
``leaf_capacity_from_rows``; ``--profile`` prints cProfile's top 45 functions by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import math
import pstats
import tempfile
import time
from pathlib import Path

import numpy as np

import policies.smac_search as smac_search
from strategy.space import SearchSpace


def run(trials: int, smac_capacity: bool) -> list[float]:
    from smac import HyperparameterOptimizationFacade, Scenario

    space = SearchSpace("joint")
    with tempfile.TemporaryDirectory() as out, smac_search._quiet_smac():
        scenario = Scenario(smac_search.configspace(space, 0), name="profile", output_directory=Path(out),
                            deterministic=True, n_trials=trials, walltime_limit=math.inf, cputime_limit=math.inf,
                            use_default_config=False, seed=0)
        model = HyperparameterOptimizationFacade.get_model(scenario)
        model._rf_opts["n_jobs"] = smac_search.N_JOBS
        if not smac_capacity:
            smac_search.leaf_capacity_from_rows(model)
        maximizer = HyperparameterOptimizationFacade.get_acquisition_maximizer(scenario, challengers=10_000)
        smac_search.ordered_start_points(maximizer._local_search)
        facade = HyperparameterOptimizationFacade(scenario, target_function=smac_search._never_called, model=model,
                                                  acquisition_maximizer=maximizer, overwrite=True, logging_level=False)
        teller = smac_search._Teller(facade)
        scores = []
        for _ in range(trials):
            info = facade.ask()
            unit = space.encode_values(smac_search.values(info.config, space))
            scores.append(float(-np.sum((unit - 0.3) ** 2)))
            teller.tell(info, scores[-1])
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--smac-capacity", action="store_true")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    start = time.perf_counter()
    profile = cProfile.Profile() if args.profile else None
    if profile:
        profile.enable()
    scores = run(args.trials, args.smac_capacity)
    if profile:
        profile.disable()
        pstats.Stats(profile).sort_stats("cumulative").print_stats(45)
    print(f"wall {time.perf_counter() - start:.1f} s, best {max(scores):.6f}, "
          f"history hash {hash(tuple(np.round(scores, 10)))}")


if __name__ == "__main__":
    main()
