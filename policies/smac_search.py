"""``smac``: SMAC3's hyperparameter-optimisation facade, the algorithm-configuration anchor.

SMAC (``pip install 'smac>=2.4'``) is random-forest Bayesian optimisation:
``HyperparameterOptimizationFacade`` with its own defaults — a Sobol initial
design, a random forest of 10 trees on log-scaled costs (scikit-learn's
forest since SMAC 2.4.0; ``pyrfr``, which SMAC up to 2.3.1 required and which
builds only with Debian's ``swig``, is an optional extra, not needed), expected
improvement maximised by interleaved local and sorted random search over 10,000
challengers, a retrain every 8 proposals, 20% interleaved random
configurations. We drive it by ask/tell against the budgeted ``Objective``;
SMAC never runs anything itself. Two changes that leave every proposal the
same: the forest runs on one thread (``N_JOBS``) and sizes its node arrays by
the training rows (``leaf_capacity_from_rows``).

Search space (``configspace``): int axes are ``UniformIntegerHyperparameter``,
float axes ``UniformFloatHyperparameter`` (log where the axis is log), choices
that are numbers (``fit_window``, ``hmm_refit_interval``, ...: ordered) are
``OrdinalHyperparameter`` (the forest splits on their order, local search moves
to the neighbouring value), string choices (``detector``, ``risk_off_action``)
and bools ``CategoricalHyperparameter``. Defaults are the axes' defaults. No
conditions: every configuration sets every axis.

Scenario: ``deterministic=True`` (the harness's score is a deterministic
function of the configuration, so SMAC's intensifier runs each configuration
once, on one seed), ``n_trials = objective.budget`` (SMAC sizes its initial
design from it: ``min(10 x axes, budget / 4)`` Sobol points; the limit itself
never binds, ask/tell does not check it), ``walltime_limit``/``cputime_limit``
infinite (nothing depends on the clock), ``use_default_config=False`` (SMAC's
default), the run's ``seed``, output in a temporary directory removed at the
end, runhistory never saved (``tell(save=False)``), SMAC's loggers held at
ERROR for the duration of the search (no logging spam; the application's
logging configuration is not touched).

Costs: SMAC minimises, so the cost is ``-score``. A hard rejection (``-inf``)
is told as a CRASHED trial whose cost is the worst finite cost seen so far
(the same imputation as Optuna's ``GPSampler``, which clips ``-inf`` to the worst
finite value): SMAC's runhistory encoder scales costs between their minimum
and maximum and takes logs, so an infinite cost would poison every cost of the
model. When a worse finite score arrives, the crashed trials are told again at
the new worst cost. Before any finite score, crashed trials hold a placeholder
of 1e30 (worse than anything finite, so SMAC's incumbent is a finite
configuration as soon as there is one); it is replaced when the first finite
score arrives.

Budget: the loop stops when ``objective.remaining == 0``. A proposal that maps
to an evaluated configuration is answered free from the objective's cache and
told to SMAC with the cached score; ``ReplayGuard`` stops the run after
``MAX_CONSECUTIVE_DUPLICATES`` in a row. When SMAC has nothing new left to
propose (its intensifier or config selector gives up on a small, exhausted
space) the run stops early.

Determinism and resume: SMAC's proposals are a function of its seed and of the
costs told, in order (seeded Sobol design, seeded forest, seeded local search;
nothing reads the clock). Resume replays the seeded ask/tell sequence from the
start: stored configurations come back from the objective's cache for free, with
the stored scores, so SMAC walks the same path and the resumed history equals
the uninterrupted run's (tested, including an interruption in mid-run). A
resumed run must use the same budget (``n_trials``), as ``--resume`` does. The
replay costs SMAC's own compute again (about 0.5 s per stored trial on 35 axes,
2 cores), never an evaluation.
"""

from __future__ import annotations

import contextlib
import logging
import math
import tempfile
from pathlib import Path
from typing import Any, Iterator

from env.objective import Objective
from policies.base import ReplayGuard, Searcher, register
from strategy.space import Axis, SearchSpace

N_JOBS = 1
"""Threads of SMAC's random forest (its default: all cores). One: joblib's thread pool polls with sleeps, which
cost a fifth of the search time on 2 cores (10 s of 49 s at 30 trials on 35 axes); the trees are seeded
before they are fitted, so the forest is the same whatever the number of threads."""

NO_FINITE_COST = 1e30
"""SMAC's cost of a rejected trial before any finite score was seen (replaced once one is)."""


def configspace(space: SearchSpace, seed: int = 0) -> Any:
    """The ConfigSpace ``ConfigurationSpace`` of our search space (see the module docstring)."""
    from ConfigSpace import (CategoricalHyperparameter, ConfigurationSpace, OrdinalHyperparameter,
                             UniformFloatHyperparameter, UniformIntegerHyperparameter)

    hyperparameters = []
    for axis in space.axes:
        if axis.kind == "bool":
            hp = CategoricalHyperparameter(axis.name, [False, True], default_value=bool(axis.default))
        elif axis.kind == "categorical":
            if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in axis.choices):
                hp = OrdinalHyperparameter(axis.name, list(axis.choices), default_value=axis.default)
            else:
                hp = CategoricalHyperparameter(axis.name, list(axis.choices), default_value=axis.default)
        elif axis.kind == "int":
            hp = UniformIntegerHyperparameter(axis.name, int(axis.low), int(axis.high), log=axis.log,
                                              default_value=int(axis.default))
        else:
            hp = UniformFloatHyperparameter(axis.name, float(axis.low), float(axis.high), log=axis.log,
                                            default_value=float(axis.default))
        hyperparameters.append(hp)
    cs = ConfigurationSpace(seed=seed)
    cs.add(hyperparameters)
    return cs


def values(config: Any, space: SearchSpace) -> dict[str, Any]:
    """Flat ``{"block.field": value}`` of a SMAC ``Configuration`` (NumPy scalars back to plain Python values)."""
    return {axis.name: _plain(axis, config[axis.name]) for axis in space.axes}


def _plain(axis: Axis, value: Any) -> Any:
    if axis.kind == "bool":
        return bool(value)
    if axis.kind == "categorical":
        return axis.choices[list(axis.choices).index(value)]
    if axis.kind == "int":
        return int(value)
    return float(value)


@contextlib.contextmanager
def _quiet_smac() -> Iterator[None]:
    """SMAC's loggers at ERROR while the search runs (restored after)."""
    logger = logging.getLogger("smac")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Teller:
    """Tells SMAC each score as a cost: ``-score``, and ``-inf`` as CRASHED at the worst finite cost so far."""

    def __init__(self, facade: Any) -> None:
        from smac.runhistory.dataclasses import TrialValue
        from smac.runhistory.enumerations import StatusType

        self.facade = facade
        self.TrialValue, self.StatusType = TrialValue, StatusType
        self.worst: float | None = None
        self.crashed: list[Any] = []

    @property
    def crash_cost(self) -> float:
        return self.worst if self.worst is not None else NO_FINITE_COST

    def tell(self, info: Any, score: float) -> None:
        if math.isfinite(score):
            cost = -float(score)
            self.facade.tell(info, self.TrialValue(cost=cost, status=self.StatusType.SUCCESS), save=False)
            if self.worst is None or cost > self.worst:
                self.worst = cost
                for crashed in self.crashed:  # re-impute: the rejected trials stay at the worst finite cost
                    self.facade.runhistory.add(config=crashed.config, cost=self.worst, status=self.StatusType.CRASHED,
                                               instance=crashed.instance, seed=crashed.seed, budget=crashed.budget,
                                               force_update=True)
        else:
            self.crashed.append(info)
            self.facade.tell(info, self.TrialValue(cost=self.crash_cost, status=self.StatusType.CRASHED), save=False)


@register("smac")
class SmacSearch(Searcher):
    """SMAC3's ``HyperparameterOptimizationFacade`` by ask/tell (settings and -inf handling: module docstring)."""

    proposal_s = 0.85

    def search(self, objective: Objective, seed: int) -> None:
        try:
            from smac import HyperparameterOptimizationFacade, Scenario
            from smac.main.exceptions import ConfigurationSpaceExhaustedException
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("the 'smac' searcher needs SMAC3: pip install 'smac>=2.4'") from exc

        smac_seed = int(seed) % (2**31 - 1)
        guard = ReplayGuard(objective)
        with tempfile.TemporaryDirectory(prefix="gemsearch-smac-") as out, _quiet_smac():
            scenario = Scenario(configspace(objective.space, smac_seed), name="gemsearch", output_directory=Path(out),
                                deterministic=True, n_trials=objective.budget, walltime_limit=math.inf,
                                cputime_limit=math.inf, use_default_config=False, seed=smac_seed)
            model = HyperparameterOptimizationFacade.get_model(scenario)
            model._rf_opts["n_jobs"] = N_JOBS  # no public argument; the forest is the same, see N_JOBS
            leaf_capacity_from_rows(model)
            maximizer = HyperparameterOptimizationFacade.get_acquisition_maximizer(
                scenario, challengers=int(self.options.get("challengers", 10_000)))
            ordered_start_points(maximizer._local_search)
            facade = HyperparameterOptimizationFacade(scenario, target_function=_never_called, model=model,
                                                      acquisition_maximizer=maximizer, overwrite=True,
                                                      logging_level=False)
            teller = _Teller(facade)
            self.stats["smac_version"] = _version()
            while not guard.done:
                try:
                    info = facade.ask()
                except (StopIteration, ConfigurationSpaceExhaustedException):
                    break  # nothing new left to propose: converged on a small space
                record = guard(values(info.config, objective.space))
                teller.tell(info, record.score)


def leaf_capacity_from_rows(model: Any) -> None:
    """Size the forest's node arrays by the training rows instead of SMAC's ``max_leaf_nodes=2**20``: same trees.

    SMAC 2.4's scikit-learn forest passes ``max_leaf_nodes=2**20``, which selects scikit-learn's best-first tree
    builder and makes it allocate node arrays for 2 x 2**20 nodes before every tree: 0.23 s per tree on 60 rows
    (against 3.5 ms), 10 trees per retrain, most of a ``--quick`` SMAC run's model time. A tree on ``n`` rows has
    at most ``n`` leaves (a bootstrap sample holds at most ``n`` distinct rows), so a capacity of ``2 n`` never
    binds: the builder, the node order and every random draw stay the same, and so do the trees and every
    proposal (tested: ``tests/test_anchor_searchers.py``). Only the capacity changes, per retrain.
    """
    original = model._train
    default = model._rf_opts["max_leaf_nodes"]

    def train(X: Any, y: Any) -> Any:
        model._rf_opts["max_leaf_nodes"] = min(default, max(2, 2 * len(X)))
        return original(X, y)

    model._train = train


def ordered_start_points(local_search: Any) -> None:
    """Make SMAC's local search independent of Python's per-process string hashing.

    SMAC 2.4.1's ``LocalSearch._get_initial_points`` removes duplicate start points with
    ``list(set(configurations))``, and a ``Configuration`` hashes its ``repr``, which holds strings: Python
    randomises string hashes per process (``PYTHONHASHSEED``), so the start points came out in a different
    order in every process, the local search drew its random neighbours for them in that order, and the
    same seed proposed different configurations from its first model-based step on (three ``--quick`` runs
    differed at evaluation 16 of every seed). Here the start points are sorted by their vector
    representation, the same order in every process.
    """
    import numpy as np

    original = local_search._get_initial_points

    def ordered(*args: Any, **kwargs: Any) -> list[Any]:
        return sorted(original(*args, **kwargs), key=lambda config: tuple(np.nan_to_num(config.get_array(), nan=-1.0)))

    local_search._get_initial_points = ordered


def _never_called(config: Any, seed: int = 0) -> float:
    raise RuntimeError("SMAC is driven by ask/tell: the objective evaluates, never SMAC's runner")


def _version() -> str:
    import smac

    return str(getattr(smac, "version", getattr(smac, "__version__", "?")))
