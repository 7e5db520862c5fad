"""Search policies behind one interface (:mod:`policies.base`), selectable by name.

``SEARCHERS`` maps names to classes; ``make(name, **options)`` builds one and
``run(searcher, objective, seed)`` runs it against a budgeted ``env.Objective``.
"""

from __future__ import annotations

from policies.base import SEARCHERS, Searcher, make, register, run, run_lane, searcher_class
from policies import bo, design, optuna_samplers, phased, ppo, random_search, smac_search  # noqa: F401,E402  (register the searchers)

__all__ = ["SEARCHERS", "Searcher", "make", "register", "run", "run_lane", "searcher_class"]
