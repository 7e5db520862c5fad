"""The arena: the real-evaluation budget (``Objective``), the trial store, and the gymnasium env.

Importing ``env`` registers ``gemsearch/GemSearch-v0`` with gymnasium::

    import gymnasium as gym, env
    e = gym.make("gemsearch/GemSearch-v0", universe="synthetic-small", budget=50)
"""

from __future__ import annotations

import gymnasium

from env.objective import BudgetExhausted, Objective
from env.records import TrialRecord
from env.store import StoreError, TrialStore
from env.tasks import SyntheticTask

ENV_ID = "gemsearch/GemSearch-v0"
if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="env.gym_env:GemSearchEnv")

__all__ = ["BudgetExhausted", "ENV_ID", "Objective", "StoreError", "SyntheticTask", "TrialRecord", "TrialStore"]
