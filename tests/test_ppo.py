"""The ``ppo`` searcher: budget, determinism, -inf, resume, beating random, tiny training runs (killed, resumed)."""

from __future__ import annotations

import csv
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

import policies.ppo  # noqa: F401  (registers "ppo")
from env import Objective, SyntheticTask, TrialStore
from env.gym_env import CandidateSearchEnv
from env.records import params_key
from harness.evaluate import EvalResult
from policies.base import make, run
from policies.ppo import DEFAULT_POLICY
from learn.train_ppo import (N_ENVS, PPO_SETTINGS, ROLLOUT, CheckpointError, atomic_write, checkpoint_path,
                                load_checkpoint, main, run_settings, save_checkpoint, train)
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace
from conftest import DiesAt

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


def test_the_committed_policy_exists_and_is_small():
    path = DEFAULT_POLICY
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
    dying = DiesAt(SyntheticTask(space, seed=11), at=18)
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
    with pytest.raises(FileNotFoundError, match="python -m learn.train_ppo --tasks emulated"):
        run(make("ppo", policy_path=str(tmp_path / "missing.zip")), objective, seed=0)


def test_a_tiny_training_run_gives_a_loadable_policy(tmp_path):
    out = tmp_path / "tiny.zip"
    meta = train("core", 512, out, seed=0, budget=(8, 12))
    assert out.exists() and out.with_suffix(".csv").exists() and out.with_suffix(".png").exists()
    assert meta["timesteps"] >= 512 and meta["curve"] and meta["resumed_from"] == []
    assert not checkpoint_path(out).exists()  # removed once the outputs are in place
    core = SearchSpace("core")
    searcher = make("ppo", policy_path=str(out))
    objective = Objective(SyntheticTask(core, seed=1), 10, searcher="ppo")
    run(searcher, objective, seed=0)
    assert objective.used == 10 and searcher.stats["pretrain_timesteps"] == meta["timesteps"]
    assert searcher.stats["surrogate_predictions"] > 0


REPO = Path(__file__).resolve().parents[1]
TINY = ["--space", "core", "--budget-low", "8", "--budget-high", "12", "--seed", "0",
        "--checkpoint-every", str(ROLLOUT)]
"""The cheapest training: 12 axes, budgets 8-12, a checkpoint after every PPO update (512 steps, ~2.5 s on one core)."""


def _csv_rows(path: Path) -> list[tuple]:
    with path.open(newline="") as handle:
        return [(int(r[0]), float(r[1]), float(r[2]), int(r[3])) for r in list(csv.reader(handle))[1:]]


@pytest.mark.slow
def test_training_killed_with_sigkill_resumes_without_losing_or_repeating(tmp_path):
    """``kill -9`` a training run at a seeded random moment after its first checkpoint, re-run the same command."""
    out = tmp_path / "killed.zip"
    steps = 6 * ROLLOUT
    command = [sys.executable, "-m", "learn.train_ppo", *TINY, "--steps", str(steps), "--out", str(out)]
    began = time.monotonic()
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            while not checkpoint_path(out).exists():
                assert first.poll() is None, (tmp_path / "first.log").read_text()
                assert time.monotonic() - began < 120, "no checkpoint within 120 s"
                time.sleep(0.05)
            to_first_checkpoint = time.monotonic() - began
            # a seeded random moment: inside a rollout, an update or a checkpoint write
            time.sleep(random.Random(2024).uniform(0.0, 1.0) * to_first_checkpoint)
            assert first.poll() is None, "finished before the kill: make --steps larger"
            killed_at = time.monotonic() - began
            os.kill(first.pid, signal.SIGKILL)
        finally:
            first.kill()
            first.wait()
    assert first.returncode == -signal.SIGKILL
    state, _ = load_checkpoint(checkpoint_path(out))
    done, saved_rows = state["timesteps"], [tuple(r) for r in state["rows"]]
    assert 0 < done < steps and done % ROLLOUT == 0 and not out.exists()

    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"resuming {checkpoint_path(out)}: {done} of {steps} timesteps done" in again.stdout
    meta = json.loads(out.with_suffix(".json").read_text())
    rows = _csv_rows(out.with_suffix(".csv"))
    print(f"killed at {killed_at:.1f} s (first checkpoint at {to_first_checkpoint:.1f} s), checkpoint {done} timesteps "
          f"/ {len(saved_rows)} episodes, final {meta['timesteps']} timesteps / {meta['episodes']} episodes")
    assert meta["resumed_from"] == [done] and meta["timesteps"] == meta["requested_timesteps"] == steps
    timesteps = [r[0] for r in rows]
    assert all(a < b for a, b in zip(timesteps, timesteps[1:])), "episode log not strictly increasing"
    assert rows[: len(saved_rows)] == saved_rows  # nothing committed before the kill is lost ...
    assert all(r[0] > done for r in rows[len(saved_rows):])  # ... and nothing after it is counted twice
    assert len(rows) == meta["episodes"] > len(saved_rows) and timesteps[-1] <= steps
    assert not checkpoint_path(out).exists() and not list(tmp_path.glob(".*.tmp"))
    assert PPO.load(out, device="cpu").num_timesteps == steps
    searcher = make("ppo", policy_path=str(out))
    objective = Objective(SyntheticTask(SearchSpace("core"), seed=1), 8, searcher="ppo")
    run(searcher, objective, seed=0)
    assert objective.used == 8 and searcher.stats["pretrain_timesteps"] == steps


def _checkpoint(out: Path, *, seed: int = 0, steps: int = ROLLOUT, timesteps: int = 0, rows: list = ()) -> Path:
    """A checkpoint as the tiny run (``TINY``, ``--steps steps``) writes it, from an untrained model (no training)."""
    venv = DummyVecEnv([lambda: CandidateSearchEnv("core", budget=(8, 12)) for _ in range(N_ENVS)])
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", **PPO_SETTINGS)
    model.num_timesteps = timesteps
    save_checkpoint(checkpoint_path(out), model, {
        "settings": run_settings("core", steps, seed, (8, 12), "improvement", None), "timesteps": timesteps,
        "target_timesteps": steps, "rows": list(rows), "train_wall_s": 1.5, "resumed_from": []})
    return checkpoint_path(out)


def test_a_truncated_checkpoint_is_a_clear_error_and_restart_discards_it(tmp_path, capsys):
    out = tmp_path / "tiny.zip"
    ckpt = _checkpoint(out)
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="not a readable training checkpoint.*--restart"):
        train("core", ROLLOUT, out, seed=0, budget=(8, 12))
    with pytest.raises(SystemExit) as exit_:
        main([*TINY, "--steps", str(ROLLOUT), "--out", str(out)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "not a readable training checkpoint" in err and "Traceback" not in err
    assert ckpt.exists()  # refused, not silently thrown away
    main([*TINY, "--steps", str(ROLLOUT), "--out", str(out), "--restart"])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["resumed_from"] == [] and meta["timesteps"] == ROLLOUT and not ckpt.exists()


def test_a_checkpoint_from_other_settings_is_refused(tmp_path, capsys):
    out = tmp_path / "tiny.zip"
    _checkpoint(out, seed=0, steps=2 * ROLLOUT, timesteps=ROLLOUT)
    with pytest.raises(CheckpointError, match=r"512 of 1024 timesteps done.*seed=0 there, 1 here"):
        train("core", 2 * ROLLOUT, out, seed=1, budget=(8, 12))
    with pytest.raises(SystemExit):
        main([*TINY, "--steps", str(3 * ROLLOUT), "--out", str(out)])
    err = capsys.readouterr().err
    assert "steps=1024 there, 1536 here" in err and "--restart" in err and "Traceback" not in err
    assert not out.exists()


def test_a_run_killed_while_writing_its_outputs_finishes_without_training(tmp_path):
    """The final checkpoint is at the requested timesteps: re-running only (re)writes the outputs."""
    out = tmp_path / "tiny.zip"
    rows = [(37, 0.5, 0.25, 10), (402, 0.75, 0.125, 9)]
    _checkpoint(out, timesteps=ROLLOUT, rows=rows)
    out.with_suffix(".csv").write_text("half-written")  # an older output: replaced
    (tmp_path / ".tiny.png.k3j2h1g0.tmp").write_bytes(b"PNG")  # what kill -9 during a write leaves: cleared
    meta = train("core", ROLLOUT, out, seed=0, budget=(8, 12))
    assert meta["timesteps"] == ROLLOUT and meta["resumed_from"] == [ROLLOUT] and meta["episodes"] == 2
    assert _csv_rows(out.with_suffix(".csv")) == rows and meta["train_wall_s"] >= 1.5
    assert PPO.load(out, device="cpu").num_timesteps == ROLLOUT and not checkpoint_path(out).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.csv", "tiny.json", "tiny.png", "tiny.zip"]


def test_writes_are_all_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "policy.zip"
    atomic_write(target, b"old")
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.read_bytes() == b"old" and target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would

    def crash(*_):
        raise KeyboardInterrupt  # the process dies between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["policy.zip"]


def test_candidate_env_passes_the_env_checkers():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(CandidateSearchEnv("core", budget=12), skip_render_check=True)
    sb3_check_env(CandidateSearchEnv("core", budget=12))
