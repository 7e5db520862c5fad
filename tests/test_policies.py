"""The searchers: budget, determinism, resume through the trial store, the phased order, beating random."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import optuna
import pytest

import policies.bo  # noqa: F401  (registers the searchers)
import policies.optuna_samplers  # noqa: F401
import policies.phased  # noqa: F401
import policies.random_search  # noqa: F401
from env import Objective, SyntheticTask, TrialStore
from env.records import params_key
from policies.base import make, run
from strategy.space import PHASED_GRIDS, SearchSpace

CORE = SearchSpace("core")
JOINT = SearchSpace("joint")

# (name, options, small budget, resume budgets): the GP searchers are slow per ask, so they run shorter plans
SEARCHERS = {
    "random": ({}, 30, (20, 40)),
    "phased": ({}, 30, (20, 40)),
    "phased-bear": ({}, 30, (20, 40)),
    "tpe": ({}, 30, (20, 40)),
    "gp": ({"n_init": 5}, 12, (8, 16)),
    "optuna-gp": ({"n_startup_trials": 5}, 8, (6, 12)),
}


def _objective(name: str, budget: int, space: SearchSpace = JOINT, task_seed: int = 3, store: TrialStore | None = None) -> Objective:
    return Objective(SyntheticTask(space, seed=task_seed), budget=budget, searcher=name, seed=0, store=store)


def _run(name: str, objective: Objective, seed: int = 0) -> list:
    options = SEARCHERS[name][0]
    return run(make(name, **options), objective, seed)


def _trace(history) -> list[tuple[str, float]]:
    return [(params_key(r.params), r.score) for r in history]


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_budget_is_respected_exactly_and_runs_are_deterministic(name):
    budget = SEARCHERS[name][1]
    first = _objective(name, budget)
    _run(name, first)
    assert first.used == budget and first.remaining == 0
    assert [r.eval_index for r in first.history] == list(range(budget))
    assert len({params_key(r.params) for r in first.history}) == budget  # never pays twice
    second = _objective(name, budget)
    _run(name, second)
    assert _trace(second.history) == _trace(first.history)


@pytest.mark.parametrize("name", list(SEARCHERS))
def test_resume_continues_the_same_study_without_repeating(tmp_path: Path, name):
    short, full = SEARCHERS[name][2]

    def store() -> TrialStore:
        return TrialStore(f"sqlite:///{tmp_path}/trials.db", "exp", name, 0, JOINT, tsv_path=tmp_path / f"{name}.tsv")

    _run(name, _objective(name, short, store=store()))
    resumed = _objective(name, full, store=store())
    assert resumed.used == short
    _run(name, resumed)
    records = resumed.history
    assert [r.eval_index for r in records] == list(range(full))
    assert len({params_key(r.params) for r in records}) == full
    if name != "optuna-gp":  # GPSampler warm-starts its kernel fits: resumable, not trial-for-trial replayable
        uninterrupted = _objective(name, full)
        _run(name, uninterrupted)
        assert _trace(records) == _trace(uninterrupted.history)
    # every real evaluation is a COMPLETE trial of the one study, -inf kept as -inf
    study = optuna.load_study(study_name=f"exp/{name}/seed0", storage=f"sqlite:///{tmp_path}/trials.db")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert sorted(t.value for t in complete) == sorted(r.score for r in records)
    assert not any(t.value is not None and math.isnan(t.value) for t in study.trials)
    if name == "random":
        assert any(r.rejected for r in records), "task seed 3 rejects about a tenth of the space"


def test_phased_follows_the_documented_order():
    objective = _objective("phased", 48 + 36 + 36 + 48, space=CORE)
    _run("phased", objective)
    params = [r.params for r in objective.history]
    defaults = {a.name: a.default for a in CORE.axes}
    hmm = ["hmm.hmm_refit_interval", "hmm.hard_switch_threshold", "hmm.hmm_min_observations"]
    grid = [dict(zip(hmm, v)) for v in itertools.product(*(PHASED_GRIDS[n] for n in hmm))]
    assert params[:48] == [{**defaults, **g} for g in grid]
    best = max(objective.history[:48], key=lambda r: r.score).params  # first of the best on ties
    start = 48
    for block in ("bull", "bear", "ranging"):
        names = [f"{block}.{f}" for f in ("top_n", "r2_threshold", "rebalance_cooldown")]
        block_grid = [dict(zip(names, v)) for v in itertools.product(*(PHASED_GRIDS[n] for n in names))]
        # others locked at the best so far; configurations already evaluated are free and skipped in the history
        expected = [{**best, **g} for g in block_grid]
        fresh = [e for e in expected if params_key(e) not in {params_key(p) for p in params[:start]}]
        assert params[start:start + len(fresh)] == fresh
        start += len(fresh)
        best = max(objective.history[:start], key=lambda r: r.score).params


def test_phased_bear_sweeps_one_bear_parameter_at_a_time():
    objective = _objective("phased-bear", 30)
    _run("phased-bear", objective)
    defaults = {a.name: a.default for a in JOINT.axes}
    assert objective.history[0].params == defaults
    for record in objective.history[1:]:
        changed = {k for k, v in record.params.items() if v != defaults[k]}
        assert changed <= {k for k in defaults if k.startswith("bear.")}
    first_changes = [next(iter({k for k, v in r.params.items() if v != defaults[k]}), None) for r in objective.history[1:7]]
    assert set(first_changes) <= {"bear.r2_threshold", None}  # Tier 1 starts with r2_threshold


def _median_gap(name: str, budget: int, space: SearchSpace, task_seeds: tuple[int, ...]) -> float:
    """Median over task seeds of (task optimum - best score after ``budget`` evaluations)."""
    gaps = []
    for task_seed in task_seeds:
        objective = _objective(name, budget, space=space, task_seed=task_seed)
        run(make(name), objective, 0)
        gaps.append(objective.problem.best_score - objective.best.score)
    return float(np.median(gaps))


# measured (core space, searcher seed 0): random 0.30/0.26/0.23 at 32 and 0.19/0.16/0.23 at 60 on task seeds 0-2,
# gp 0.11/0.15/0.13 at 32, tpe 0.08/0.03/0.13 at 60, optuna-gp 0.14 on task 2 at 32,
# phased median 0.10 vs random 0.19 at 100 over task seeds 0-4
@pytest.mark.parametrize("name, budget, task_seeds", [
    ("tpe", 60, (0, 1, 2)),
    ("gp", 32, (0, 1, 2)),
    ("optuna-gp", 32, (2,)),  # about 1-2.5 s per ask on 2 cores: one task
    ("phased", 100, (0, 1, 2, 3, 4)),
])
def test_smart_searchers_beat_random(name, budget, task_seeds):
    assert _median_gap(name, budget, CORE, task_seeds) < _median_gap("random", budget, CORE, task_seeds)
