"""``ppo``: a PPO policy meta-trained on cheap synthetic tasks, choosing among GP-proposed candidates (MetaBO-style).

Design, and why
---------------
The seed's proposal — PPO editing one axis at a time in :class:`~env.gym_env.GemSearchEnv`
and learning online — cannot work on a budget of hundreds of real evaluations: PPO's
first rollout alone (``n_steps=2048``) is ten times the budget, and an edit policy
learned from scratch has no notion of where good configurations are. So the learning
happens *before* the run and the policy's job is made small:

1. **Meta-training on cheap tasks** (:mod:`policies.train_ppo`): episodes are searches on
   :class:`~env.tasks.SyntheticTask` draws (same axes as the real space, interactions,
   a ``-inf`` region; microseconds per evaluation), with budgets of 20-100. No real
   evaluation is spent; the step count and wall time are saved beside the policy and
   reported in ``self.stats``.
2. **GP-posterior features, candidate choice** (:class:`~env.gym_env.CandidateSearchEnv`,
   after MetaBO, Volpp et al. 2020): at each real step a small GP (refitted on the
   history) scores ~650 snapped, unseen points — uniform ones and Gaussian steps of three
   radii around the incumbent — and offers ``K = 7`` candidates: the EI x P(feasible)
   argmax of each pool, the UCB and posterior-mean argmax, and one random point. The
   policy sees, per candidate, the standardised mean, std, EI, P(feasible) and distances,
   plus the remaining budget, and picks one: it learns *when* to explore, refine locally
   or exploit, which is a small, task-independent decision that transfers zero-shot from
   the synthetic tasks to the real objective (all features are standardised and
   dimension-free). The ~650 GP predictions per real step are the cheap surrogate
   "planning" (counted in ``stats["surrogate_predictions"]``); a real evaluation is only
   spent on a point the surrogate ranks first under some acquisition.
3. **Reward shaping against the best so far**: the training reward is minus the normalised
   simple regret after every step, so the return is the area under the best-so-far curve
   (anytime performance, which is how searchers are compared).

A degenerate policy still runs a sensible Bayesian optimisation (every candidate is an
acquisition argmax), so the policy can only add a schedule on top of GP-BO; its feature
GP (isotropic, no hyper-parameter optimiser, so that it is cheap enough to train on) is
weaker than :mod:`surrogate.gp`'s ARD GP, which is where it is expected to lose to a
well-tuned GP-BO on high-dimensional real objectives (see ``docs/PPO.md`` for numbers).

Acting: the candidate is *drawn* from the policy's probabilities with
``default_rng([seed, evaluations so far, 1])``, not taken as the most probable one
(option ``greedy=True``): the meta-trained policy is a soft mixture over the candidate
kinds, and its argmax collapses to always exploiting the posterior mean after a few
steps, which measured worse at budget 100 (``docs/PPO.md``).

Contract: deterministic for a fixed seed (candidate pools drawn from
``default_rng([seed, evaluations so far])``, the action as above), spends exactly the objective's budget
(the initial design is capped by it, every later step is one unseen configuration),
handles ``-inf`` (finite scores train the score GP, the feasible/rejected labels a
feasibility GP), and resumes: the state is rebuilt from ``objective.history``, and
because the pools depend only on the seed and the history, a resumed run continues
exactly as an uninterrupted one would.

Options: ``policy_path`` (default ``policies/pretrained/ppo_<space>.zip``), ``greedy`` (default False).

``ppo-edit`` (:class:`PPOEditSearch`, below) is the other action design of issue 17: the design card's
edit actions in :class:`~env.gym_env.GemSearchEnv` with free surrogate queries, meta-trained on emulated
instances (``python -m policies.train_ppo --tasks emulated --design edit``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from env.objective import Objective
from policies.base import Searcher, register

if TYPE_CHECKING:  # torch and stable-baselines3 load in seconds: only when a policy acts
    from stable_baselines3 import PPO

PRETRAINED = Path(__file__).resolve().parent / "pretrained"


def default_policy_path(space_name: str) -> Path:
    """Where the committed policy of a search space lives."""
    return PRETRAINED / f"ppo_{space_name}.zip"


@register("ppo")
class PPOSearch(Searcher):
    """Zero-shot PPO candidate choice on GP features (see the module docstring)."""

    proposal_s = 0.05

    def _load(self, objective: Objective) -> tuple[PPO, dict]:
        space = objective.space
        path = Path(self.options.get("policy_path") or default_policy_path(space.name))
        if not path.exists():
            raise FileNotFoundError(
                f"no pretrained PPO policy for the {space.name!r} space ({len(space)} axes) at {path}; train one with\n"
                f"    python -m policies.train_ppo --space {space.name} --steps 60000 --out {path}"
            )
        from stable_baselines3 import PPO

        model = PPO.load(path, device="cpu")
        meta_path = path.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return model, meta | {"path": str(path)}

    @staticmethod
    def _act(model: PPO, observation: np.ndarray, greedy: bool, rng: np.random.Generator) -> int:
        """The policy's most probable candidate (``greedy``) or one drawn from its probabilities with ``rng``."""
        import torch

        with torch.no_grad():
            obs = torch.as_tensor(observation[None, :], dtype=torch.float32)
            probs = model.policy.get_distribution(obs).distribution.probs[0].numpy().astype(float)
        return int(np.argmax(probs)) if greedy else int(rng.choice(len(probs), p=probs / probs.sum()))

    def search(self, objective: Objective, seed: int) -> None:
        import torch

        from policies.ablation import make_search_env

        torch.set_num_threads(1)
        model, meta = self._load(objective)
        env = make_search_env("candidates", objective, meta)
        if model.observation_space.shape != env.observation_space.shape:
            raise ValueError(f"{meta['path']}: observation shape {model.observation_space.shape} does not match "
                             f"this version's {env.observation_space.shape}; retrain with python -m policies.train_ppo")
        self.stats.update({
            "policy_path": meta["path"], "pretrain_space": meta.get("space"),
            "pretrain_timesteps": meta.get("timesteps"), "pretrain_episodes": meta.get("episodes"),
            "pretrain_wall_s": meta.get("train_wall_s"),
        })
        began = time.perf_counter()
        decisions = 0
        greedy = bool(self.options.get("greedy", False))
        observation, _ = env.reset(seed=seed)
        done = objective.remaining == 0
        while not done:
            action = self._act(model, observation, greedy, np.random.default_rng([seed, objective.used, 1]))
            observation, _, terminated, truncated, _ = env.step(action)
            decisions += 1
            done = terminated or truncated
        self.stats.update({
            "policy_decisions": decisions, "surrogate_predictions": env.gp_predictions,
            "policy_and_surrogate_wall_s": round(time.perf_counter() - began, 3),
        })


EDIT_POLICY = PRETRAINED / "ppo_edit_binance.zip"


@register("ppo-edit")
class PPOEditSearch(Searcher):
    """The edit design (``policies.train_ppo --design edit``): the policy edits one axis of the current
    configuration at a time in :class:`~env.gym_env.GemSearchEnv`, and decides at each step whether to ask the
    surrogate (a GP refitted on the real history; free, at most ``planning`` times in a row) or to spend a real
    evaluation. Zero-shot: meta-trained on emulated instances, no learning during the run.

    Acting as the policy's ``.json`` says (``acting``: chosen on its validation instances), draws from
    ``default_rng([seed, step, 1])``; option ``greedy`` overrides it. Deterministic for a fixed seed. If the
    policy wastes steps until the env truncates (``4 x budget x (1 + planning)`` steps) before the budget is
    spent, the rest is spent on seeded uniform points (``stats["fallback_evaluations"]``), so the budget is
    always spent. Resume: the env starts from the objective's stored history (best, recent evaluations,
    surrogate), so an interrupted run continues, but not identically to an uninterrupted one.

    Options: ``policy_path`` (default ``policies/pretrained/ppo_edit_binance.zip``), ``greedy``.
    """

    proposal_s = 0.05

    def search(self, objective: Objective, seed: int) -> None:
        import torch
        from stable_baselines3 import PPO

        from policies.ablation import action_probabilities, choose, make_search_env

        torch.set_num_threads(1)
        path = Path(self.options.get("policy_path") or EDIT_POLICY)
        if not path.exists():
            raise FileNotFoundError(f"no pretrained edit policy at {path}; train one with\n    python -m policies.train_ppo "
                                    f"--tasks emulated --split binance-to-bybit --design edit --out {path}")
        model = PPO.load(path, device="cpu")
        meta = json.loads(path.with_suffix(".json").read_text())
        env = make_search_env("edit", objective, meta)
        if model.observation_space.shape != env.observation_space.shape:
            raise ValueError(f"{path}: observation shape {model.observation_space.shape} does not match this "
                             f"space's {env.observation_space.shape} (the policy was trained on another space)")
        greedy = bool(self.options.get("greedy", meta.get("acting") == "greedy"))
        self.stats.update({"policy_path": str(path), "pretrain_timesteps": meta.get("timesteps"),
                           "pretrain_wall_s": meta.get("train_wall_s"), "pretrain_split": meta.get("split")})
        began = time.perf_counter()
        decisions = 0
        observation, _ = env.reset(seed=seed)
        done = objective.remaining == 0
        while not done:
            action = choose(action_probabilities(model, observation), greedy,
                            np.random.default_rng([seed, env.steps, 1]))
            observation, _, terminated, truncated, _ = env.step(action)
            decisions += 1
            done = terminated or truncated
        fallback, rng, tries = 0, np.random.default_rng([seed, 0xFA11]), 0
        while objective.remaining > 0 and tries < 100_000:
            unit = objective.space.snap(rng.random((1, len(objective.space))))[0]
            tries += 1
            if not objective.seen(unit):
                objective(unit)
                fallback += 1
        self.stats.update({"policy_decisions": decisions, "surrogate_predictions": env.gp_predictions,
                           "fallback_evaluations": fallback,
                           "policy_and_surrogate_wall_s": round(time.perf_counter() - began, 3)})
