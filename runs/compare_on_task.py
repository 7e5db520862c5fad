"""Searchers on ``SyntheticTask``: the table of ``docs/log/2026-11-searchers-log.md`` (``python -m runs.compare_on_task``).

Each searcher runs once per task seed at the largest budget (all searchers
are anytime: their first ``b`` evaluations do not depend on the budget), and
the best score after ``b`` evaluations is read off its history. Reported per
budget: the median over task seeds of the normalised gap

    (task optimum - best) / (task optimum - random's best at that budget, same task)

so the task optimum is 0 and random is 1 (lower is better), plus the median
raw gap ``optimum - best`` and the searcher's wall time.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

import policies  # noqa: F401  (registers the searchers)
from env import Objective, SyntheticTask
from policies.base import make, run
from strategy.space import SearchSpace


def gaps(name: str, space: SearchSpace, task_seeds: list[int], budgets: list[int], seed: int) -> tuple[np.ndarray, float]:
    """``(len(task_seeds), len(budgets))`` gaps ``optimum - best so far`` and the total wall time (s)."""
    rows, wall = [], 0.0
    for task_seed in task_seeds:
        task = SyntheticTask(space, seed=task_seed)
        objective = Objective(task, budget=max(budgets), searcher=name, seed=seed)
        began = time.perf_counter()
        run(make(name), objective, seed)
        wall += time.perf_counter() - began
        best = objective.best_so_far()
        rows.append([task.best_score - best[min(b, len(best)) - 1] for b in budgets])
    return np.array(rows), wall


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m runs.compare_on_task", description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="joint")
    parser.add_argument("--task-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--budgets", type=int, nargs="+", default=[25, 50, 100])
    parser.add_argument("--seed", type=int, default=0, help="searcher seed")
    parser.add_argument("--searchers", nargs="+", default=["random", "phased", "phased-bear", "tpe", "gp", "ppo"])
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore")
    space = SearchSpace(args.space)
    reference, reference_wall = gaps("random", space, args.task_seeds, args.budgets, args.seed)
    head = " | ".join(f"b={b} norm / raw" for b in args.budgets)
    print(f"space {args.space}, task seeds {args.task_seeds}, searcher seed {args.seed}: median over task seeds")
    print(f"| searcher | {head} | wall s |")
    print("|---" * (len(args.budgets) + 2) + "|")
    for name in args.searchers:
        raw, wall = (reference, reference_wall) if name == "random" else gaps(name, space, args.task_seeds, args.budgets, args.seed)
        norm = np.median(raw / reference, axis=0)
        cells = " | ".join(f"{n:.2f} / {r:.3f}" for n, r in zip(norm, np.median(raw, axis=0)))
        print(f"| {name} | {cells} | {wall:.0f} |", flush=True)


if __name__ == "__main__":
    main()
