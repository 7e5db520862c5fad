"""The arena: budget, duplicate cache, trial store (Optuna + TSV), resume after kill -9, the gymnasium env."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import optuna
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import env
from env import BudgetExhausted, Objective, StoreError, SyntheticTask, TrialStore
from env.gym_env import GemSearchEnv
from strategy.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def space() -> SearchSpace:
    return SearchSpace("joint")


@pytest.fixture(scope="module")
def task(space) -> SyntheticTask:
    return SyntheticTask(space, seed=3)


def _store(tmp_path: Path, space: SearchSpace, name: str = "exp") -> TrialStore:
    return TrialStore(f"sqlite:///{tmp_path}/trials.db", name, "random", 0, space, tsv_path=tmp_path / "random-0.tsv")


def test_budget_cannot_be_exceeded_and_duplicates_are_free(task, space):
    objective = Objective(task, budget=5, searcher="random")
    rng = np.random.default_rng(0)
    points = [rng.random(len(space)) for _ in range(5)]
    for point in points:
        objective(point)
    assert objective.used == 5 and objective.remaining == 0
    again = objective(points[2])  # a duplicate is answered from the cache, budget or not
    assert again is objective.history[2] and objective.cache_hits == 1 and objective.used == 5
    with pytest.raises(BudgetExhausted, match="budget of 5"):
        objective(rng.random(len(space)))


def test_rejections_stay_minus_inf_in_the_study_and_the_tsv(tmp_path, task, space):
    store = _store(tmp_path, space)
    objective = Objective(task, budget=40, searcher="random", store=store)
    rng = np.random.default_rng(1)
    for _ in range(40):
        objective(rng.random(len(space)))
    rejected = [r for r in objective.history if r.rejected]
    assert rejected, "the task has a rejection region; random search should hit it in 40 draws"
    trials = store.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 40
    assert sum(t.value == float("-inf") for t in trials) == len(rejected)
    with open(tmp_path / "random-0.tsv", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    assert [row["score"] for row in rows] == ["-inf" if r.rejected else repr(r.score) for r in objective.history]
    by_number = sorted(trials, key=lambda t: t.user_attrs["record"]["eval_index"])
    for row, trial in zip(rows, by_number):
        assert {k[2:]: row[k] for k in row if k.startswith("p.")} == {k: str(v) for k, v in trial.params.items()}


def test_reopening_resumes_without_repeating_or_losing_trials(tmp_path, task, space):
    rng = np.random.default_rng(2)
    points = [rng.random(len(space)) for _ in range(12)]
    first = Objective(task, budget=12, searcher="random", store=_store(tmp_path, space))
    for point in points[:7]:
        first(point)
    resumed = Objective(task, budget=12, searcher="random", store=_store(tmp_path, space))
    assert resumed.used == 7
    for point in points:  # a deterministic searcher replays its proposals from the start
        resumed(point)
    assert resumed.cache_hits == 7 and resumed.used == 12
    assert [r.eval_index for r in resumed.history] == list(range(12))


class _Counting(SyntheticTask):
    """A synthetic task that counts its (real) evaluations."""

    calls = 0

    def evaluate(self, params):
        self.calls += 1
        return super().evaluate(params)


def _interrupted(tmp_path: Path, space: SearchSpace, budget: int, stored: int, problem: SyntheticTask
                 ) -> tuple[list[np.ndarray], Objective, Objective]:
    """``budget`` random points, a run that stored the first ``stored`` of them, and that run re-opened on
    ``problem`` in replay."""
    points = list(np.random.default_rng(budget).random((budget, len(space))))
    first = Objective(SyntheticTask(space, seed=3), budget=budget, searcher="random", store=_store(tmp_path, space))
    for point in points[:stored]:
        first(point)
    resumed = Objective(problem, budget=budget, searcher="random", store=_store(tmp_path, space))
    resumed.replay()
    return points, first, resumed


def test_replay_hands_the_stored_trials_back_in_order_at_no_cost(tmp_path, space):
    task = _Counting(space, seed=3)
    points, first, resumed = _interrupted(tmp_path, space, 10, 6, task)
    assert resumed.used == 0 and resumed.remaining == 10 and resumed.replaying
    assert not resumed.seen(points[3])  # not yet handed back: the uninterrupted run had not seen it either
    for k, point in enumerate(points[:6]):
        assert resumed(point) == first.history[k] and resumed.used == k + 1
        assert resumed(point) == first.history[k] and resumed.cache_hits == 1 + k  # a repeat is a cache hit
    assert task.calls == 0 and not resumed.replaying
    for point in points[6:]:
        resumed(point)
    assert task.calls == 4 and [r.eval_index for r in resumed.history] == list(range(10))
    assert len(_store(tmp_path, space).records) == 10  # the replayed trials were not written twice


def test_a_replay_that_diverges_restores_the_stored_history_with_a_warning(tmp_path, space):
    points, first, resumed = _interrupted(tmp_path, space, 8, 5, SyntheticTask(space, seed=3))
    resumed(points[0])
    with pytest.warns(UserWarning, match="replay of the stored run ended at evaluation 1 of 5"):
        record = resumed(points[3])  # the stored run proposed points[1] next
    assert record == first.history[3] and resumed.used == 5 and not resumed.replaying
    resumed(points[7])
    assert resumed.used == 6 and [r.eval_index for r in resumed.history] == list(range(6))
    assert resumed.history[:5] == first.history


def test_a_foreign_or_corrupted_store_is_an_error_not_overwritten(tmp_path, space):
    _store(tmp_path, space)
    with pytest.raises(StoreError, match="another experiment"):
        TrialStore(f"sqlite:///{tmp_path}/trials.db", "exp", "random", 0, SearchSpace("core"),
                   tsv_path=tmp_path / "other.tsv")
    bad_db = tmp_path / "garbage.db"
    bad_db.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        TrialStore(f"sqlite:///{bad_db}", "exp", "random", 0, space)
    (tmp_path / "random-0.tsv").write_text("who\twhat\n1\t2\n")
    with pytest.raises(StoreError, match="not a gemsearch trials TSV"):
        _store(tmp_path, space)
    assert (tmp_path / "random-0.tsv").read_text() == "who\twhat\n1\t2\n"


KILL_SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np
    from env import Objective, SyntheticTask, TrialStore
    from strategy.space import SearchSpace
    space = SearchSpace("joint")
    store = TrialStore(sys.argv[1], "exp", "random", 0, space, tsv_path=sys.argv[2])
    objective = Objective(SyntheticTask(space, seed=3), budget=30, searcher="random", store=store)
    rng = np.random.default_rng(0)
    while objective.remaining:
        objective(rng.random(len(space)))
        time.sleep(0.05)
""")


@pytest.mark.slow
def test_kill_minus_nine_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path, task, space):
    url, tsv = f"sqlite:///{tmp_path}/trials.db", tmp_path / "random-0.tsv"
    process = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, url, str(tsv)], cwd=ROOT)
    deadline = time.time() + 60
    while time.time() < deadline and (not tsv.exists() or tsv.read_text().count("\n") < 6):
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    store = TrialStore(url, "exp", "random", 0, space, tsv_path=tsv)
    done = len(store.records)
    assert 5 <= done < 30
    objective = Objective(task, budget=30, searcher="random", store=store)
    rng = np.random.default_rng(0)
    while objective.remaining:
        objective(rng.random(len(space)))
    reference = Objective(task, budget=30, searcher="random")
    rng = np.random.default_rng(0)
    while reference.remaining:
        reference(rng.random(len(space)))
    assert [r.params for r in objective.history] == [r.params for r in reference.history]
    assert [r.score for r in objective.history] == [r.score for r in reference.history]
    rows = list(csv.DictReader(tsv.open(newline=""), delimiter="\t"))
    assert [int(r["eval_index"]) for r in rows] == list(range(30))
    assert len(store.study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))) == 30


def test_gymnasium_and_sb3_env_checkers_pass_on_the_cheap_backend():
    check_env(GemSearchEnv(backend="task", budget=15, task_seed=0), skip_render_check=True)
    sb3_check_env(GemSearchEnv(backend="task", budget=15, task_seed=0))


def test_fresh_point_action_walks_the_episode_sobol_sequence():
    """``explore=True``: axis ``d + 1`` jumps to the next point of a Sobol sequence seeded by the reset."""
    def jumps(seed: int) -> list[np.ndarray]:
        e = GemSearchEnv(backend="task", budget=6, task_seed=0, explore=True, planning=1, reward="improvement")
        e.reset(seed=seed)
        points = []
        for real in (0, 1, 1):  # a free query, then two real evaluations
            _, _, _, _, info = e.step(np.array([e.d + 1, 0, real]))
            assert info["query"] == (real == 0)
            points.append(e.current.copy())
        return points

    check_env(GemSearchEnv(backend="task", budget=6, task_seed=0, explore=True, planning=1), skip_render_check=True)
    first = jumps(3)
    assert len({p.tobytes() for p in first}) == 3  # a new point at each jump, queried or evaluated
    assert all(np.array_equal(a, b) for a, b in zip(first, jumps(3)))
    assert not np.array_equal(first[0], jumps(4)[0])


def test_registered_env_runs_an_episode_to_the_budget():
    environment = gym.make(env.ENV_ID, backend="task", budget=10, task_seed=1)
    obs, _ = environment.reset(seed=0)
    assert environment.observation_space.contains(obs)
    steps, terminated, truncated = 0, False, False
    while not (terminated or truncated):
        obs, reward, terminated, truncated, info = environment.step(environment.action_space.sample())
        assert np.isfinite(reward)
        steps += 1
    assert info["real_evaluations"] <= 10
    assert terminated or steps == 40


def test_env_is_seeded_and_repeats_itself():
    def rollout(seed: int) -> list[float]:
        e = GemSearchEnv(backend="task", budget=8)
        e.reset(seed=seed)
        e.action_space.seed(seed)
        return [e.step(e.action_space.sample())[1] for _ in range(6)]

    assert rollout(5) == rollout(5)
    assert rollout(5) != rollout(6)


def test_task_optimum_is_better_than_random_points(space):
    task = SyntheticTask(space, seed=0)
    scores = task.score_unit(space.snap(np.random.default_rng(0).random((2000, len(space)))))
    assert task.best_score > np.max(scores)
    assert np.isfinite(task.best_score)
