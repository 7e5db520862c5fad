"""Acting with a meta-trained PPO policy or a fixed rule in a search environment (what ``policies.ppo`` needs at run time).

``make_search_env`` builds the environment a policy of a design (``edit`` or ``candidates``) acts in on an
``Objective``; ``action_probabilities`` and ``choose`` turn a policy's output into an action; ``fixed_rules`` are
the rules a learned policy is compared with (``learn.ablation``). Training lives in ``learn.train_ppo``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from stable_baselines3 import PPO

from env.gym_env import SLOTS, CandidateSearchEnv, GemSearchEnv
from env.objective import Objective

Act = Callable[[np.ndarray, Any, np.random.Generator], tuple[Any, "list[np.ndarray] | None"]]
"""A way to act: ``(observation, env, rng) -> (action, the policy's probabilities or None for a fixed rule)``."""


def action_probabilities(model: PPO, observation: np.ndarray) -> list[np.ndarray]:
    """The policy's probabilities: one array per action component (one for ``Discrete``, several for ``MultiDiscrete``)."""
    with torch.no_grad():
        obs = torch.as_tensor(np.asarray(observation)[None, :], dtype=torch.float32)
        dist = model.policy.get_distribution(obs).distribution
    return [d.probs[0].numpy().astype(float) for d in (dist if isinstance(dist, list) else [dist])]


def choose(probs: list[np.ndarray], greedy: bool, rng: np.random.Generator) -> Any:
    """The most probable value of each component (``greedy``) or one drawn with ``rng``; an int for one component."""
    picks = [int(np.argmax(p)) if greedy else int(rng.choice(len(p), p=p / p.sum())) for p in probs]
    return picks[0] if len(picks) == 1 else np.array(picks)


def fixed_rules(design: str, d: int, planning: int, n_bins: int = 11, explore: bool = False) -> dict[str, Act]:
    """The fixed rules compared with a policy of ``design`` (see the module docstring)."""
    if design == "candidates":
        rules: dict[str, Act] = {f"slot {k} ({name})": (lambda k: lambda obs, env, rng: (k, None))(k)
                                 for k, name in enumerate(SLOTS)}
        rules["uniform slot"] = lambda obs, env, rng: (int(rng.integers(len(SLOTS))), None)
        return rules
    real = [1] if planning else []

    def uniform(obs, env, rng):
        return np.array([rng.integers(n) for n in env.action_space.nvec]), None

    def random_edit(obs, env, rng):
        return np.array([rng.integers(d), rng.integers(n_bins)] + real), None

    def hill_climb(obs, env, rng):
        if planning and env.steps % 2 == 0:  # a free query moves the walk back to the best configuration
            return np.array([d, 0, 0]), None
        return random_edit(obs, env, rng)

    rules = {"uniform": uniform, "random edit": random_edit, "hill climb": hill_climb}
    if explore:
        def fresh_point(obs, env, rng):
            return np.array([d + 1, 0] + real), None

        def fresh_or_climb(obs, env, rng):
            return fresh_point(obs, env, rng) if rng.random() < 0.5 else hill_climb(obs, env, rng)

        rules |= {"fresh point": fresh_point, "fresh or climb": fresh_or_climb}
    return rules


def make_search_env(design: str, objective: Objective, meta: dict[str, Any]):
    """The environment a policy of ``design`` acts in on ``objective`` (no randomisation, no axis permutation)."""
    if design == "candidates":
        return CandidateSearchEnv(objective.space, objective_factory=lambda: objective)
    return GemSearchEnv(budget=objective.budget, objective_factory=lambda: objective,
                        planning=int(meta.get("planning", 0)), n_bins=int(meta.get("n_bins", 11)),
                        explore=bool(meta.get("explore", False)))
