"""One run of a comparison: its spec (instance x searcher x seed), its problem and trial store, and executing it.

A :class:`RunSpec` is picklable (sent to worker processes); :func:`execute` runs it to the end of its budget against
its own budgeted ``env.Objective``, resuming from its store. ``runs.worker`` and ``runs.processes`` call it; the
command line is ``runs.compare``.
"""

from __future__ import annotations

import json
import math
import platform
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import policies
import stats
from env import Objective, TrialStore, leases
from instances import Instance, Problem

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class RunSpec:
    """One instance x searcher x seed of a comparison (picklable: sent to worker processes)."""

    experiment: str
    folder: str
    storage: str
    instance: str
    """The instance's definition as canonical JSON (workers need no suite file, only the data)."""
    budget: int
    searcher: str
    seed: int
    lanes: int = 1
    """Workers that may evaluate within this run at once (> 1: a shared run with evaluation slots)."""
    emulator: str = ""
    """``--objective emulated``: the experiment's emulator as canonical JSON (path and SHA-256); empty: real."""

    @property
    def instance_id(self) -> str:
        return json.loads(self.instance)["id"]

    @property
    def tsv(self) -> Path:
        return Path(self.folder) / "runs" / self.instance_id / f"{self.searcher}-seed{self.seed}.tsv"

    @property
    def shared(self) -> bool:
        return self.lanes > 1


def lanes_for(searcher: str, lanes: int) -> int:
    """``lanes`` for a searcher that can evaluate in parallel within one run, else 1."""
    return lanes if policies.searcher_class(searcher).parallel else 1


def canonical(instance: Instance) -> str:
    return json.dumps(instance.definition(), sort_keys=True)


def config_instances(config: dict[str, Any]) -> dict[str, str]:
    """``{instance id: canonical definition}`` of an experiment set-up."""
    return {d["id"]: json.dumps(d, sort_keys=True) for d in config["instances"]}


def spec_from_config(config: dict[str, Any], storage: str, folder: Path | str, instance: str, searcher: str,
                     seed: int) -> RunSpec:
    """The run ``instance`` x ``searcher`` x ``seed`` of an experiment set-up (``config.json``, or the queue's copy)."""
    return RunSpec(config["name"], str(Path(folder).resolve()), storage, config_instances(config)[instance],
                   config["budget"], searcher, seed, lanes_for(searcher, config.get("lanes", 1)), emulator_of(config))


def emulator_of(config: dict[str, Any]) -> str:
    """An experiment's emulator (``RunSpec.emulator``): empty for real evaluations."""
    return json.dumps(config["emulator"], sort_keys=True) if config.get("objective") == "emulated" else ""


@lru_cache(maxsize=8)
def instance_of(definition: str) -> Instance:
    return Instance.from_definition(json.loads(definition))


@lru_cache(maxsize=8)
def problem_of(definition: str, emulator: str = "") -> Problem:
    """What the searchers see: the instance's sealed search window (built once per process); with ``emulator``
    (``RunSpec.emulator``) its emulated problem instead (``surrogate.emulator``: no data, no harness)."""
    if not emulator:
        return Problem.from_instance(instance_of(definition))
    from surrogate.emulator.model import EmulatorFile
    from surrogate.emulator.problem import EmulatedProblem

    stored = json.loads(emulator)
    container = EmulatorFile(REPO / stored["path"])
    if container.sha256 != stored["sha256"]:
        from surrogate.emulator.dataset import EmulatorError
        raise EmulatorError(f"{container.path}: changed since this experiment started (SHA-256 {container.sha256[:16]}..., "
                            f"the experiment's is {stored['sha256'][:16]}...); emulated runs never mix emulators: "
                            "use another --name")
    return EmulatedProblem(container.load(instance_of(definition)))


def emulator_config(path: Path) -> dict[str, str]:
    """``config["emulator"]``: the file (relative to the repository when inside it) and its SHA-256."""
    from surrogate.emulator.model import EmulatorFile

    path = Path(path).resolve()
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    return {"path": str(shown), "sha256": EmulatorFile(path).sha256}


def trial_store(spec: RunSpec, check: Callable[[], None] | None = None, tsv: bool = True) -> TrialStore:
    """The run's trial store; ``check`` raises once this worker's claim on the run is lost."""
    problem = problem_of(spec.instance, spec.emulator)
    if spec.emulator:  # an emulated run's study names its emulator: it never mixes with a real one, or another emulator
        identity = {"instance": spec.instance_id, "fingerprint": problem.emulator.meta["fingerprint"][:16],
                    "strategy": problem.strategy.name, "objective": "emulated", "emulator": problem.contract}
    else:
        identity = {"instance": spec.instance_id, "fingerprint": instance_of(spec.instance).fingerprint[:16],
                    "strategy": problem.strategy.name}
    return TrialStore(spec.storage, f"{spec.experiment}/{spec.instance_id}", spec.searcher, spec.seed, problem.space,
                      tsv_path=spec.tsv if tsv else None, identity=identity, shared=spec.shared, lease=check)


def execute(spec: RunSpec, progress: Any = None, holder: leases.Lease | None = None,
            check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one instance x searcher x seed to the end of its budget (resuming from its store); return its run info.

    A shared run (``spec.lanes > 1``) is this worker's lane of it (``policies.run_lane``;
    ``holder`` keeps its evaluation slots alive); ``check`` raises ``LeaseLost``
    before any write once another worker took the run back.
    """
    problem = problem_of(spec.instance, spec.emulator)
    store = trial_store(spec, check, tsv=not spec.shared)  # a shared run's TSV is written from its study by the report
    report = (lambda record: progress.put((spec.instance_id, spec.searcher, spec.seed, record.score))
              ) if progress is not None else None
    objective = Objective(problem, spec.budget, searcher=spec.searcher, seed=spec.seed, store=store, on_record=report)
    searcher = policies.make(spec.searcher)
    resumed = objective.used
    began = time.perf_counter()
    if spec.shared:
        own = leases.Lease(store.study._storage) if holder is None else holder
        try:
            policies.run_lane(searcher, objective, spec.seed, own)
        finally:
            if holder is None:
                own.close()
        objective.refresh()
    else:
        policies.run(searcher, objective, spec.seed)
    best = objective.best
    return {"instance": spec.instance_id, "searcher": spec.searcher, "seed": spec.seed, "evaluations": objective.used,
            "resumed_from": resumed, "cache_hits": objective.cache_hits, "wall_s": time.perf_counter() - began,
            "evaluation_s": sum(r.wall_time_s for r in objective.history[resumed:]),
            "best": best.score if best is not None and math.isfinite(best.score) else None,
            "searcher_stats": _jsonable(searcher.stats), "machine": machine()}


@lru_cache(maxsize=1)
def machine() -> str:
    """This CPU's model and vector width, e.g. ``"Intel(R) Xeon(R) Processor, AVX-512"``: recorded with every run,
    because the searchers' own floating point (numpy's AVX-512 exp/log kernels, OpenBLAS's per-CPU kernels) differs
    in the last bits between CPU families, and a run is replayed exactly only on the family that made it."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")),
                 platform.machine())
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []))
    return f"{model}, {'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(stats.json_safe(value), allow_nan=False))


def specs_of(config: dict[str, Any], storage: str, folder: Path) -> list[RunSpec]:
    return [spec_from_config(config, storage, folder, instance, searcher, seed)
            for instance in config_instances(config) for searcher in config["searchers"] for seed in config["seeds"]]


def queue_order(specs: Sequence[RunSpec]) -> list[RunSpec]:
    """The runs in the order workers take them, in rounds: every instance x searcher at the first seed, then
    at the second, and so on, so that a long experiment stopped part-way (or reported with ``--jobs 0`` while
    workers still run) already holds whole seeds over every instance, the unit of replication. Within a
    round the searchers with the costliest proposals go first (``Searcher.proposal_s``; longest-first
    scheduling, so that no worker is left alone with a slow run at the end), otherwise as configured. The
    order changes when runs happen, never what they compute."""
    return sorted(specs, key=lambda spec: (spec.seed, -policies.searcher_class(spec.searcher).proposal_s))
