"""The GP surrogate on real harness evaluations, and the surrogate-backed objective."""

from __future__ import annotations

import math

import numpy as np
import pytest

from env import Objective
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace
from surrogate.calibrate import calibration_table, random_trials
from surrogate.problem import SurrogateProblem


@pytest.fixture(scope="module")
def real_run():
    """160 uniform random configurations of the core space, each a real harness evaluation (synthetic-small)."""
    space = SearchSpace("core", base=EnsembleParams.from_dict({"hmm.detector": "ma200"}))
    return space, random_trials("synthetic-small", space, 160, seed=0)


def test_real_run_has_both_rejections_and_a_spread_of_scores(real_run):
    _, records = real_run
    scores = np.array([r.score for r in records])
    assert all(r.real for r in records) and len({r.eval_index for r in records}) == 160
    assert 0.05 < np.mean(np.isinf(scores)) < 0.8
    assert np.std(scores[np.isfinite(scores)]) > 0.05


@pytest.mark.slow
def test_surrogate_beats_a_constant_predictor_on_held_out_real_trials(real_run):
    space, records = real_run
    (row,) = calibration_table(space, records, (0.75,), splits=3)
    assert row["rmse"] < 0.95 * row["rmse_constant"], row
    assert row["coverage_90"] > 0.6, row
    assert row["feasibility_accuracy"] > 0.7, row


@pytest.mark.slow
def test_surrogate_objective_predicts_without_spending_real_evaluations(real_run):
    space, records = real_run
    problem = SurrogateProblem.from_records(space, records)
    objective = Objective(problem, budget=50, searcher="dyna")
    rng = np.random.default_rng(1)
    for _ in range(50):
        record = objective(space.sample(rng))
        assert not record.real and record.contract == "surrogate"
        assert math.isfinite(record.score) or record.score == -math.inf
    best_seen = max(r.score for r in records)
    predicted = [r.score for r in objective.history if math.isfinite(r.score)]
    assert predicted and max(predicted) < best_seen + 1.0  # predictions stay on the scale of the real scores
