"""The searcher interface: every search policy runs against one budgeted ``Objective``.

A searcher proposes candidates (``EnsembleParams``, flat ``{"block.field": value}``
mappings, or unit vectors of the objective's space) and calls the objective
until its real-evaluation budget is spent. The objective answers repeated
configurations from its cache for free and persists every real evaluation; the
searcher never counts anything itself.

Resume contract: re-opening an experiment hands the searcher an objective whose
``history`` already holds the stored trials. A searcher must rebuild its state
from that history (deterministic searchers simply replay their seeded proposal
sequence: stored configurations come back from the cache at no cost), so an
interrupted run continues without repeating or losing a trial. A searcher whose
state depends on the order in which the trials came back (``used``, ``remaining``,
the recent history: ``ppo-edit``'s observation) calls ``objective.replay()`` first
and is handed the stored trials one at a time as it proposes them again.

Registering a searcher::

    @register("random")
    class RandomSearch(Searcher):
        def search(self, objective, seed): ...

``make(name, **options)`` builds one; ``run(searcher, objective, seed)`` runs it to
the end of the budget and returns the history.

Parallel evaluations within one run: a searcher with ``parallel = True`` also
implements ``ask_parallel`` (propose one configuration while other workers'
evaluations are in flight: TPE's constant liar, the GP's pessimistic
fantasies); :func:`run_lane` is one worker's share of such a run, drawing its
evaluations from the run's slots (``env.store.TrialStore.ensure_slots``), so the
budget holds exactly however many workers join.
"""

from __future__ import annotations

import abc
import contextlib
import time
from typing import Any, Callable, ClassVar, Iterator

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState
from threadpoolctl import threadpool_limits

from env import leases
from env.objective import BudgetExhausted, Candidate, Objective
from env.records import TrialRecord, params_key
from env.store import TrialStore

SEARCHERS: dict[str, type["Searcher"]] = {}
"""Registered searchers by name (filled by the modules imported in ``policies/__init__``)."""

MAX_CONSECUTIVE_DUPLICATES = 1000
"""A searcher that re-proposes evaluated configurations this many times in a row has converged: stop."""


class Searcher(abc.ABC):
    """Base class of the search policies (see the module docstring)."""

    name: ClassVar[str] = ""
    parallel: ClassVar[bool] = False
    """Whether several workers can evaluate within one run of this searcher (``ask_parallel``)."""
    proposal_s: ClassVar[float] = 0.0
    """Typical seconds of the searcher's own proposing per evaluation (docs/PERFORMANCE.md, 35 axes, one core).
    Used only to queue costly runs first, so that the workers of an experiment finish together."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.stats: dict[str, Any] = {}
        """Extra cost beside the real evaluations (pre-training steps, surrogate steps, wall times), for reports."""

    @abc.abstractmethod
    def search(self, objective: Objective, seed: int) -> None:
        """Propose and evaluate until ``objective.remaining == 0`` (raising ``BudgetExhausted`` is fine)."""

    @classmethod
    def variant_options(cls, variant: str) -> dict[str, Any]:
        """The options of the name ``<name>@<variant>`` (e.g. ``ppo@ppo_candidates_bybit``: another committed policy);
        ``ValueError`` for searchers without variants."""
        raise ValueError(f"searcher {cls.name!r} has no variants (got {cls.name}@{variant})")

    def ask_parallel(self, study: optuna.Study, objective: Objective, seed: int) -> optuna.trial.Trial:
        """Ask ``study`` (the run's shared study) for one trial whose parameters are the next proposal,
        given ``objective.history`` and the RUNNING trials (other workers' evaluations in flight)."""
        raise NotImplementedError(f"searcher {self.name!r} cannot evaluate in parallel within one run")


def register(name: str) -> Callable[[type[Searcher]], type[Searcher]]:
    def decorate(cls: type[Searcher]) -> type[Searcher]:
        if name in SEARCHERS:
            raise ValueError(f"searcher {name!r} registered twice")
        cls.name = name
        SEARCHERS[name] = cls
        return cls

    return decorate


def searcher_class(name: str) -> type[Searcher]:
    """The class behind a searcher name: a registered name, or ``<name>@<variant>`` (checked by the class's
    ``variant_options``); ``ValueError`` naming the known ones otherwise."""
    base, _, variant = name.partition("@")
    try:
        cls = SEARCHERS[base]
    except KeyError:
        raise ValueError(f"unknown searcher {name!r}; known: {', '.join(sorted(SEARCHERS))}") from None
    if variant:
        cls.variant_options(variant)
    return cls


def make(name: str, **options: Any) -> Searcher:
    """A searcher by name (``searcher_class``); a variant's options first, then ``options``."""
    cls = searcher_class(name)
    variant = name.partition("@")[2]
    return cls(**({**cls.variant_options(variant), **options} if variant else options))


BLAS_THREADS = 1
"""BLAS threads while a searcher runs. One: the model-based searchers' matrices are small (tens to hundreds of
rows), so extra threads only contend with the other workers of an experiment (gp proposed 4x slower with 2 jobs
on 2 cores), and a fixed count makes proposals independent of the machine's cores (gp's proposals, which take an
argmax over floating-point acquisition values, differed between 1 and 2 threads)."""


@contextlib.contextmanager
def torch_threads() -> Iterator[None]:
    """torch's intra-op threads at ``BLAS_THREADS`` for a searcher that uses torch (restored after).

    ``run``'s ``threadpool_limits`` only limits the libraries loaded when it is entered, and torch is imported
    lazily, inside the search: without this the first torch-using run of a process ran on torch's default
    threads and later ones on one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(BLAS_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def run(searcher: Searcher, objective: Objective, seed: int) -> list[TrialRecord]:
    """Run ``searcher`` until the budget is spent (or it stops early); return the full history."""
    began = time.perf_counter()
    try:
        with threadpool_limits(limits=BLAS_THREADS):
            searcher.search(objective, seed)
    except BudgetExhausted:
        pass
    objective.end_replay("the searcher stopped before proposing them all again")
    searcher.stats.setdefault("search_wall_s", time.perf_counter() - began)
    return objective.history


def run_lane(searcher: Searcher, objective: Objective, seed: int, lease: leases.Lease, poll_s: float = 0.5) -> int:
    """One worker's share of a shared run: take an evaluation slot, ask, evaluate, tell; until no slot is left.

    A re-proposal of an evaluated configuration is told as a free duplicate and its
    slot queued again, as is the slot of an evaluation that raised or of a
    configuration another lane is evaluating at that moment. The lane
    waits while other workers' evaluations are in flight (one of them may die and
    its slot come back), and takes back the slots of dead workers itself. A run
    found drained below its budget (a slot lost with its rescuer) is topped up.
    Returns the number of real evaluations this lane made.
    """
    store = objective.store
    if store is None or not store.shared:
        raise ValueError("run_lane needs a shared TrialStore (one with evaluation slots)")
    study = store.study
    made = streak = 0
    while streak < MAX_CONSECUTIVE_DUPLICATES:
        leases.reclaim(study)
        objective.refresh()
        budget = store.budget or objective.budget
        if objective.budget < budget:  # a later submit raised the budget: its lanes take the slots
            break
        counts = store.slots()
        if counts["waiting"] == 0:
            if counts["running"] == 0:
                if not store.ensure_slots(budget):  # 0 unless a slot was lost with its rescuer (env.leases)
                    break
                continue
            time.sleep(poll_s)
            continue
        with threadpool_limits(limits=BLAS_THREADS):
            trial = searcher.ask_parallel(study, objective, seed)
        if "slot" not in trial.user_attrs:  # another lane took the last slot between the count and the ask
            trial.set_user_attr("no_slot", True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        if _surplus(store, trial, budget):  # two lanes topped up a drained run at once
            trial.set_user_attr("surplus", True)
            study.tell(trial, state=TrialState.FAIL)
            continue
        lease.hold(study, trial.number)
        if _collides(study, trial):  # another lane asked for the same configuration at about the same time
            lease.release(study, trial.number)
            trial.set_user_attr("collision", True)
            study.tell(trial, state=TrialState.FAIL)
            leases.enqueue(study, {"slot": True})
            continue
        objective.refresh()
        try:
            new = not objective.seen(trial.params)
            objective(trial.params, trial)
        except UpdateFinishedTrialError:  # we looked dead and the slot was taken back: its replacement counts
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            leases.requeue(study, study.get_trials(deepcopy=False)[trial.number])
            raise
        finally:
            lease.release(study, trial.number)
        if not new:
            leases.enqueue(study, {"slot": True})
        made += new
        streak = 0 if new else streak + 1
    return made


def _surplus(store: TrialStore, trial: optuna.trial.Trial, budget: int) -> bool:
    """Whether the budget is covered without ``trial``'s slot: the spent evaluations plus the slots queued before
    it that are waiting or in flight reach ``budget`` (later slots count this one when they are taken): lanes that
    found the run drained at once each topped it up (:meth:`TrialStore.ensure_slots`)."""
    counts = store.slots(before=trial.number)
    return counts["spent"] + counts["waiting"] + counts["running"] >= budget


def _collides(study: optuna.Study, trial: optuna.trial.Trial) -> bool:
    """Whether another RUNNING trial of ``study`` holds the same parameters.

    Checked after the ask, so of two lanes that agree on a configuration the
    later one always sees the earlier (a trial holds its parameters from the
    ask until it completes, and a completed one is in the history); when both
    check at once both give way, which costs a slot's round trip, never an
    evaluation.
    """
    return any(other.number != trial.number and other.params == trial.params
               for other in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))


class ReplayGuard:
    """Evaluates a searcher's proposals and counts its consecutive duplicates, resume-aware.

    Shared by the searchers that replay a seeded proposal sequence on resume
    (``random``, ``phased``, ``gp``'s space-filling start). A proposal that is
    already in the cache counts as a duplicate, except the first time it matches
    a record the objective held when the guard was built: that is the replay of
    a stored evaluation, which the uninterrupted run made for real. So the
    streak, and with it the stop after ``MAX_CONSECUTIVE_DUPLICATES``, is the same
    whether or not the run was interrupted.
    """

    def __init__(self, objective: Objective) -> None:
        self.objective = objective
        self._stored = {params_key(r.params) for r in objective.history}
        self.streak = 0

    def __call__(self, candidate: Candidate) -> TrialRecord:
        """Evaluate ``candidate`` (``BudgetExhausted`` when it is new and the budget is spent)."""
        key = params_key(self.objective.space.values(self.objective.to_params(candidate)))
        fresh = key in self._stored or not self.objective.seen(candidate)
        self._stored.discard(key)
        record = self.objective(candidate)
        self.streak = 0 if fresh else self.streak + 1
        return record

    @property
    def done(self) -> bool:
        """Budget spent, or ``MAX_CONSECUTIVE_DUPLICATES`` re-proposals in a row (converged)."""
        return self.objective.remaining <= 0 or self.streak >= MAX_CONSECUTIVE_DUPLICATES
