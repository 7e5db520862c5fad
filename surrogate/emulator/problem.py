"""The emulated problem (``instances.Problem``'s interface on an emulator) and gymnasium tasks for meta-training.

``EmulatedProblem`` answers ``evaluate(params)`` in well under a millisecond with the emulator's score
(``real = False``, ``contract = "emulator:<16 hex of its fingerprint>"``), so ``Objective``, every searcher,
``runs.compare --objective emulated`` and the gymnasium envs run on it unchanged, and every record made on it
names the emulator that produced it.

Per-episode randomisation for meta-training (:meth:`EmulatedProblem.randomised`, :class:`EpisodeSampler`):

* ``scale`` and ``shift``: the score becomes ``scale * score + shift`` (rank-preserving; a policy should not
  learn one instance's score range). ``-inf`` stays ``-inf``.
* ``noise``: Gaussian noise with standard deviation ``noise`` x the instance's finite-score standard deviation,
  a deterministic function of ``(seed, configuration)`` (the same configuration always gets the same score
  within an episode, as with the real harness, whose duplicates are answered from the cache).
* ``threshold``: the feasibility cut on ``P(feasible)`` (default the emulator's calibrated one); moving it grows or
  shrinks the rejected region.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from env.objective import Objective
from harness.evaluate import EvalResult
from instances import Instance
from strategy import STRATEGIES, Strategy
from strategy.ensemble import EnsembleParams
from strategy.space import SearchSpace
from surrogate.emulator.dataset import DATA_DIR, stem
from surrogate.emulator.model import EmulatorFile, InstanceEmulator


def emulator_path(suite: str, space: str | None = None, folder: Path = DATA_DIR) -> Path:
    """Where a suite's emulator lives (``surrogate/emulators/<suite>[-<space>].emulator``)."""
    return Path(folder) / f"{stem(suite, space)}.emulator"


@dataclass
class EmulatedProblem:
    """An instance's emulator behind the ``Problem`` interface (``space``, ``evaluate``, ``real = False``)."""

    emulator: InstanceEmulator
    scale: float = 1.0
    shift: float = 0.0
    noise: float = 0.0
    seed: int = 0
    threshold: float | None = None
    real = False  # records made on it are emulated, never harness evaluations

    @property
    def space(self) -> SearchSpace:
        return self.emulator.space

    @property
    def instance(self) -> str:
        return self.emulator.instance

    @property
    def strategy(self) -> Strategy:
        return STRATEGIES[self.emulator.meta["definition"]["strategy"]]

    @property
    def contract(self) -> str:
        return f"emulator:{self.emulator.fingerprint[:16]}"

    @property
    def noise_sd(self) -> float:
        score = self.emulator.meta.get("score") or {}
        return self.noise * float(score.get("std", 0.0) or 0.0)

    def evaluate_unit(self, x: np.ndarray) -> np.ndarray:
        """Emulated scores at ``(n, d)`` unit points (snap them first for what decoding can represent)."""
        x = np.atleast_2d(np.asarray(x, dtype=float))
        scores = self.emulator.scores(x, self.threshold)
        finite = np.isfinite(scores)
        if self.noise_sd > 0:  # keyed by the configuration a point decodes to, however it was written
            space = self.space
            draws = np.array([_normal(self.seed, space.encode_values(space.decode_values(row))) for row in x])
            scores = np.where(finite, scores + self.noise_sd * draws, scores)
        return np.where(finite, self.scale * scores + self.shift, scores)

    def evaluate(self, params: EnsembleParams) -> EvalResult:
        unit = self.space.encode(params)
        score = float(self.evaluate_unit(unit[None, :])[0])
        split = self.emulator.meta["definition"]["split"]["search"]
        return EvalResult(score=score, base={}, stress={}, contract=self.contract, first_day=split[0],
                          last_day=split[1], extra={"emulator": self.emulator.fingerprint})

    def randomised(self, rng: np.random.Generator, scale: tuple[float, float] = (1.0, 1.0),
                   shift: tuple[float, float] = (0.0, 0.0), noise: tuple[float, float] = (0.0, 0.0),
                   threshold: tuple[float, float] | None = None) -> "EmulatedProblem":
        """A copy with a randomisation drawn from ``rng``: ``scale`` log-uniform, the others uniform in their range."""
        lo, hi = scale
        drawn_scale = float(math.exp(rng.uniform(math.log(lo), math.log(hi)))) if hi > lo else float(lo)
        return replace(self, scale=drawn_scale, shift=float(rng.uniform(*shift)), noise=float(rng.uniform(*noise)),
                       seed=int(rng.integers(2**31)),
                       threshold=None if threshold is None else float(rng.uniform(*threshold)))


def _normal(seed: int, unit: np.ndarray) -> float:
    """A standard normal draw that is a function of ``(seed, configuration)`` only."""
    digest = hashlib.blake2b(np.asarray(unit, dtype=float).tobytes() + int(seed).to_bytes(8, "little", signed=True),
                             digest_size=8).digest()
    return float(np.random.default_rng(int.from_bytes(digest, "little")).standard_normal())


def load_problem(instance: Instance, path: Path | str, space: SearchSpace | None = None) -> EmulatedProblem:
    """The emulated problem of ``instance`` from the container at ``path`` (checked: ``EmulatorError``)."""
    return EmulatedProblem(EmulatorFile(Path(path)).load(instance, space))


def suite_problems(suite: str | Path, path: Path | str | None = None, space: str | None = None,
                   instances: Sequence[str] | None = None) -> list[EmulatedProblem]:
    """The emulated problems of a suite's instances that have an emulator (all of them, or ``instances``)."""
    from instances import load_suite

    loaded = load_suite(suite)
    container = EmulatorFile(Path(path) if path is not None else emulator_path(loaded.name, space))
    chosen = [i for i in loaded.select(instances) if instances is not None or i.id in container.instances]
    if space:
        chosen = [Instance.from_definition({**i.definition(), "space": space}, suite=loaded.name) for i in chosen]
    return [EmulatedProblem(container.load(i)) for i in chosen]


class EpisodeSampler:
    """An ``objective_factory`` for ``env.gym_env``: each call is one episode's budgeted ``Objective`` on an emulated
    instance drawn uniformly from ``problems``, randomised per episode (see the module docstring).

    ``budget`` is an int or a ``(low, high)`` range drawn per episode. Deterministic given ``seed``.
    """

    def __init__(self, problems: Sequence[EmulatedProblem], budget: int | tuple[int, int] = 60, seed: int = 0,
                 scale: tuple[float, float] = (1.0, 1.0), shift: tuple[float, float] = (0.0, 0.0),
                 noise: tuple[float, float] = (0.0, 0.0), threshold: tuple[float, float] | None = None) -> None:
        if not problems:
            raise ValueError("EpisodeSampler needs at least one emulated problem")
        names = {p.space.names == problems[0].space.names for p in problems}
        if names != {True}:
            raise ValueError("every emulated problem of a sampler must share one search space")
        self.problems = list(problems)
        self.budget = (int(budget), int(budget)) if np.isscalar(budget) else (int(budget[0]), int(budget[1]))
        self.rng = np.random.default_rng(seed)
        self.randomisation: dict[str, Any] = {"scale": scale, "shift": shift, "noise": noise, "threshold": threshold}
        self.episodes = 0
        self.last: EmulatedProblem | None = None

    @property
    def space(self) -> SearchSpace:
        return self.problems[0].space

    def __call__(self) -> Objective:
        problem = self.problems[int(self.rng.integers(len(self.problems)))].randomised(self.rng, **self.randomisation)
        budget = int(self.rng.integers(self.budget[0], self.budget[1] + 1))
        self.last = problem
        self.episodes += 1
        return Objective(problem, budget, searcher="env", seed=self.episodes)


def make_env(problems: Sequence[EmulatedProblem], kind: str = "candidate", budget: int | tuple[int, int] = 60,
             seed: int = 0, **randomisation: Any):
    """A gymnasium env over emulated instances: ``kind="candidate"`` (:class:`env.gym_env.CandidateSearchEnv`, what
    the ``ppo`` searcher is trained in) or ``"edit"`` (:class:`env.gym_env.GemSearchEnv`); ``randomisation`` as
    :class:`EpisodeSampler` takes it."""
    from env.gym_env import CandidateSearchEnv, GemSearchEnv

    sampler = EpisodeSampler(problems, budget=budget, seed=seed, **randomisation)
    if kind == "candidate":
        return CandidateSearchEnv(sampler.space, objective_factory=sampler)
    if kind == "edit":
        return GemSearchEnv(budget=sampler.budget[1], objective_factory=sampler)
    raise ValueError(f"kind must be 'candidate' or 'edit', got {kind!r}")
