"""The anchor searchers ``smac`` (SMAC3, random-forest BO) and ``cmaes`` (Optuna's CMA-ES): the space mapping,
exact budget, determinism per seed, ``-inf`` handling, resume. Cheap synthetic tasks: seconds, not minutes."""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import optuna
import pytest

import policies  # noqa: F401  (registers every searcher)
from env import Objective, SyntheticTask, TrialStore
from env.store import open_storage
from env.records import params_key
from policies.base import SEARCHERS, make, run
from strategy.space import SearchSpace

CORE = SearchSpace("core")
JOINT = SearchSpace("joint")

# name -> (space, budget, options): SMAC costs about 1 s per model-based proposal on 2 cores, CMA-ES milliseconds
ANCHORS = {
    "smac": (CORE, 10, {}),
    "cmaes": (JOINT, 40, {}),
}


def _needs(name: str) -> None:
    pytest.importorskip({"smac": "smac", "cmaes": "cmaes"}[name])


class Interrupt(Exception):
    """Stands for a kill during an evaluation: the evaluation never reaches the store."""


class Crashing:
    """``SyntheticTask`` seed 3 that raises ``Interrupt`` on its ``at``-th evaluation (1-based), once."""

    def __init__(self, space: SearchSpace, at: int | None = None, reject=None) -> None:
        self.task, self.space, self.at, self.reject, self.calls = SyntheticTask(space, seed=3), space, at, reject, 0

    def evaluate(self, params):
        self.calls += 1
        if self.calls == self.at:
            raise Interrupt
        result = self.task.evaluate(params)
        if self.reject is not None and self.reject(self.space.encode(params)):
            result = type(result)(**{**result.__dict__, "score": -math.inf})
        return result


def _objective(name: str, store: TrialStore | None = None, budget: int | None = None, problem=None) -> Objective:
    space, default_budget, _ = ANCHORS[name]
    return Objective(problem or SyntheticTask(space, seed=3), budget=budget or default_budget, searcher=name, seed=0,
                     store=store)


def _run(name: str, objective: Objective, seed: int = 0):
    return run(make(name, **ANCHORS[name][2]), objective, seed)


def _trace(history) -> list[tuple[str, float]]:
    return [(params_key(r.params), r.score) for r in history]


@lru_cache(maxsize=None)
def _uninterrupted(name: str) -> tuple:
    objective = _objective(name)
    _run(name, objective)
    return tuple(_trace(objective.history))


def _store(tmp_path: Path, name: str) -> TrialStore:
    return TrialStore(f"journal:{tmp_path}/trials.log", "exp", name, 0, ANCHORS[name][0])


def test_the_anchors_are_registered():
    assert {"smac", "cmaes"} <= set(SEARCHERS)


@pytest.mark.parametrize("name", list(ANCHORS))
def test_budget_is_exact_and_runs_are_deterministic_per_seed(name):
    """Same seed, same run; another seed, another run. (For ``smac`` the same-seed rerun is the resume test's: a
    fresh SMAC replaying the run from its start must walk the same path, so it is not run twice here.)"""
    _needs(name)
    budget = ANCHORS[name][1]
    first = _uninterrupted(name)
    assert len(first) == budget and len({key for key, _ in first}) == budget  # never pays twice
    if name != "smac":
        again = _objective(name)
        _run(name, again)
        assert again.used == budget and again.remaining == 0
        assert [r.eval_index for r in again.history] == list(range(budget))
        assert tuple(_trace(again.history)) == first
    other = _objective(name, budget=3)
    _run(name, other, seed=1)
    assert _trace(other.history) != list(first[:3])


@pytest.mark.parametrize("name", list(ANCHORS))
def test_rejections_are_told_and_the_budget_still_holds(name):
    """A task that rejects half the space (unit coordinate 0 below 0.5): every evaluation counts, -inf stays -inf."""
    _needs(name)
    space, budget, _ = ANCHORS[name]
    budget = min(budget, 6)  # SMAC: two Sobol points, then the forest
    objective = _objective(name, budget=budget, problem=Crashing(space, reject=lambda u: u[0] < 0.5))
    _run(name, objective)
    assert objective.used == budget
    scores = [r.score for r in objective.history]
    assert any(s == -math.inf for s in scores) and any(math.isfinite(s) for s in scores)
    assert not any(math.isnan(s) for s in scores)


def test_smac_resume_after_a_kill_during_an_evaluation_equals_the_uninterrupted_run(tmp_path: Path):
    """SMAC replays its seeded ask/tell sequence: stored trials come back free, the lost evaluation is made again."""
    _needs("smac")
    interrupted = _objective("smac", store=_store(tmp_path, "smac"), problem=Crashing(CORE, at=6))
    with pytest.raises(Interrupt):
        _run("smac", interrupted)
    resumed = _objective("smac", store=_store(tmp_path, "smac"))
    assert resumed.used == 5
    _run("smac", resumed)
    assert tuple(_trace(resumed.history)) == _uninterrupted("smac")
    assert resumed.cache_hits == 5  # the replay: the five stored trials, nothing evaluated twice
    assert [r.eval_index for r in resumed.history] == list(range(10))


def test_cmaes_resume_between_evaluations_equals_the_uninterrupted_run(tmp_path: Path):
    """The CMA-ES state lives in the store's trials: a run stopped between evaluations continues trial for trial."""
    _needs("cmaes")
    _run("cmaes", _objective("cmaes", store=_store(tmp_path, "cmaes"), budget=17))  # mid-generation (popsize 12)
    resumed = _objective("cmaes", store=_store(tmp_path, "cmaes"))
    assert resumed.used == 17
    _run("cmaes", resumed)
    assert tuple(_trace(resumed.history)) == _uninterrupted("cmaes")
    study = optuna.load_study(study_name="exp/cmaes/seed0", storage=open_storage(f"journal:{tmp_path}/trials.log"))
    generations = [t.system_attrs.get("cmawm:generation") for t in study.trials]
    assert generations.count(0) == 12 and generations.count(1) == 12  # popsize 4 + floor(3 ln 19) on 19 axes


def test_cmaes_resume_after_a_kill_during_an_evaluation_loses_and_repeats_nothing(tmp_path: Path):
    """The weaker property after a kill mid-evaluation (documented in ``CmaEsSearch``): the failed trial holds a
    trial number that seeds later CMA-ES draws, so the continuation differs, but no evaluation is lost or repeated."""
    _needs("cmaes")
    interrupted = _objective("cmaes", store=_store(tmp_path, "cmaes"), problem=Crashing(JOINT, at=20))
    with pytest.raises(Interrupt):
        _run("cmaes", interrupted)
    resumed = _objective("cmaes", store=_store(tmp_path, "cmaes"))
    assert resumed.used == 19
    _run("cmaes", resumed)
    records = resumed.history
    assert [r.eval_index for r in records] == list(range(40))
    assert len({params_key(r.params) for r in records}) == 40
    assert _trace(records[:19]) == list(_uninterrupted("cmaes")[:19])


def test_smac_configspace_matches_the_search_space():
    _needs("smac")
    from ConfigSpace import CategoricalHyperparameter, OrdinalHyperparameter, UniformFloatHyperparameter, \
        UniformIntegerHyperparameter

    from policies.smac_search import configspace, values

    cs = configspace(JOINT, seed=0)
    assert list(cs.keys()) == sorted(JOINT.names) or set(cs.keys()) == set(JOINT.names)
    kinds = {"int": UniformIntegerHyperparameter, "float": UniformFloatHyperparameter}
    for axis in JOINT.axes:
        hp = cs[axis.name]
        if axis.kind in kinds:
            assert isinstance(hp, kinds[axis.kind]) and (hp.lower, hp.upper) == (axis.low, axis.high)
        elif axis.kind == "bool" or isinstance(axis.choices[0], str):
            assert isinstance(hp, CategoricalHyperparameter)
        else:
            assert isinstance(hp, OrdinalHyperparameter) and tuple(hp.sequence) == axis.choices
    defaults = values(cs.get_default_configuration(), JOINT)
    assert defaults == {a.name: a.default for a in JOINT.axes}
    assert all(type(defaults[a.name]) is type(a.default) for a in JOINT.axes)  # plain Python values, not NumPy
    for config in cs.sample_configuration(20):
        JOINT.params(values(config, JOINT))  # validates every value against its axis


def test_smac_imputes_rejections_at_the_worst_finite_cost():
    """-inf is told as CRASHED; its cost follows the worst finite cost (placeholder before any) and never wins."""
    _needs("smac")
    import tempfile

    from smac import HyperparameterOptimizationFacade, Scenario
    from smac.runhistory.enumerations import StatusType

    from policies.smac_search import NO_FINITE_COST, _never_called, _quiet_smac, _Teller, configspace

    with tempfile.TemporaryDirectory() as out, _quiet_smac():
        scenario = Scenario(configspace(CORE, 0), output_directory=Path(out), deterministic=True, n_trials=40, seed=0)
        facade = HyperparameterOptimizationFacade(scenario, target_function=_never_called, overwrite=True,
                                                  logging_level=False)
        teller = _Teller(facade)
        infos = [facade.ask() for _ in range(4)]

        def cost(info):
            return facade.runhistory.get_cost(info.config)

        teller.tell(infos[0], -math.inf)
        assert cost(infos[0]) == NO_FINITE_COST
        teller.tell(infos[1], 0.5)
        assert cost(infos[0]) == -0.5 and cost(infos[1]) == -0.5
        teller.tell(infos[2], -2.0)
        teller.tell(infos[3], -math.inf)
        assert cost(infos[0]) == cost(infos[3]) == 2.0 == cost(infos[2])
        statuses = [facade.runhistory[k].status for k in facade.runhistory]
        assert statuses == [StatusType.CRASHED, StatusType.SUCCESS, StatusType.SUCCESS, StatusType.CRASHED]
        assert facade.intensifier.get_incumbent() == infos[1].config


@pytest.mark.slow
def test_smac_proposes_the_same_in_processes_with_different_string_hashing():
    """SMAC deduplicates its local-search start points through a set (``policies.smac_search.ordered_start_points``):
    without the fix, the proposals after the initial design changed with ``PYTHONHASHSEED``."""
    import os
    import subprocess
    import sys

    code = ("import policies; from env import Objective, SyntheticTask; from env.records import params_key; "
            "from strategy.space import SearchSpace; "
            "o = Objective(SyntheticTask(SearchSpace('joint'), seed=3), budget=20, searcher='smac', seed=0); "
            "policies.run(policies.make('smac'), o, 0); print('|'.join(params_key(r.params) for r in o.history))")
    root = Path(__file__).resolve().parents[1]
    traces = {subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout.strip().splitlines()[-1]
              for h in (1, 2)}
    assert len(traces) == 1 and next(iter(traces)).count("|") == 19


def test_smac_forest_is_the_same_with_node_arrays_sized_by_the_rows():
    """``leaf_capacity_from_rows`` only resizes the forest's node arrays: every tree and prediction is unchanged."""
    _needs("smac")
    import tempfile

    import numpy as np
    from smac import HyperparameterOptimizationFacade, Scenario

    from policies.smac_search import configspace, leaf_capacity_from_rows

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as out:
        scenario = Scenario(configspace(SearchSpace("joint"), 0), output_directory=Path(out), deterministic=True,
                            n_trials=60, seed=5)
        smac_default, resized = (HyperparameterOptimizationFacade.get_model(scenario) for _ in range(2))
        leaf_capacity_from_rows(resized)
        for rows in (3, 17, 60):
            X = rng.random((rows, len(SearchSpace("joint"))))
            y = np.log(rng.random((rows, 1)) + 0.01)
            smac_default.train(X, y)
            resized.train(X, y)
            assert resized._rf.max_leaf_nodes == 2 * rows < smac_default._rf.max_leaf_nodes == 2**20
            for a, b in zip(smac_default._rf.estimators_, resized._rf.estimators_):
                assert np.array_equal(a.tree_.feature, b.tree_.feature)
                assert np.array_equal(a.tree_.threshold, b.tree_.threshold)
                assert np.array_equal(a.tree_.value, b.tree_.value)
            Z = rng.random((200, X.shape[1]))
            for got, expected in zip(resized.predict_marginalized(Z), smac_default.predict_marginalized(Z)):
                assert np.array_equal(got, expected)
