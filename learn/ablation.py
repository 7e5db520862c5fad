"""What the learned PPO policies add over fixed rules on the same candidate generator or edit moves.

    python -m learn.ablation --json [--budget 50] [--seeds 3] [--policies ppo_edit_binance ...]
    python -m learn.ablation --validate --split binance-to-bybit --json   # choosing among policies

``--validate`` scores each policy, greedy and sampled, on the split's **validation** instances only
(budget 50, 3 seeds, the same normalised best): the numbers on which a default policy or an acting mode
is chosen (the ``ppo`` searcher's default, ``policies.ppo.DEFAULT_POLICY``), never on test instances.

For every committed policy (``policies/pretrained/*.zip`` with its ``.json``) and every held-out
**test** instance of its split (``learn.train_ppo.split_tasks``; policies trained on synthetic tasks
use ``--split``'s test instances, all of them unseen by such a policy), the same environment is run
with the policy and with fixed rules, ``--seeds`` seeds each, on the emulated instance as it is
(no randomisation):

* design ``candidates`` (:class:`~env.gym_env.CandidateSearchEnv`): ``slot k`` (always candidate ``k``,
  for every ``k``) and ``uniform slot``;
* design ``edit`` (:class:`~env.gym_env.GemSearchEnv` with planning): ``uniform`` (a uniformly random
  action), ``random edit`` (a random axis set to a random value, evaluated at once), ``hill climb``
  (back to the best configuration by a free surrogate query, then a random edit evaluated: a (1+1)
  local search); for a policy with the fresh-point action (``explore``) also ``fresh point`` (always the
  next Sobol point, evaluated: quasi-random search) and ``fresh or climb`` (either, with probability 1/2).

Score: the normalised best, ``1 - regret`` with the regret of :func:`env.gym_env.regret_scale`
(``(bound - best) / (bound - median)`` over 1,024 seeded random configurations scored by the emulator,
bound = the best of them; clipped to ``[-1, 2]``), so 1 = the best of 1,024 random configurations,
0 = a median random configuration, -1 = nothing feasible found, up to 2 above the random best. Printed per policy: ``learned`` (mean over instances and seeds, acting as
the policy's ``acting`` says: chosen on validation instances, sampled for older policies), ``greedy``
and ``sampled``, every fixed rule, ``best_fixed`` (the best rule's name and mean; picked on these
test instances, which favours the rule), ``diff_ci`` (stratified bootstrap 95% CI of learned minus
best fixed rule: instances resampled, then seeds within each; ``stats.paired_difference``),
the ``histogram`` of the learned policy's decisions, and its mean ``entropy`` (nats, and over the maximum).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from stable_baselines3 import PPO
from threadpoolctl import threadpool_limits

from env.gym_env import SLOTS, normalised_regret, regret_scale
from env.objective import Objective
from policies.acting import Act, action_probabilities, choose, fixed_rules, make_search_env
from policies.ppo import PRETRAINED, drive


# ---------------------------------------------------------------------- acting
def entropy(probs: list[np.ndarray]) -> float:
    """Entropy (nats) of a decision: the sum over its independent components."""
    return float(sum(-(p[p > 0] * np.log(p[p > 0])).sum() for p in probs))


def learned(model: PPO, greedy: bool) -> Act:
    def act(observation, env, rng):
        probs = action_probabilities(model, observation)
        return choose(probs, greedy, rng), probs
    return act


# ---------------------------------------------------------------------- episodes
def run_episode(design: str, problem: Any, budget: int, seed: int, act: Act, meta: dict[str, Any],
                scale: tuple[float, float]) -> tuple[float, list[Any], list[float]]:
    """One search of ``budget`` real (emulated) evaluations: normalised best, the actions taken, their entropies."""
    objective = Objective(problem, budget, searcher="ablation", seed=seed)
    env = make_search_env(design, objective, meta)
    actions, entropies = [], []

    def recorded(observation, env, rng):
        action, probs = act(observation, env, rng)
        actions.append(action)
        if probs is not None:
            entropies.append(entropy(probs))
        return action

    drive(env, objective, seed, recorded, lambda env: env.steps)
    return normalised_best(objective, scale), actions, entropies


def normalised_best(objective: Objective, scale: tuple[float, float]) -> float:
    """``1 - regret`` of the best score found (``[-1, 2]``; -1 when nothing feasible was found)."""
    return 1.0 - normalised_regret(objective.best.score if objective.best is not None else -math.inf, scale)


def evaluate(design: str, act: Act, problems: Sequence[Any], budget: int, seeds: Iterable[int],
             meta: dict[str, Any]) -> dict[str, Any]:
    """Mean normalised best over ``problems`` x ``seeds``, the per-instance scores, actions and entropies."""
    per_instance: dict[str, list[float]] = {}
    actions: list[Any] = []
    entropies: list[float] = []
    with threadpool_limits(limits=1):
        for problem in problems:
            scale = regret_scale(problem, problem.space)
            for seed in seeds:
                score, taken, spread = run_episode(design, problem, budget, int(seed), act, meta, scale)
                per_instance.setdefault(problem.instance, []).append(score)
                actions += taken
                entropies += spread
    flat = [s for scores in per_instance.values() for s in scores]
    return {"mean": float(np.mean(flat)), "per_instance": per_instance, "actions": actions, "entropies": entropies}


def evaluate_policy(model: PPO, meta: dict[str, Any], problems: Sequence[Any], budget: int, seeds: Iterable[int],
                    greedy: bool) -> dict[str, Any]:
    """:func:`evaluate` with the policy acting (greedy or sampled); used by training to choose on validation instances."""
    torch.set_num_threads(1)
    return evaluate(meta.get("action_design", "candidates"), learned(model, greedy), problems, budget, seeds, meta)


def validation_scores(model: PPO, meta: dict[str, Any], problems: Sequence[Any], budget: int,
                      seeds: int) -> dict[str, float]:
    """Mean normalised best of the policy acting greedy and sampled (``{"greedy": ..., "sampled": ...}``): what a
    policy's acting mode and the searchers' default policies are chosen on, on validation instances."""
    return {mode: evaluate_policy(model, meta, problems, budget, range(seeds), greedy=(mode == "greedy"))["mean"]
            for mode in ("greedy", "sampled")}


def histogram(design: str, actions: list[Any], d: int) -> dict[str, float]:
    """Shares of the learned policy's decisions: per slot, or per kind of edit move."""
    if not actions:
        return {}
    if design == "candidates":
        counts = np.bincount(np.asarray(actions, dtype=int), minlength=len(SLOTS))
        return {f"slot {k} ({name})": float(c / counts.sum()) for k, (name, c) in enumerate(zip(SLOTS, counts))}
    moves: dict[str, int] = {}
    for action in actions:
        kind = {d: "back to best", d + 1: "fresh point"}.get(int(action[0]), "edit")
        kind += " (surrogate query)" if len(action) > 2 and int(action[2]) == 0 else " (real)"
        moves[kind] = moves.get(kind, 0) + 1
    return {k: v / len(actions) for k, v in sorted(moves.items())}


# ---------------------------------------------------------------------- report
def default_split(emulators: Path | None = None) -> str:
    """``binance-to-bybit`` when the real-v1 emulator is there, else ``synthetic-v1``."""
    from surrogate.emulator import emulator_path

    folder = {"folder": emulators} if emulators is not None else {}
    return "binance-to-bybit" if emulator_path("real-v1", **folder).exists() else "synthetic-v1"


def ablate(name: str, budget: int = 50, seeds: int = 3, split: str | None = None, folder: Path = PRETRAINED,
           max_instances: int | None = None, reps: int = 2000, emulators: Path | None = None) -> dict[str, Any]:
    """The ablation of one committed policy (see the module docstring); ``skipped`` says why when it cannot run."""
    from learn.train_ppo import split_tasks
    from stats import paired_difference
    from surrogate.emulator import emulator_path, suite_problems

    meta = json.loads((folder / f"{name}.json").read_text())
    design = meta.get("action_design", "candidates")
    split = meta.get("split") or split or default_split(emulators)
    tasks = split_tasks(split)
    test = tasks["test_tasks"][:max_instances] if max_instances else tasks["test_tasks"]
    out: dict[str, Any] = {"name": name, "action_design": design, "timesteps": meta.get("timesteps"), "split": split,
                           "test_tasks": test, "budget": budget, "seeds": seeds}
    space = meta.get("space", "joint")
    path = emulator_path(tasks["suite"], None if space == "joint" else space,
                         **({"folder": emulators} if emulators is not None else {}))
    if not path.exists():
        return out | {"skipped": f"no emulator of the {space!r} space for {tasks['suite']} ({path.name})"}
    began = time.perf_counter()
    problems = suite_problems(tasks["suite"], path=path, instances=test)
    model = PPO.load(folder / f"{name}.zip", device="cpu")
    env = make_search_env(design, Objective(problems[0], budget), meta)
    if model.observation_space.shape != env.observation_space.shape:
        return out | {"skipped": f"observation shape {model.observation_space.shape}, this version's "
                                 f"{env.observation_space.shape}: retrain it"}
    d = len(problems[0].space)
    runs = {mode: evaluate_policy(model, meta, problems, budget, range(seeds), greedy=(mode == "greedy"))
            for mode in ("greedy", "sampled")}
    rules = {rule: evaluate(design, act, problems, budget, range(seeds), meta)
             for rule, act in fixed_rules(design, d, int(meta.get("planning", 0)), int(meta.get("n_bins", 11)),
                                          bool(meta.get("explore", False))).items()}
    acting = meta.get("acting", "sampled")
    best_rule = max(rules, key=lambda r: rules[r]["mean"])
    ids = [p.instance for p in problems]
    diff = paired_difference([runs[acting]["per_instance"][i] for i in ids],
                             [rules[best_rule]["per_instance"][i] for i in ids], reps=reps, seed=0)
    spread = runs[acting]["entropies"]
    max_entropy = float(np.log(env.action_space.n)) if design == "candidates" else float(np.log(env.action_space.nvec).sum())
    return out | {
        "acting": acting, "learned": runs[acting]["mean"],
        "greedy": runs["greedy"]["mean"], "sampled": runs["sampled"]["mean"],
        "fixed": {rule: result["mean"] for rule, result in rules.items()},
        "best_fixed": {"rule": best_rule, "mean": rules[best_rule]["mean"]},
        "diff_mean": diff["mean"], "diff_ci": diff["mean_ci"],
        "per_instance_diff": dict(zip(ids, map(float, diff["differences"]))),
        "histogram": histogram(design, runs[acting]["actions"], d),
        "entropy": float(np.mean(spread)) if spread else None,
        "entropy_over_max": float(np.mean(spread) / max_entropy) if spread else None,
        "wall_s": round(time.perf_counter() - began, 1),
    }


def validate(name: str, split: str, budget: int = 50, seeds: int = 3, folder: Path = PRETRAINED,
             emulators: Path | None = None) -> dict[str, Any]:
    """One policy's mean normalised best on ``split``'s validation instances, greedy and sampled (see ``--validate``).

    The policy's own split, when it has one, must be ``split``: the validation instances of another split may be
    that policy's training or test instances."""
    from learn.train_ppo import load_tasks, split_tasks

    meta = json.loads((folder / f"{name}.json").read_text())
    if meta.get("split") not in (None, split):
        return {"name": name, "split": split, "skipped": f"trained on the {meta['split']} split"}
    problems = load_tasks(split, "validation_tasks", emulators)
    model = PPO.load(folder / f"{name}.zip", device="cpu")
    began = time.perf_counter()
    scores = validation_scores(model, meta, problems, budget, seeds)
    return {"name": name, "action_design": meta.get("action_design", "candidates"), "space": meta.get("space"),
            "timesteps": meta.get("timesteps"), "split": split, "validation_tasks": split_tasks(split)["validation_tasks"],
            "budget": budget, "seeds": seeds, **scores, "best": max(scores.values()),
            "wall_s": round(time.perf_counter() - began, 1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=3, help="seeds per test instance")
    parser.add_argument("--policies", nargs="*", default=None, help="names in policies/pretrained (default: all)")
    parser.add_argument("--split", default=None, help="test instances for policies trained on synthetic tasks "
                                                      "(default binance-to-bybit, or synthetic-v1 without real-v1)")
    parser.add_argument("--max-instances", type=int, default=None, help="only the first N test instances (quick runs)")
    parser.add_argument("--folder", type=Path, default=PRETRAINED)
    parser.add_argument("--emulators", type=Path, default=None,
                        help="folder of the emulator containers (default: the committed surrogate/emulators)")
    parser.add_argument("--json", action="store_true", help="strict JSON on stdout")
    parser.add_argument("--validate", action="store_true",
                        help="score the policies on the --split's validation instances (for choosing among them)")
    args = parser.parse_args(argv)
    names = args.policies or sorted(p.stem for p in args.folder.glob("*.json") if p.with_suffix(".zip").exists())
    torch.set_num_threads(1)
    if args.validate:
        split = args.split or default_split(args.emulators)
        rows = [validate(name, split, args.budget, args.seeds, args.folder, args.emulators) for name in names]
        if args.json:
            from stats import json_safe

            print(json.dumps(json_safe(rows), indent=1, allow_nan=False))
        for row in rows if not args.json else []:
            print(f"{row['name']}: " + (f"skipped ({row['skipped']})" if "skipped" in row else
                  f"greedy {row['greedy']:.3f}  sampled {row['sampled']:.3f}  on {', '.join(row['validation_tasks'])} "
                  f"(budget {row['budget']}, {row['seeds']} seeds)"))
        return
    report = [ablate(name, args.budget, args.seeds, args.split, args.folder, args.max_instances, emulators=args.emulators)
              for name in names]
    if args.json:
        from stats import json_safe

        print(json.dumps(json_safe(report), indent=1, allow_nan=False))
        return
    for row in report:
        if "skipped" in row:
            print(f"{row['name']}: skipped ({row['skipped']})")
            continue
        lo, hi = row["diff_ci"]
        print(f"{row['name']} ({row['action_design']}, {row['timesteps']:,} steps, split {row['split']}, "
              f"{len(row['test_tasks'])} test instances x {row['seeds']} seeds, budget {row['budget']}):")
        print(f"  learned ({row['acting']}) {row['learned']:.3f}  greedy {row['greedy']:.3f}  sampled {row['sampled']:.3f}")
        print(f"  best fixed: {row['best_fixed']['rule']} {row['best_fixed']['mean']:.3f}; "
              f"learned - best fixed {row['diff_mean']:+.3f} [{lo:+.3f}, {hi:+.3f}]")
        print("  fixed: " + ", ".join(f"{k} {v:.3f}" for k, v in row["fixed"].items()))
        print("  decisions: " + ", ".join(f"{k} {v:.0%}" for k, v in row["histogram"].items())
              + f"; entropy {row['entropy']:.2f} nats ({row['entropy_over_max']:.0%} of max)")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
