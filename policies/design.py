"""``sobol``: a scrambled Sobol sequence over the unit cube, snapped to the space — quasi-random search.

A space-filling design and a searcher at once: the emulator datasets (``runs.emulator build``) are
``sobol`` runs of 2,000 evaluations per instance, queued and stored like any comparison run; in a
comparison it is the "quasi-random search" row beside ``random``.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.stats import qmc

from env.objective import Objective
from policies.base import ReplayGuard, Searcher, register

BLOCK = 256
"""Points drawn from the sequence at a time (a power of two, so each block keeps Sobol's balance)."""


@register("sobol")
class SobolSearch(Searcher):
    """Scrambled Sobol points (``scipy.stats.qmc.Sobol``, scrambled with ``default_rng(seed)``), each snapped
    onto the space (``SearchSpace.snap``) and evaluated in sequence order.

    A point that snaps to a configuration already evaluated is a free cache hit, so it is skipped without
    costing an evaluation (ints, choices and switches make such repeats common in small spaces); after
    ``policies.base.MAX_CONSECUTIVE_DUPLICATES`` of them in a row the space is exhausted and the run stops.
    Deterministic per seed; resume replays the sequence through ``ReplayGuard`` (stored configurations
    come back from the cache), so a resumed run equals the uninterrupted one.
    """

    def search(self, objective: Objective, seed: int) -> None:
        space = objective.space
        d = len(space)
        engine = qmc.Sobol(d, scramble=True, seed=np.random.default_rng(seed))
        guard = ReplayGuard(objective)
        while not guard.done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # scipy's "n is not a power of 2" never applies here
                block = space.snap(engine.random(BLOCK))
            for unit in block:
                if guard.done:
                    return
                guard(unit)
