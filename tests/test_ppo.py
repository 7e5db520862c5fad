"""The ``ppo`` searcher: budget, determinism, -inf, resume, beating random, and a tiny training run."""

from __future__ import annotations

import math
import numpy as np
import pytest

import policies.ppo  # noqa: F401  (registers "ppo")
from env import Objective, SyntheticTask, TrialStore
from env.gym_env import CandidateSearchEnv
from env.records import params_key
from harness.evaluate import EvalResult
from policies.base import make, run
from policies.ppo import default_policy_path
from policies.train_ppo import train
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace

HELD_OUT_TASKS = (0, 1, 2, 3, 4)
"""SyntheticTask seeds never drawn in training (training draws seeds >= 1_000_000)."""


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace("joint")


def _ppo(objective: Objective, seed: int = 0) -> list:
    return run(make("ppo"), objective, seed=seed)


def _keys(records) -> list[str]:
    return [params_key(r.params) for r in records]


class RejectEverything:
    """A problem whose every configuration is rejected (``-inf``)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        return EvalResult(score=-math.inf, base={}, stress={}, contract="reject-all", first_day="", last_day="")


class InterruptedTask(SyntheticTask):
    """A synthetic task whose process "dies" (``KeyboardInterrupt``) on evaluation number ``stop_after``."""

    stop_after: int = 10**9

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        self.stop_after -= 1
        if self.stop_after < 0:
            raise KeyboardInterrupt
        return super().evaluate(params)


def test_the_committed_policy_exists_and_is_small():
    path = default_policy_path("joint")
    assert path.exists() and path.stat().st_size < 2_000_000
    assert path.with_suffix(".json").exists()


def test_budget_is_spent_exactly_without_duplicates(space):
    for budget in (3, 23):
        objective = Objective(SyntheticTask(space, seed=7), budget, searcher="ppo")
        history = _ppo(objective)
        assert objective.used == budget and objective.remaining == 0
        assert len(set(_keys(history))) == budget


def test_deterministic_for_a_fixed_seed(space):
    runs = [_keys(_ppo(Objective(SyntheticTask(space, seed=8), 25, searcher="ppo"), seed=s)) for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_rejections_are_handled(space):
    objective = Objective(RejectEverything(space), 15, searcher="ppo")
    history = _ppo(objective)
    assert len(history) == 15 and all(r.rejected for r in history)
    task = SyntheticTask(space, seed=9)  # a task with a -inf corner: the search moves on and improves
    history = _ppo(Objective(task, 40, searcher="ppo"))
    assert np.isfinite(max(r.score for r in history))


def test_resume_from_the_store_extends_without_repeating(tmp_path, space):
    def store() -> TrialStore:
        return TrialStore(f"sqlite:///{tmp_path}/trials.db", "exp", "ppo", 0, space, tsv_path=tmp_path / "ppo-0.tsv")

    task = SyntheticTask(space, seed=10)
    first = _ppo(Objective(task, 20, searcher="ppo", store=store()))
    first_keys = _keys(first)
    resumed = _ppo(Objective(task, 40, searcher="ppo", store=store()))
    assert [r.eval_index for r in resumed] == list(range(40))
    assert _keys(resumed)[:20] == first_keys
    assert len(set(_keys(resumed))) == 40


def test_an_interrupted_run_resumes_exactly_as_if_uninterrupted(tmp_path, space):
    whole = _keys(_ppo(Objective(SyntheticTask(space, seed=11), 30, searcher="ppo")))
    store = lambda: TrialStore(f"sqlite:///{tmp_path}/t.db", "exp", "ppo", 0, space)  # noqa: E731
    dying = InterruptedTask(space, seed=11)
    dying.stop_after = 17
    with pytest.raises(KeyboardInterrupt):
        _ppo(Objective(dying, 30, searcher="ppo", store=store()))
    resumed = _ppo(Objective(SyntheticTask(space, seed=11), 30, searcher="ppo", store=store()))
    assert _keys(resumed) == whole


def test_beats_random_search_on_held_out_tasks(space):
    """Normalised best at budget 60 on 5 held-out tasks: PPO above random on >= 4, median gap > 0.05 (measured 0.156)."""
    budget = 60
    gaps = []
    for seed in HELD_OUT_TASKS:
        task = SyntheticTask(space, seed=seed)
        scores = task.score_unit(space.snap(np.random.default_rng(seed).random((256, len(space)))))
        reference = float(np.median(scores[np.isfinite(scores)]))
        normalise = lambda s: (s - reference) / (task.upper_bound - reference)  # noqa: E731
        ppo = Objective(task, budget, searcher="ppo")
        _ppo(ppo, seed=0)
        rng = np.random.default_rng(seed)
        uniform = Objective(task, budget, searcher="random")
        for _ in range(budget):
            uniform(space.sample(rng))
        gaps.append(normalise(ppo.best.score) - normalise(uniform.best.score))
    assert np.median(gaps) > 0.05, gaps
    assert sum(g > 0 for g in gaps) >= 4, gaps


def test_missing_policy_is_a_clear_error(space, tmp_path):
    objective = Objective(SyntheticTask(space, seed=0), 5, searcher="ppo")
    with pytest.raises(FileNotFoundError, match="python -m policies.train_ppo --space joint"):
        run(make("ppo", policy_path=str(tmp_path / "missing.zip")), objective, seed=0)


def test_a_tiny_training_run_gives_a_loadable_policy(tmp_path):
    out = tmp_path / "tiny.zip"
    meta = train("core", 512, out, seed=0, budget=(8, 12))
    assert out.exists() and out.with_suffix(".csv").exists() and out.with_suffix(".png").exists()
    assert meta["timesteps"] >= 512 and meta["curve"]
    core = SearchSpace("core")
    searcher = make("ppo", policy_path=str(out))
    objective = Objective(SyntheticTask(core, seed=1), 10, searcher="ppo")
    run(searcher, objective, seed=0)
    assert objective.used == 10 and searcher.stats["pretrain_timesteps"] == meta["timesteps"]
    assert searcher.stats["surrogate_predictions"] > 0


def test_candidate_env_passes_the_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(CandidateSearchEnv("core", budget=12), skip_render_check=True)
    sb3_check_env(CandidateSearchEnv("core", budget=12))
