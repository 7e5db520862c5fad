"""``gp``: Bayesian optimisation with the ``surrogate/`` GP (regression on finite scores x feasibility classifier).

1. A seeded Latin-hypercube start of ``n_init`` points (default 10), snapped
   to representable configurations.
2. Then, each step: fit :class:`~surrogate.gp.GPSurrogate` on every evaluated
   point (unit-encoded), and evaluate the never-evaluated snapped point that
   maximises expected improvement x P(feasible)
   (:meth:`~surrogate.gp.GPSurrogate.propose`: random candidates plus local
   perturbations of the best points, over the mixed space).

Speed: optimising the 37 kernel hyperparameters costs seconds at a few hundred
points (about 7 s at n = 200, d = 35, 2 cores); a fit with fixed
hyperparameters costs milliseconds. So the hyperparameters are optimised on
the first ``t`` evaluations at the checkpoints ``t`` of :func:`tuning_points`
(every step up to 15 evaluations, then every ``n // 10``), and every step
refits the models on all data with the latest checkpoint's hyperparameters.

Parallel within one run (``ask_parallel``): the start design's points go out
in order, skipping those evaluated or in flight; then the GP is fitted on the
evaluated points plus the in-flight ones with the worst finite score observed as
their value (the pessimistic constant liar of Ginsbourger et al. 2010: the
acquisition is pushed away from points being evaluated), and the proposal is
fixed on the Optuna trial with ``PartialFixedSampler``.

Resume: the state is ``objective.history`` itself. The start design is
replayed (stored points are free cache hits); each later proposal is a
deterministic function of the history and of ``(seed, evaluations so far)``
(the checkpoint fit is recomputed from the history's prefix), so a resumed run
proposes exactly what an uninterrupted one does.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import optuna
from optuna.samplers import PartialFixedSampler, RandomSampler
from optuna.trial import TrialState
from scipy.stats import qmc

from env.objective import Objective
from env.records import params_key
from env.store import distributions
from policies.base import ReplayGuard, Searcher, register
from surrogate.gp import GPSurrogate


def tuning_point(n: int, every_step_until: int = 15) -> int:
    """The latest hyperparameter checkpoint at or before ``n`` evaluations.

    Checkpoints: every ``t <= every_step_until``, then ``t_{k+1} = t_k + t_k // 10``.
    """
    t = min(n, every_step_until)
    while t + max(1, t // 10) <= n:
        t += max(1, t // 10)
    return t


@register("gp")
class GPBayesOpt(Searcher):
    """GP-BO over the objective's space. Options: ``n_init`` (start design size, default 10)."""

    proposal_s = 0.3
    parallel = True

    def ask_parallel(self, study: optuna.Study, objective: Objective, seed: int) -> optuna.trial.Trial:
        space = objective.space
        pending = [t.params for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if t.params]
        taken = {params_key(p) for p in pending} | {params_key(r.params) for r in objective.history}
        n_init = int(self.options.get("n_init", 10))
        start = [space.values(space.decode(p)) for p in space.snap(qmc.LatinHypercube(d=len(space), seed=seed).random(n_init))]
        start = [p for p in start if params_key(p) not in taken]
        if start and len(objective.history) + len(pending) < n_init:
            proposal = start[0]
        else:
            scores = np.array([r.score for r in objective.history], dtype=float)
            finite = scores[np.isfinite(scores)]
            lie = float(finite.min()) if finite.size else 0.0
            x = np.array([space.encode(space.params(p)) for p in [r.params for r in objective.history] + pending])
            y = np.concatenate([scores, np.full(len(pending), lie)])
            rng = np.random.default_rng((seed, len(x), len(study.get_trials(deepcopy=False)), os.getpid()))
            surrogate = GPSurrogate(space, seed=seed).fit(x, y)
            proposal = space.values(space.decode(surrogate.propose(rng, x)))
        with warnings.catch_warnings():  # PartialFixedSampler is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.sampler = PartialFixedSampler(proposal, RandomSampler(seed=seed))
        return study.ask(distributions(space))

    def search(self, objective: Objective, seed: int) -> None:
        space = objective.space
        guard = ReplayGuard(objective)
        n_init = int(self.options.get("n_init", 10))
        for point in space.snap(qmc.LatinHypercube(d=len(space), seed=seed).random(n_init)):
            if guard.done:
                return
            guard(point)
        tuned: tuple[int, GPSurrogate] | None = None
        encoded: list[np.ndarray] = []  # the history's unit points, encoded once each (the history only grows)
        while not guard.done:
            encoded += [space.encode(space.params(r.params)) for r in objective.history[len(encoded):]]
            x = np.array(encoded)
            y = np.array([r.score for r in objective.history], dtype=float)
            t = tuning_point(len(y))
            if tuned is None or tuned[0] != t:
                tuned = (t, GPSurrogate(space, seed=seed).fit(x[:t], y[:t]))
            surrogate = tuned[1] if t == len(y) else GPSurrogate(space, seed=seed).fit(x, y, like=tuned[1])
            guard(surrogate.propose(np.random.default_rng((seed, objective.used)), x))
