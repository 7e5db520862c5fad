"""Nothing a searcher can reach holds or scores the sealed holdout (days after SEARCH_END)."""

from __future__ import annotations

import numpy as np
import pytest

import policies
from env import Objective
from instances import Problem
from env.gym_env import GemSearchEnv
from harness import SEARCH_END, WindowError, evaluate
from strategy.space import SearchSpace


@pytest.fixture(scope="module")
def problem() -> Problem:
    return Problem.from_universe("synthetic-small", space="core")


def test_the_problem_a_searcher_gets_ends_at_the_search_window(problem):
    assert problem.candles.dates[-1] == np.datetime64(SEARCH_END, "D")
    # even when built directly from a universe that runs to 2027
    from data import load_universe

    full = load_universe("synthetic-small")
    assert full.dates[-1] > np.datetime64(SEARCH_END, "D")
    assert Problem(full, SearchSpace("core")).candles.dates[-1] == np.datetime64(SEARCH_END, "D")


def test_moving_the_window_into_the_holdout_is_refused(problem):
    with pytest.raises(WindowError, match="sealed holdout"):
        evaluate(problem.space.base, problem.candles, problem.strategy.fit_fn, problem.strategy.portfolio_fn,
                 split=problem.split, end="2026-06-30")


def test_searchers_and_the_env_only_ever_see_search_window_results(problem):
    objective = Objective(problem, budget=3, searcher="random")
    policies.run(policies.make("random"), objective, 0)
    assert objective.used == 3
    assert all(r.base["days"] > 0 and not r.params.keys() & {"start", "end"} for r in objective.history)
    env = GemSearchEnv(problem=problem, budget=2)
    env.reset(seed=0)
    assert env.objective.problem.candles.dates[-1] <= np.datetime64(SEARCH_END, "D")
