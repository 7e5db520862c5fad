"""``random``: uniform sampling over the objective's space — the floor every smart searcher must beat."""

from __future__ import annotations

import numpy as np

from env.objective import Objective
from policies.base import ReplayGuard, Searcher, register


@register("random")
class RandomSearch(Searcher):
    """Independent uniform draws (``space.sample`` on ``np.random.default_rng(seed)``).

    Resume: the seeded sequence is replayed from its start; stored configurations
    come back from the cache for free, so the resumed history equals an
    uninterrupted run's.
    """

    def search(self, objective: Objective, seed: int) -> None:
        rng = np.random.default_rng(seed)
        guard = ReplayGuard(objective)
        while not guard.done:
            guard(objective.space.sample(rng))
