"""Optuna's samplers driving the Objective through ask/tell: ``tpe``, ``optuna-gp`` and ``cmaes``.

All three share one driver (:class:`OptunaSearcher`): each step asks the study for a
trial with the space's distributions (``env.store.distributions``), evaluates
the proposed configuration, and tells the score (``-inf`` rejections are
COMPLETE trials with value ``-inf``, never NaN or FAIL). Re-proposals of an
evaluated configuration are answered free from the objective's cache; the
driver stops after ``MAX_CONSECUTIVE_DUPLICATES`` of them in a row.

Study: with a ``TrialStore`` the sampler runs on the store's own study (the
same storage object, loaded again with our sampler), so a resumed run continues
the same study — its trials, duplicates included, are the sampler's state.
Without a store, an in-memory study is seeded with ``objective.history``.

Parallel within one run (``tpe`` only): each worker's ask uses TPE with
``constant_liar=True`` (Optuna's own batch strategy: trials in flight count as
the worst score, so concurrent asks spread out); the seed of each ask mixes the
run's seed, the study's size and the process id (parallel runs are not
replayable).

Determinism: all are deterministic for a fixed seed. ``tpe`` and ``cmaes`` are rebuilt
before every ask with a seed derived from ``(seed, number of finished trials
in the study)``: a proposal depends only on the study's trials (``cmaes``: with
the CMA-ES state the sampler keeps in their system attributes) and the run's seed, so
an interrupted and resumed run proposes exactly what an uninterrupted run does
(``cmaes``: when the interruption fell between evaluations; see :class:`CmaEsSearch`).
``optuna-gp`` keeps one sampler per ``search`` call, because GPSampler
warm-starts each kernel fit from the previous one (rebuilding it per ask
doubled its time: about 6 s instead of 3 s per ask at 40 trials on the
35-axis joint space, 2 cores); its resumed run continues the same study
without repeating a trial but is not trial-for-trial the uninterrupted one.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from typing import Iterator

import numpy as np
import optuna
from optuna.samplers import BaseSampler, CmaEsSampler, GPSampler, RandomSampler, TPESampler
from optuna.trial import TrialState

from env.objective import Objective
from env.store import distributions
from policies.base import MAX_CONSECUTIVE_DUPLICATES, Searcher, register, torch_threads


def _study(objective: Objective) -> optuna.Study:
    """The study the sampler asks from: the store's (resume) or an in-memory one holding ``objective.history``."""
    if objective.store is not None:
        stored = objective.store.study
        # Study has no public storage accessor; ``_storage`` is the very object the store writes through
        return optuna.load_study(study_name=stored.study_name, storage=stored._storage)
    study = optuna.create_study(direction="maximize")
    dists = distributions(objective.space)
    for record in objective.history:
        params = {k: v for k, v in record.params.items() if k in dists}
        study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                  value=record.score))
    return study


def _step_seed(seed: int, n_trials: int) -> int:
    """A 32-bit sampler seed for the ask that follows ``n_trials`` trials of a run seeded ``seed``."""
    return int(np.random.SeedSequence((seed, n_trials)).generate_state(1)[0])


class OptunaSearcher(Searcher):
    """Ask/tell driver; subclasses build the sampler."""

    reseed_every_ask: bool = True
    """Rebuild the sampler before each ask (replayable resume) or keep one per ``search`` call."""

    def sampler(self, seed: int) -> BaseSampler:
        raise NotImplementedError

    def search(self, objective: Objective, seed: int) -> None:
        study = _study(objective)
        dists = distributions(objective.space)
        study.sampler = self.sampler(seed)
        streak = 0
        while objective.remaining > 0 and streak < MAX_CONSECUTIVE_DUPLICATES:
            if self.reseed_every_ask:
                # finished trials only: a trial left RUNNING by a killed process (failed on reopening) is not a step
                study.sampler = self.sampler(_step_seed(seed, len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))))
            trial = study.ask(dists)
            try:
                new = not objective.seen(trial.params)
                record = objective(trial.params, trial)
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
            if objective.store is None:  # with a store, the objective told the trial (new or duplicate)
                study.tell(trial, record.score)
            streak = 0 if new else streak + 1


@register("tpe")
class TPESearch(OptunaSearcher):
    """Optuna's TPE with every setting explicit (Optuna 5 changed several defaults).

    * ``n_startup_trials=10``: random trials before TPE models anything; Optuna's
      default, about a tenth of a 100-evaluation budget. Option ``n_startup_trials``.
    * ``n_ei_candidates=24``: candidates drawn from l(x) per ask (Optuna's default).
    * ``multivariate=True``: one joint Parzen estimator over all axes, so
      interactions (bull x bear ``r2_threshold``) are modelled; independent TPE
      cannot represent them. Explicit because Optuna 5 derives it when None.
    * ``group=False``: every trial sets every axis (no conditional space to decompose).
    * ``constant_liar=False`` in a sequential run: we evaluate one trial at a
      time, so there are no running trials to penalise (Optuna 5 turned it on by
      default, for parallel workers); interrupted trials are failed by the store
      when it reopens. ``True`` in a parallel run (``ask_parallel``).
    * ``consider_prior=True, prior_weight=1.0, consider_magic_clip=True,
      consider_endpoints=False``, ``gamma(n) = min(ceil(0.1 n), 25)`` (the best
      10% form l(x)), ``weights`` = Optuna's ``default_weights`` (older trials
      ramped down after 25): the values Optuna has used since 2.x, pinned because
      these arguments are deprecated (removal in 6.0 will be a loud TypeError,
      not a silent change of behaviour).
    * ``warn_independent_sampling=False``: the space is static, nothing falls back.
    * ``constraints_func=None``: rejections are scored ``-inf`` (ranked worst),
      not modelled as constraints.
    * ``seed``: per ask, see the module docstring.
    """

    proposal_s = 0.1
    parallel = True

    def ask_parallel(self, study: optuna.Study, objective: Objective, seed: int) -> optuna.trial.Trial:
        n_trials = len(study.get_trials(deepcopy=False))
        study.sampler = self.sampler(_step_seed(seed, n_trials) ^ os.getpid(), constant_liar=True)
        return study.ask(distributions(objective.space))

    def sampler(self, seed: int, constant_liar: bool = False) -> BaseSampler:
        with warnings.catch_warnings():  # the deprecation notices of the pinned legacy arguments
            warnings.simplefilter("ignore", FutureWarning)
            return TPESampler(
                consider_prior=True, prior_weight=1.0, consider_magic_clip=True, consider_endpoints=False,
                n_startup_trials=int(self.options.get("n_startup_trials", 10)), n_ei_candidates=24,
                gamma=_gamma, weights=optuna.samplers._tpe.sampler.default_weights, seed=seed,
                multivariate=True, group=False, warn_independent_sampling=False, constant_liar=constant_liar,
                constraints_func=None,
            )


def _gamma(n: int) -> int:
    """Number of best trials forming TPE's l(x) among ``n`` finished ones (Optuna's single-objective default)."""
    return min(math.ceil(0.1 * n), 25)


@register("optuna-gp")
class OptunaGPSearch(OptunaSearcher):
    """Optuna's ``GPSampler``: the outside reference our ``gp`` must match.

    * ``n_startup_trials=10``: random start (Optuna's default; option ``n_startup_trials``),
      drawn by an explicit seeded ``RandomSampler``.
    * ``deterministic_objective=False``: keep the GP's noise term; the real
      score's stress/base backtests are deterministic but the surrogate must
      absorb model misfit, and Optuna marks the True setting experimental.
    * ``constraints_func=None``: ``-inf`` scores are left to the sampler (it
      clips them to the worst finite value).
    * ``seed``: the run's seed, one sampler per ``search`` call (see the module docstring).
    * Run without Optuna's ``with torch.device("cpu")`` mode (:func:`without_cpu_device_mode`): same proposals,
      about 35% less time; torch on ``BLAS_THREADS`` intra-op threads (``policies.base.torch_threads``).
    """

    proposal_s = 0.5
    reseed_every_ask = False

    def search(self, objective: Objective, seed: int) -> None:
        with torch_threads(), without_cpu_device_mode():
            super().search(objective, seed)

    def sampler(self, seed: int) -> BaseSampler:
        return GPSampler(seed=seed, independent_sampler=RandomSampler(seed=seed),
                         n_startup_trials=int(self.options.get("n_startup_trials", 10)),
                         deterministic_objective=False, constraints_func=None, warn_independent_sampling=False)


class _TorchWithoutCpuDeviceMode:
    """``torch`` as GPSampler's module sees it, except that ``torch.device("cpu")`` is no context manager."""

    def __init__(self) -> None:
        import torch

        self._torch = torch

    def __getattr__(self, name: str):
        return getattr(self._torch, name)

    def device(self, device: str) -> contextlib.AbstractContextManager:
        if str(device) == "cpu" and self._torch.get_default_device().type == "cpu":
            return contextlib.nullcontext()
        return self._torch.device(device)


@contextlib.contextmanager
def without_cpu_device_mode() -> Iterator[None]:
    """Run Optuna's GPSampler without its ``with torch.device("cpu")`` mode while the default device is the CPU.

    Optuna 5.0 wraps every GP ask in ``with torch.device("cpu")`` (against a global CUDA default device, its issue
    #6113). Used as a context manager, ``torch.device`` installs a Python ``TorchFunctionMode``, and every torch call
    inside (a GP ask makes hundreds of thousands) then goes through a Python ``__torch_function__``. With the CPU
    already the default device the mode changes no tensor, so it is left out (the default device is checked at each
    ask; any other default device gets Optuna's context manager): the same proposals, in less time
    (``docs/PERFORMANCE.md``; a test checks the proposals are equal).
    """
    import optuna.samplers._gp.sampler as gp_sampler_module

    original = gp_sampler_module.torch
    gp_sampler_module.torch = _TorchWithoutCpuDeviceMode()
    try:
        yield
    finally:
        gp_sampler_module.torch = original


@register("cmaes")
class CmaEsSearch(OptunaSearcher):
    """Optuna's ``CmaEsSampler`` (CMA-ES, the evolution-strategy anchor; needs the ``cmaes`` package).

    What CMA-ES searches: the int and float axes only (its relative search space:
    10 of the 12 ``core`` axes, all but the categorical ``hmm_refit_interval`` and
    ``hmm_min_observations``; 19 of the 35 ``joint`` axes). Categorical and bool axes (``fit_window``, ``atr_window``,
    ``hmm_refit_interval``, ``hmm_min_observations``, ``detector``, the switches)
    are not supported by CMA-ES: they are drawn by the independent sampler,
    an explicit ``RandomSampler`` with the ask's seed, i.e. uniformly at random on
    every trial, independent of the scores (Optuna's own fallback, made explicit;
    ``warn_independent_sampling=False`` because this is by design, not a fallback
    from a dynamic space). On the joint space this means the component switches
    and the detector are never learnt: that is what CMA-ES is, as an anchor.

    Settings, each explicit:

    * ``with_margin=True`` (CMA-ES with margin, CMAwM): the int axes (``top_n``,
      ``rebalance_cooldown``, ``min_history``) keep a minimum probability of moving
      off their current integer, so they do not fixate once the step size falls
      below one integer step, the failure mode of plain CMA-ES on integers (a run
      of re-proposed, free duplicates). Optuna marks it experimental (the warning
      is silenced). Float axes have step 0 in the margin (continuous).
    * ``popsize = 4 + floor(3 ln n)`` for ``n`` CMA-ES axes (the standard
      Hansen default, passed explicitly: 10 on ``core``, 12 on ``joint``): a
      budget of 100 gives about 8-10 generations, enough for the mean and step
      size to adapt; the larger populations of IPOP restarts would leave only a
      few generations. Option ``popsize``.
    * No restarts: Optuna 5 dropped ``restart_strategy`` (deprecated since 4.4,
      it falls back to none; restarts moved to OptunaHub); in the 10-20
      generations of our budgets the stopping criteria that would trigger an
      IPOP/BIPOP restart are unlikely to be met anyway.
    * ``x0``, ``sigma0`` not passed (deprecated in Optuna 4.9): the mean starts at
      the centre of the box and ``sigma0 = 1/6`` of the unit-scaled range.
    * ``n_startup_trials=1`` (Optuna's default): the first trial is random; the
      relative search space is empty before a completed trial anyway.
    * ``use_separable_cma=False`` (full covariance: at most 19 dimensions, and
      separable CMA cannot be combined with the margin), ``lr_adapt=False``
      (incompatible with the margin), ``consider_pruned_trials=False`` (nothing
      is pruned), ``source_trials=None`` (no warm start).
    * ``-inf``: told as COMPLETE ``-inf`` trials like every Optuna searcher; CMA-ES
      is rank-based, so a rejection simply ranks last in its generation.

    Determinism and resume: the sampler is rebuilt before every ask (seeded from
    ``(seed, finished trials)``, as ``tpe``) and restores the CMA-ES state from the
    system attributes of the study's trials (where ``CmaEsSampler`` stores it,
    pickled, at the end of each generation; the store's study persists them). A
    resumed run is therefore trial-for-trial the uninterrupted one when the
    interruption fell between evaluations (tested). After a kill during an
    evaluation the trial left RUNNING is failed on reopening; it holds a trial
    number, and ``CmaEsSampler`` seeds each CMA-ES draw with ``trial.number``, so
    the resumed run continues without repeating or losing an evaluation but its
    later draws differ from the uninterrupted run's (tested as such).
    """

    proposal_s = 0.07

    def search(self, objective: Objective, seed: int) -> None:
        self._dims = sum(axis.kind in ("int", "float") for axis in objective.space.axes)
        super().search(objective, seed)

    def sampler(self, seed: int) -> BaseSampler:
        popsize = self.options.get("popsize") or default_popsize(max(1, getattr(self, "_dims", 1)))
        with warnings.catch_warnings():  # with_margin is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return CmaEsSampler(
                n_startup_trials=1, independent_sampler=RandomSampler(seed=seed), warn_independent_sampling=False,
                seed=seed, consider_pruned_trials=False, popsize=int(popsize), use_separable_cma=False,
                with_margin=True, lr_adapt=False, source_trials=None,
            )


def default_popsize(n: int) -> int:
    """CMA-ES's standard population size for ``n`` dimensions: ``4 + floor(3 ln n)``."""
    return 4 + int(math.floor(3 * math.log(n)))
