"""``ppo``: a PPO policy meta-trained on emulated real-market instances, choosing among GP-proposed candidates (MetaBO-style).

Design, and why
---------------
The seed's proposal — PPO editing one axis at a time in :class:`~env.gym_env.GemSearchEnv`
and learning online — cannot work on a budget of hundreds of real evaluations: PPO's
first rollout alone (``n_steps=2048``) is ten times the budget, and an edit policy
learned from scratch has no notion of where good configurations are. So the learning
happens *before* the run and the policy's job is made small:

1. **Meta-training on cheap tasks** (:mod:`learn.train_ppo`): episodes are searches on the
   emulators of real problem instances (``--tasks emulated --split ...``: a fitted model of the
   real harness per instance, randomised per episode), or on :class:`~env.tasks.SyntheticTask`
   draws (``--tasks synthetic``), with budgets of 20-100. No real evaluation is spent; the step
   count, wall time and the split's training / validation / test instances are saved beside the
   policy and reported in ``self.stats``.
2. **GP-posterior features, candidate choice** (:class:`~env.gym_env.CandidateSearchEnv`,
   after MetaBO, Volpp et al. 2020): at each real step a small GP (refitted on the
   history) scores ~650 snapped, unseen points — uniform ones and Gaussian steps of three
   radii around the incumbent — and offers ``K = 7`` candidates: the EI x P(feasible)
   argmax of each pool, the UCB and posterior-mean argmax, and one random point. The
   policy sees, per candidate, the standardised mean, std, EI, P(feasible) and distances,
   plus the remaining budget, and picks one: it learns *when* to explore, refine locally
   or exploit. The features are standardised and dimension-free (47 numbers on every space),
   so a policy trained on the joint space acts on any space. The ~650 GP predictions per real
   step are the cheap surrogate "planning" (counted in ``stats["surrogate_predictions"]``); a
   real evaluation is only spent on a point the surrogate ranks first under some acquisition.
3. **Reward shaping against the best so far**: the training reward is the normalised improvement
   of the best so far (its return is the area under the best-so-far curve: anytime performance,
   which is how searchers are compared).

A degenerate policy still runs a sensible Bayesian optimisation (every candidate is an
acquisition argmax), so the policy can only add a schedule on top of GP-BO; its feature
GP (isotropic, no hyper-parameter optimiser, so that it is cheap enough to train on) is
weaker than :mod:`surrogate.gp`'s ARD GP, which is where it is expected to lose to a
well-tuned GP-BO on high-dimensional real objectives (see ``docs/RESULTS.md`` for numbers).

Default policy: :data:`DEFAULT_POLICY`, chosen among the committed candidate policies on the
validation instances of its split (``python -m learn.ablation --validate``; docs/howto/training-a-policy.md). It was
meta-trained on the emulators of ``real-v1``'s Binance spot instances: a run on one of its training or
validation instances is not a held-out result, so the searcher records the instance's role in
``stats["pretrain_role"]`` (``training`` / ``validation`` / ``test`` / ``unseen``) and warns on the first two.

Acting as the policy's ``.json`` says (``acting``: greedy or sampled, chosen on its validation instances;
sampled for policies that predate the choice); option ``greedy`` overrides it. A sampled candidate is
drawn from the policy's probabilities with ``default_rng([seed, evaluations so far, 1])``.

Contract: deterministic for a fixed seed (candidate pools drawn from
``default_rng([seed, evaluations so far])``, the action as above), spends exactly the objective's budget
(the initial design is capped by it, every later step is one unseen configuration),
handles ``-inf`` (finite scores train the score GP, the feasible/rejected labels a
feasibility GP), and resumes: the state is rebuilt from ``objective.history``, and
because the pools depend only on the seed and the history, a resumed run continues
exactly as an uninterrupted one would.

Options: ``policy_path`` (default :data:`DEFAULT_POLICY`), ``greedy`` (default: the policy's ``acting``).

``ppo-edit`` (:class:`PPOEditSearch`, below) is the other action design of issue 17: the design card's
edit actions in :class:`~env.gym_env.GemSearchEnv` with free surrogate queries, meta-trained on emulated
instances (``python -m learn.train_ppo --tasks emulated --design edit``).
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from env.objective import Objective
from policies.base import Searcher, register, torch_threads

PRETRAINED = Path(__file__).resolve().parent / "pretrained"
DEFAULT_POLICY = PRETRAINED / "ppo_candidates_binance.zip"
"""The ``ppo`` searcher's policy: the best of the committed candidate policies on the ``binance-to-bybit``
validation instances (greedy 1.360 against 1.047 for the synthetic-trained 110k-step policy and 0.833 for the
core-space one, budget 50, 3 seeds; ``python -m learn.ablation --validate --split binance-to-bybit``)."""


def committed_policies(design: str) -> dict[str, dict[str, Any]]:
    """``{name: .json metadata}`` of the committed ``design`` policies (``policies/pretrained/<name>.zip`` with its
    ``.json``), by name."""
    policies = {}
    for meta_path in sorted(PRETRAINED.glob("*.json")):
        meta = json.loads(meta_path.read_text())
        if meta.get("action_design", "candidates") == design and meta_path.with_suffix(".zip").exists():
            policies[meta_path.stem] = meta
    return policies


def committed_policy(variant: str, design: str) -> dict[str, Any]:
    """``policy_path`` option of the searcher name ``<searcher>@<variant>``: the committed policy
    ``policies/pretrained/<variant>.zip`` of ``design``; ``ValueError`` naming the committed ones otherwise."""
    known = committed_policies(design)
    if variant not in known:
        raise ValueError(f"no committed {design} policy {variant!r} in {PRETRAINED}; committed: {', '.join(known)}")
    return {"policy_path": str(PRETRAINED / f"{variant}.zip")}


HELD_OUT = "held-out"
"""The variant ``ppo@held-out`` / ``ppo-edit@held-out``: on each instance, a committed policy that never saw it."""


def held_out_policy(design: str, instance: str, default: Path) -> Path:
    """A committed ``design`` policy for which ``instance`` is a test (or unseen) instance: ``default`` when it
    qualifies, else the first such policy by name (the leave-one-venue-out partner: a Binance instance gets the
    policy trained on Bybit and the reverse); ``default`` when none does (the run then records its role and warns).
    """
    known = committed_policies(design)
    for name in sorted(known, key=lambda name: name != default.stem):  # stable: the default, then by name
        if pretrain_role(known[name], instance) in ("test", "unseen"):
            return PRETRAINED / f"{name}.zip"
    return default


def pretrain_role(meta: dict[str, Any], instance: str) -> str:
    """What ``instance`` was to the policy whose ``.json`` is ``meta``: ``training``, ``validation``, ``test`` or
    ``unseen`` (policies trained on synthetic tasks have seen no instance)."""
    for role in ("training", "validation", "test"):
        if instance and instance in meta.get(f"{role}_tasks", ()):
            return role
    return "unseen"


def load_policy(path: Path, design: str, objective: Objective) -> tuple[Any, dict[str, Any], Any]:
    """The policy at ``path``, its ``.json`` (``{}`` when absent) and the environment it acts in on ``objective``.

    A missing policy or one trained for another observation shape is a clear error."""
    from stable_baselines3 import PPO

    from policies.acting import make_search_env

    if not path.exists():
        raise FileNotFoundError(f"no pretrained {design} policy at {path}; train one with\n    python -m "
                                f"learn.train_ppo --tasks emulated --split binance-to-bybit --design {design} --out {path}")
    model = PPO.load(path, device="cpu")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    env = make_search_env(design, objective, meta)
    if model.observation_space.shape != env.observation_space.shape:
        raise ValueError(f"{path}: observation shape {model.observation_space.shape} does not match this "
                         f"version's {env.observation_space.shape}; retrain with python -m learn.train_ppo")
    return model, meta, env


def drive(env: Any, objective: Objective, seed: int, act: Callable[[np.ndarray, Any, np.random.Generator], Any],
          key: Callable[[Any], int]) -> int:
    """Run ``env`` on ``objective`` from ``reset(seed)`` until it ends, acting with ``act(observation, env, rng)``,
    ``rng = default_rng([seed, key(env), 1])``; returns the number of decisions."""
    observation, _ = env.reset(seed=seed)
    decisions, done = 0, objective.remaining == 0
    while not done:
        action = act(observation, env, np.random.default_rng([seed, key(env), 1]))
        observation, _, terminated, truncated, _ = env.step(action)
        decisions += 1
        done = terminated or truncated
    return decisions


def spend_the_rest(objective: Objective, seed: int) -> int:
    """Spend what an edit-design run left of the budget on seeded uniform unseen points; returns how many."""
    fallback, rng, tries = 0, np.random.default_rng([seed, 0xFA11]), 0
    while objective.remaining > 0 and tries < 100_000:
        unit = objective.space.snap(rng.random((1, len(objective.space))))[0]
        tries += 1
        if not objective.seen(unit):
            objective(unit)
            fallback += 1
    return fallback


def _used(env: Any) -> int:  # candidate design: the action's draw depends on the history only (resume = same run)
    return env.objective.used


def _steps(env: Any) -> int:
    return env.steps


def _policy_act(model: Any, greedy: bool) -> Callable[[np.ndarray, Any, np.random.Generator], Any]:
    from policies.acting import action_probabilities, choose

    return lambda observation, env, rng: choose(action_probabilities(model, observation), greedy, rng)


EDIT_POLICY = PRETRAINED / "ppo_edit_binance.zip"


def _key(design: str) -> Callable[[Any], int]:
    return _used if design == "candidates" else _steps


def replay_if_edit(design: str, objective: Objective) -> None:
    """Resume an edit-design run by replaying it (:meth:`~env.objective.Objective.replay`): its observation holds
    the recent evaluations, the best so far and the budget left at each step, and its draws are keyed by the step,
    so it retraces the stored run only if handed the stored trials one at a time. (The candidate design's state
    and draws are functions of the history alone: it resumes from the full stored history.)"""
    if design == "edit":
        objective.replay()


class LearnedSearch(Searcher):
    """A committed policy acting zero-shot in its design's environment (``ppo``, ``ppo-edit``)."""

    proposal_s = 0.05
    design: str = "candidates"
    default_policy: Path = DEFAULT_POLICY

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        return {"held_out": True} if variant == HELD_OUT else committed_policy(variant, cls.design)

    def search(self, objective: Objective, seed: int) -> None:
        replay_if_edit(self.design, objective)
        instance = str(getattr(objective.problem, "instance", "") or "")
        path = Path(self.options.get("policy_path") or self.default_policy)
        if self.options.get("held_out"):
            path = held_out_policy(self.design, instance, path)
        model, meta, env = load_policy(path, self.design, objective)
        greedy = bool(self.options.get("greedy", meta.get("acting") == "greedy"))
        role = pretrain_role(meta, instance)
        if role in ("training", "validation"):  # the result is not held out
            warnings.warn(f"{self.name}: {objective.problem.instance} is one of {path.name}'s {role} instances: "
                          f"this run is not a held-out result", stacklevel=2)
        self.stats.update({
            "policy_path": str(path), "pretrain_space": meta.get("space"), "pretrain_split": meta.get("split"),
            "pretrain_timesteps": meta.get("timesteps"), "pretrain_episodes": meta.get("episodes"),
            "pretrain_wall_s": meta.get("train_wall_s"), "acting": "greedy" if greedy else "sampled",
            "pretrain_role": role,
        })
        began = time.perf_counter()
        with torch_threads():
            decisions = drive(env, objective, seed, _policy_act(model, greedy), _key(self.design))
        fallback = spend_the_rest(objective, seed) if self.design == "edit" else 0
        self.stats.update({"policy_decisions": decisions, "surrogate_predictions": env.gp_predictions,
                           "fallback_evaluations": fallback,
                           "policy_and_surrogate_wall_s": round(time.perf_counter() - began, 3)})


@register("ppo")
class PPOSearch(LearnedSearch):
    """Zero-shot PPO candidate choice on GP features (see the module docstring). ``ppo@<policy>`` runs another
    committed candidates policy (``policies/pretrained/<policy>.zip``); ``ppo@held-out`` runs, on each instance,
    a committed candidates policy that never saw it (:func:`held_out_policy`)."""

    design, default_policy = "candidates", DEFAULT_POLICY


@register("ppo-edit")
class PPOEditSearch(LearnedSearch):
    """The edit design (``learn.train_ppo --design edit``): the policy edits one axis of the current
    configuration at a time in :class:`~env.gym_env.GemSearchEnv`, and decides at each step whether to ask the
    surrogate (a GP refitted on the real history; free, at most ``planning`` times in a row) or to spend a real
    evaluation. Zero-shot: meta-trained on emulated instances, no learning during the run.

    Acting as the policy's ``.json`` says (``acting``: chosen on its validation instances), draws from
    ``default_rng([seed, step, 1])``; option ``greedy`` overrides it. Deterministic for a fixed seed. If the
    policy wastes steps until the env truncates (``4 x budget x (1 + planning)`` steps) before the budget is
    spent, the rest is spent on seeded uniform points (``stats["fallback_evaluations"]``), so the budget is
    always spent. Resume: the run replays its stored evaluations (:func:`replay_if_edit`), so an interrupted run
    continues exactly as the uninterrupted one would have.

    Options: ``policy_path`` (default ``policies/pretrained/ppo_edit_binance.zip``), ``greedy``;
    ``ppo-edit@<policy>`` runs another committed edit policy, ``ppo-edit@held-out`` one that never saw the instance.
    """

    design, default_policy = "edit", EDIT_POLICY


class FixedRuleSearch(Searcher):
    """A learned searcher's environment driven by one of the ablation's fixed rules instead of the policy
    (``policies.acting.fixed_rules``): the real-harness counterpart of the ablation's "best fixed rule".

    The environment is built with the settings of the design's default policy (its ``.json``: planning, bins,
    fresh-point action), so the rule and the policy act on the same candidates or moves; the rule's random draws
    come from ``default_rng([seed, key, 1])`` as the policy's do. Deterministic for a fixed seed.
    """

    proposal_s = 0.05
    design: str = "candidates"
    rule: str = ""
    policy: Path = DEFAULT_POLICY

    def search(self, objective: Objective, seed: int) -> None:
        from policies.acting import fixed_rules, make_search_env

        replay_if_edit(self.design, objective)
        meta = json.loads(self.policy.with_suffix(".json").read_text())
        env = make_search_env(self.design, objective, meta)
        act = fixed_rules(self.design, len(objective.space), int(meta.get("planning", 0)), int(meta.get("n_bins", 11)),
                          bool(meta.get("explore", False)))[self.rule]
        began = time.perf_counter()
        decisions = drive(env, objective, seed, lambda obs, env, rng: act(obs, env, rng)[0], _key(self.design))
        fallback = spend_the_rest(objective, seed) if self.design == "edit" else 0
        self.stats.update({"rule": self.rule, "env_settings_from": self.policy.name, "policy_decisions": decisions,
                           "surrogate_predictions": env.gp_predictions, "fallback_evaluations": fallback,
                           "policy_and_surrogate_wall_s": round(time.perf_counter() - began, 3)})


@register("candidates-ucb")
class CandidatesUCBSearch(FixedRuleSearch):
    """``ppo``'s candidate generator, always taking the UCB candidate (slot 4): the best fixed rule of the
    candidate-policy ablation on the emulated Bybit test instances (docs/RESULTS.md)."""

    design, rule, policy = "candidates", "slot 4 (ucb)", DEFAULT_POLICY


@register("edit-fresh-or-climb")
class EditFreshOrClimbSearch(FixedRuleSearch):
    """``ppo-edit``'s environment, driven by "fresh or climb" (a fresh Sobol point or a hill-climbing edit, each with
    probability 1/2): the best fixed rule of the edit-policy ablation on the emulated Bybit test instances."""

    design, rule, policy = "edit", "fresh or climb", EDIT_POLICY
