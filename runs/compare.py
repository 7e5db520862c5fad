"""Compare search policies on one real-evaluation budget, over many problem instances.

    python -m runs.compare --quick                                  # embedded: synthetic-small, 3 seeds, budget 60
    python -m runs.compare --suite real-v1 --quick                  # 4 real instances, 2 seeds, budget 40
    python -m runs.compare --suite real-v1 --searcher tpe gp --budget 100 --seeds 5 --jobs 2
    python -m runs.compare --suite synthetic-v1 --instances synthetic-v1-01 synthetic-v1-02 --searcher random tpe
    python -m runs.compare --universe ../shared/data/binance_top50_daily.csv.gz     # one instance: the default split
    python -m runs.compare --name my-run --resume                   # continue an interrupted comparison
    python -m runs.compare --name my-run --resume --rerun ppo       # run one searcher's runs again (code changed)
    python -m runs.compare --suite synthetic-v1 --objective emulated # on the emulators (surrogate.emulator), minutes

Every instance x searcher x seed is one run against its own budgeted ``env.Objective`` on that
instance's problem (search window, strategy, space). Trials go to an Optuna storage (one study per run,
``<name>/<instance>/<searcher>/seed<n>``) and to ``runs/out/<name>/``: ``config.json``,
``runs/<instance>/<searcher>-seed<n>.tsv``, the merged ``trials.tsv``, ``summary.json`` (strict JSON),
PNG plots and ``report.md``. The statistics (``runs/stats.py``, ``docs/STATISTICS.md``) take the
instance as the unit of replication: seeds are averaged within an instance, intervals resample
instances and seeds. Exit codes: 0 done, 1 some run failed, 2 bad arguments, suite or data.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import multiprocessing
import os
import platform
import queue as queue_module
import re
import signal
import sys
import time
import traceback
from collections import Counter
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Collection, Sequence

import numpy as np
import optuna
from tqdm import tqdm

import policies
from data import DataError
from env import Objective, Problem, StoreError, TrialRecord, TrialStore, leases
from env.records import params_key
from env.store import open_storage, study_name
from harness import CONTRACT_VERSION, WindowError
from instances import Instance, InstanceError, load_suite
from instances.pool import DEFAULTS_INDEX, current_rows, evaluate_on_holdout, pool_path, pool_points, read_pool
from instances.warm import warm
from runs import analysis, stats, worker
from strategy.space import SPACES, SearchSpace

OUT = Path(__file__).resolve().parent / "out"
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SEARCHERS = ("phased", "random", "tpe", "gp", "smac", "cmaes", "ppo")
BASELINE = "phased"
QUICK = {"universe": "synthetic-small", "seeds": 3, "budget": 60}
QUICK_SUITE = {"seeds": 2, "budget": 40,
               "instances": {"real-v1": ("binance-spot-2021-07", "binance-spot-2023-01", "bybit-perp-liq30-2022-05",
                                         "bybit-perp-liq30-2023-05")}}
"""``--suite S --quick``: about 4 instances (the named ones, else the first 4), 2 seeds, budget 40."""
CHECKPOINTS = (25, 50, 100, 200)


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


def _emulator_file(args: argparse.Namespace, suite: str | None) -> Path:
    """``--emulator``, else the suite's shipped emulator (``<suite>-<space>`` first when ``--space`` overrides)."""
    from surrogate.emulator.problem import emulator_path

    if args.emulator is not None:
        return args.emulator
    if suite is None:
        raise ValueError("--objective emulated without --suite needs --emulator FILE (emulators are built per suite: "
                         "python -m surrogate.emulator build --suite SUITE)")
    if args.space and emulator_path(suite, args.space).exists():
        return emulator_path(suite, args.space)
    return emulator_path(suite)


def rerun(queue: worker.ExperimentQueue, specs: Sequence[RunSpec], searchers: Sequence[str]) -> None:
    """Discard the stored runs of ``searchers`` in this experiment (``--rerun``): their Optuna studies, TSVs and
    queue claims; the submission that follows queues them again. The other searchers' runs are untouched."""
    unknown = sorted(set(searchers) - {spec.searcher for spec in specs})
    if unknown:
        raise ValueError(f"--rerun {', '.join(unknown)}: not a searcher of this experiment")
    queue.discard(list(searchers))
    storage = open_storage(specs[0].storage)
    for spec in specs:
        if spec.searcher in searchers:
            name = study_name(f"{spec.experiment}/{spec.instance_id}", spec.searcher, spec.seed)
            with suppress(KeyError):
                optuna.delete_study(study_name=name, storage=storage)
            spec.tsv.unlink(missing_ok=True)


def same_objective(stored: dict[str, Any], config: dict[str, Any]) -> None:
    """``StoreError`` unless an experiment continues on the objective (and emulator) it started with."""
    def describe(c: dict[str, Any]) -> str:
        return (f"emulator {c['emulator']['path']} ({c['emulator']['sha256'][:16]}...)" if c.get("objective") == "emulated"
                else "the real harness")

    if (stored.get("objective", "real"), (stored.get("emulator") or {}).get("sha256")) != (
            config["objective"], (config.get("emulator") or {}).get("sha256")):
        raise StoreError(f"experiment {config['name']!r} ran on {describe(stored)}, not {describe(config)}: real and "
                         "emulated trials (or two emulators) never mix in one experiment; use another --name")


def _store(spec: RunSpec, check: Callable[[], None] | None = None, tsv: bool = True) -> TrialStore:
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
    store = _store(spec, check, tsv=not spec.shared)  # a shared run's TSV is written from its study by the report
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


# --------------------------------------------------------------------------- running
class _Progress:
    """One tqdm bar over all real evaluations, with the live best per searcher (or runs per instance)."""

    def __init__(self, total: int, initial: int, instances: int) -> None:
        self.bar = tqdm(total=total, initial=initial, unit="eval", dynamic_ncols=True, file=sys.stderr)
        self.instances = instances
        self.best: dict[str, float] = {}

    def put(self, item: tuple[str, str, int, float]) -> None:
        _, searcher, _, score = item
        self.best[searcher] = max(self.best.get(searcher, -math.inf), score)
        if self.instances == 1:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in sorted(self.best.items())}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _work_in_child(storage: str, experiment: str, out: Path, updates: Any, results: Any) -> None:
    """One worker process of :func:`run_all`: ``worker.work`` until the queue is empty, its outcome put on
    ``results`` as ``("done", summary)``, ``("interrupted", None)`` or ``("raised", traceback)``."""
    worker.interrupt_on_sigterm()
    try:
        results.put(("done", worker.work(storage, experiment, out, updates)))
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # interrupted once (Ctrl-C reaches the workers and the driver,
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # which then stops them too): end quietly
        results.put(("interrupted", None))
    except Exception:
        results.put(("raised", traceback.format_exc()))


def _drain(updates: Any, progress: _Progress) -> None:
    while True:
        try:
            progress.put(updates.get_nowait())
        except queue_module.Empty:
            return


def _stop(processes: Sequence[Any], grace_s: float) -> None:
    """Interrupt worker processes (SIGTERM -> ``KeyboardInterrupt`` in them; one that is already ending after a
    terminal's Ctrl-C ignores it) and wait up to ``grace_s`` in all, then SIGKILL."""
    deadline = time.monotonic() + grace_s
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.kill()
            process.join()


def run_all(storage: str, experiment: str, out: Path, jobs: int, total: int, done: int, instances: int,
            grace_s: float = 30.0) -> dict[str, Any]:
    """Run ``jobs`` workers (``runs.worker.work``) on the experiment's queue here (in this process when ``jobs == 1``).

    Each worker is a process that exits when the queue is empty. Interrupted (Ctrl-C, or ``kill PID`` = SIGTERM
    under ``python -m runs.compare``), the driver stops its workers the same way (:func:`_stop`): none outlives it,
    and each gives its run in progress back to the queue, resumed from its last stored trial by ``--resume``.
    """
    progress = _Progress(total=total, initial=done, instances=instances)
    try:
        if jobs <= 1:
            return worker.work(storage, experiment, out, progress)
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            updates, results = manager.Queue(), manager.Queue()
            processes = [context.Process(target=_work_in_child, args=(storage, experiment, out, updates, results),
                                         name=f"gemsearch-worker-{i}") for i in range(jobs)]
            for process in processes:
                process.start()
            try:
                while any(process.is_alive() for process in processes):
                    _drain(updates, progress)
                    processes[0].join(0.5)
            except KeyboardInterrupt:
                _stop(processes, grace_s)
                raise
            _drain(updates, progress)
            outcomes = [results.get() for _ in range(results.qsize())]
        summary: dict[str, Any] = {"runs": [], "errors": [], "lost": 0}
        for kind, value in outcomes:
            if kind == "raised":
                raise RuntimeError(f"a worker process raised:\n{value}")
            for key, item in (value or {}).items():
                summary[key] += item
        if len(outcomes) < jobs:
            raise RuntimeError(f"{jobs - len(outcomes)} worker process(es) died (exit codes "
                               f"{[p.exitcode for p in processes]}): their runs go back to the queue; continue with "
                               "--resume")
        return summary
    finally:
        progress.close()


@contextmanager
def _only_process(storage: str):
    """With SQLite, only one process may run an experiment's workers: hold a lock file beside the database."""
    if not storage.startswith("sqlite:///"):
        yield
        return
    path = Path(storage[len("sqlite:///"):] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another process is running this experiment on {storage} (SQLite allows one; "
                             "use --storage journal:FILE or postgresql://... for several)") from None
        yield


# --------------------------------------------------------------------------- results
Runs = dict[str, dict[str, dict[int, list[TrialRecord]]]]
"""``{instance: {searcher: {seed: records in evaluation order}}}``."""


def load_runs(specs: Sequence[RunSpec]) -> Runs:
    """The records of every run, from the per-run TSVs (written after the Optuna study)."""
    runs: Runs = {}
    for spec in specs:
        records = []
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                records = [TrialRecord.from_row(row) for row in csv.DictReader(handle, delimiter="\t")]
        runs.setdefault(spec.instance_id, {}).setdefault(spec.searcher, {})[spec.seed] = sorted(
            records, key=lambda r: r.eval_index)
    return runs


def merge_tsv(specs: Sequence[RunSpec], path: Path) -> int:
    """Concatenate the per-run TSVs into one ``trials.tsv`` (an ``instance`` column first, union of columns)."""
    rows, header = [], ["instance"]
    for spec in specs:
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t")
                header += [c for c in reader.fieldnames or [] if c not in header]
                rows.extend({"instance": spec.instance_id, **row} for row in reader)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def _holdout_score(instance: Instance, values: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    """The holdout score of ``values`` on ``instance`` (memoised in ``cache`` by instance fingerprint and params)."""
    key = f"{instance.fingerprint[:16]}|{params_key(values)}"
    if key not in cache:
        try:
            result = evaluate_on_holdout(instance, values, problem_of(canonical(instance)))
            cache[key] = {"score": result.score if math.isfinite(result.score) else "-inf",
                          "window": f"{result.first_day}..{result.last_day}"}
        except WindowError as exc:
            cache[key] = {"score": None, "window": str(exc)}
    return cache[key]


def holdout_scores(specs: Sequence[RunSpec], runs: Runs, cache_path: Path) -> dict[str, dict[str, Any]]:
    """Per instance: the defaults' holdout score and each run's winner's (in-sample, holdout); memoised in ``holdout.json``.

    Scored after every search has ended, by the driver, on the instance's own holdout window.
    """
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    out: dict[str, dict[str, Any]] = {}
    for definition in dict.fromkeys(spec.instance for spec in specs):
        instance = instance_of(definition)
        space = problem_of(definition).space
        defaults = _holdout_score(instance, space.values(space.base), cache)
        entry = out.setdefault(instance.id, {"defaults": defaults, "winners": {}})
        for searcher, seeds in runs.get(instance.id, {}).items():
            for seed, records in seeds.items():
                finite = [r for r in records if math.isfinite(r.score)]
                if not finite:
                    entry["winners"].setdefault(searcher, {})[seed] = {"in_sample": "-inf", "holdout": None}
                    continue
                winner = max(finite, key=lambda r: r.score)
                held = _holdout_score(instance, dict(winner.params), cache)
                entry["winners"].setdefault(searcher, {})[seed] = {"in_sample": winner.score, **held,
                                                                    "params": dict(winner.params)}
        cache_path.write_text(json.dumps(cache, indent=1))
    return out


def _score(value: Any) -> float:
    return -math.inf if value == "-inf" else (math.nan if value is None else float(value))


def random_pool(instance: Instance, config: dict[str, Any], runs: Runs) -> tuple[np.ndarray, str]:
    """The instance's pool of uniform random scores, and where it comes from.

    The suite's stored pool (``instances.pool``: 200 seeded configurations, this contract and fingerprint)
    when there is one; else the ``random`` searcher's evaluations in this experiment (independent uniform
    draws too); else empty (normalised scores then exclude the instance, saying why). An emulated experiment's
    pool is the emulator's scores at the suite pool's configurations (never a real score).
    """
    if config.get("objective") == "emulated":
        problem = problem_of(canonical(instance), emulator_of(config))
        units = [problem.space.encode(problem.space.params(v)) for k, v in pool_points(instance) if k != DEFAULTS_INDEX]
        return problem.evaluate_unit(np.array(units)), f"emulated pool ({len(units)} configurations, scored by the emulator)"
    pool = suite_pool(instance, config, "search")
    if pool.size:
        return pool, f"suite pool ({pool.size} configurations)"
    records = [r.score for recs in runs.get(instance.id, {}).get("random", {}).values() for r in recs]
    if records:
        return np.asarray(records, dtype=float), f"random searcher's {len(records)} evaluations"
    return np.empty(0), "no pool (run the random searcher, or describe the suite)"


def instance_results(config: dict[str, Any], runs: Runs, budget: int) -> tuple[list[stats.InstanceResults], dict]:
    """The statistics' inputs per instance: best-so-far curves, random pool, optimum and floor."""
    results, sources = [], {}
    for definition in config_instances(config).values():
        instance = instance_of(definition)
        seeds_by = runs.get(instance.id, {})
        pool, source = random_pool(instance, config, runs)
        scores = np.concatenate([pool] + [np.array([r.score for r in recs], dtype=float)
                                          for seeds in seeds_by.values() for recs in seeds.values()])
        finite = scores[np.isfinite(scores)]
        curves = {s: {seed: analysis.best_so_far(recs, budget) for seed, recs in seeds.items() if recs}
                  for s, seeds in seeds_by.items()}
        results.append(stats.InstanceResults(instance.id, curves, pool,
                                             optimum=float(finite.max()) if finite.size else None,
                                             floor=float(finite.min()) if finite.size else None))
        sources[instance.id] = source
    return results, sources


def whole_seeds(done: Collection[tuple[str, str, int]], config: dict[str, Any]) -> list[int]:
    """The seeds of ``config`` whose runs are done on every instance x searcher (``done``: ``(instance, searcher,
    seed)`` of the finished runs). Runs are queued in seed rounds (:func:`queue_order`), so a long experiment
    stopped part-way holds its first seeds whole: a report on them replicates over every instance."""
    return [seed for seed in config["seeds"]
            if all((instance, searcher, seed) in done
                   for instance in config_instances(config) for searcher in config["searchers"])]


def restrict_to_seeds(config: dict[str, Any], seeds: Sequence[int], queued: int) -> dict[str, Any]:
    """``config`` limited to ``seeds`` and marked ``partial`` (the seeds it was set up with, runs still queued)."""
    return {**config, "seeds": list(seeds), "partial": {"whole_seeds": list(seeds), "of_seeds": list(config["seeds"]),
                                                        "runs_not_done": queued}}


def load_experiment(folder: Path) -> tuple[dict[str, Any], list[RunSpec], Runs]:
    """A comparison folder's config, run specs and records (for the experiments and re-reporting).

    An experiment still running (or stopped part-way) is read on its whole seeds only (:func:`whole_seeds`, a run
    being done when its TSV, which grows as the run evaluates, holds the whole budget), with ``config["partial"]``
    saying so; a ``ValueError`` when no seed is whole."""
    config_path = Path(folder) / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{folder} is not a runs.compare experiment folder (no config.json)")
    config = json.loads(config_path.read_text())
    specs = specs_of(config, config["storage"], Path(folder))
    runs = load_runs(specs)
    done = {(spec.instance_id, spec.searcher, spec.seed) for spec in specs
            if len(runs[spec.instance_id][spec.searcher][spec.seed]) >= spec.budget}
    if len(done) < len(specs):
        seeds = whole_seeds(done, config)
        if not seeds:
            raise ValueError(f"{folder}: {len(specs) - len(done)} of {len(specs)} runs not done and no seed done on "
                             "every instance x searcher yet")
        config = restrict_to_seeds(config, seeds, len(specs) - len(done))
        specs = [spec for spec in specs if spec.seed in seeds]
        runs = {i: {s: {seed: recs for seed, recs in by_seed.items() if seed in seeds} for s, by_seed in by_s.items()}
                for i, by_s in runs.items()}
    return config, specs, runs


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


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == "-inf" or (isinstance(value, float) and math.isinf(value)):
        return "-inf" if (value == "-inf" or value < 0) else "inf"
    return f"{value:.{digits}f}"


def _ci(pair: Sequence[Any] | None) -> str:
    return "n/a" if not pair else f"[{_fmt(pair[0])}, {_fmt(pair[1])}]"


# --------------------------------------------------------------------------- the report
def aggregate_section(summary: dict[str, Any], baseline: str | None) -> list[str]:
    """The suite-level table (IQM and mean with CIs, mean rank) and the pairwise verdicts."""
    main_budget = summary["main_budget"]
    lines = [f"## Over instances (n = {summary['n_instances']}, budget {main_budget})", "",
             "| searcher | IQM normalised [95% CI] | mean [95% CI] | mean rank | runs |", "|---|---|---|---|---|"]
    order = sorted(summary["aggregate"], key=lambda s: (s != baseline, summary["aggregate"][s]["mean_rank"]
                                                        if not math.isnan(summary["aggregate"][s]["mean_rank"]) else 99))
    for s in order:
        a = summary["aggregate"][s]
        name = f"**{s}** (baseline)" if s == baseline else s
        lines.append(f"| {name} | {_fmt(a['iqm'])} {_ci(a['iqm_ci'])} | {_fmt(a['mean'])} {_ci(a['mean_ci'])} | "
                     f"{_fmt(a['mean_rank'], 2)} | {a['n_runs']} |")
    lines += ["", "Normalised score per instance and seed: `(best - R_b) / (optimum - R_b)`, with `R_b` random search's "
              "expected best of b uniform draws from the instance's random pool and `optimum` the best score ever "
              "seen on the instance (1 = that best, 0 = random search's expectation, below 0 = worse than random; "
              "-inf counts as the instance's lowest finite score). Seeds are averaged within an instance; IQM = mean "
              "of the middle 50% of instances; CIs: percentile bootstrap resampling instances and seeds within them "
              "(docs/STATISTICS.md). Mean rank: over instances where every searcher ran (1 = best). Runs: "
              "instance x seed runs.", "",
              f"Friedman test over instances: p = {_fmt(summary['friedman_p'])}; Nemenyi critical difference "
              f"(alpha 0.05) = {_fmt(summary['cd'], 2)} ranks over {len(summary['rank_instances'])} instances."]
    budgets = summary["budgets"]
    if len(budgets) > 1:
        lines += ["", "## By budget", "", "| searcher | " + " | ".join(f"IQM @{b} [95% CI] | rank @{b}" for b in budgets)
                  + " |", "|---" * (1 + 2 * len(budgets)) + "|"]
        for s in order:
            cells = [summary["aggregate"][s]["by_budget"][str(b)] for b in budgets]
            lines.append(f"| {s} | " + " | ".join(f"{_fmt(c['iqm'])} {_ci(c['iqm_ci'])} | {_fmt(c['mean_rank'], 2)}"
                                                  for c in cells) + " |")
        lines += ["", "The same runs cut at each budget (best of their first b evaluations), normalised with random "
                  "search's expected best of b draws. Friedman p / Nemenyi CD: " + "; ".join(
                      f"@{b} {_fmt(summary['by_budget'][str(b)]['friedman_p'])} / "
                      f"{_fmt(summary['by_budget'][str(b)]['cd'], 2)}" for b in budgets) + "."]
    against = baseline in summary["aggregate"]
    pairs = [p for p in summary["pairwise"] if baseline in (p["a"], p["b"])] if against else summary["pairwise"]
    if pairs:
        holm_key = "wilcoxon_holm_baseline_p" if against else "wilcoxon_holm_p"
        lines += ["", f"## Pairwise{' against the baseline' if against else ''}", "",
                  "| A vs B | instances | IQM of A - B [95% CI] | P(A > B) [95% CI] | Wilcoxon p (Holm) | verdict |",
                  "|---|---|---|---|---|---|"]
        for p in pairs:
            lines.append(f"| {p['a']} vs {p['b']} | {p['n_instances']} | {_fmt(p['diff_iqm'])} {_ci(p['diff_iqm_ci'])} | "
                         f"{_fmt(p['p_improvement'], 2)} {_ci(p['p_improvement_ci'])} | {_fmt(p[holm_key])} | "
                         f"{p['verdict']} |")
        family = (f"the {len(pairs)} comparisons with the baseline" if against
                  else f"all {len(summary['pairwise'])} pairs of searchers")
        lines += ["", "Verdict: \"A beats B\" only where the 95% CI of the IQM of the per-instance differences excludes "
                  "zero (and at least 5 instances); otherwise the data cannot tell. P(A > B): probability that a run of "
                  "A beats a run of B on the same instance, averaged over instances. Wilcoxon signed-rank test over "
                  f"instances, Holm-corrected over {family} (summary.json holds both corrections)."]
    return lines


def suite_pool(instance: Instance, config: dict[str, Any], window: str) -> np.ndarray:
    """The real scores ``(P,)`` of the suite's random configurations (the defaults left out) on ``instance``'s search
    window or holdout (``instances.pool``: this contract and fingerprint; ``python -m runs.instances --suite S
    --describe | --holdout-pool``); empty without a suite or a stored pool."""
    if not config.get("suite_path"):
        return np.empty(0)
    rows = current_rows(read_pool(pool_path(Path(config["suite_path"]), window)), instance)
    return rows[rows["index"] >= 0]["score"].to_numpy(dtype=float) if len(rows) else np.empty(0)


def holdout_pool(instance: Instance, config: dict[str, Any]) -> np.ndarray | None:
    """:func:`suite_pool` on the holdout, or None without one (and for an emulated experiment)."""
    pool = suite_pool(instance, config, "holdout") if config.get("objective") != "emulated" else np.empty(0)
    return pool if pool.size else None


def holdout_results_of(holdout: dict[str, Any], results: Sequence[stats.InstanceResults], budget: int,
                       config: dict[str, Any]) -> list[stats.HoldoutResults]:
    """:func:`holdout_scores`' mapping as the statistics' input, each instance's differences divided by its
    in-sample range at ``budget`` (:func:`stats.in_sample_scales` of ``results``, :func:`instance_results`;
    instances without one are counted, not averaged), with the random pools on both windows where the suite has a
    holdout pool (:func:`holdout_pool`; the search pool is ``results``' random pool)."""
    scales = stats.in_sample_scales(results, budget)
    search_pools = {r.instance: np.asarray(r.random_pool, dtype=float) for r in results}
    definitions = config_instances(config)
    out = []
    for i, h in holdout.items():
        held_out, search = holdout_pool(instance_of(definitions[i]), config), search_pools.get(i)
        both = held_out is not None and search is not None and search.size > 0
        out.append(stats.HoldoutResults(
            i, _score(h["defaults"]["score"]),
            {s: {seed: (_score(w["in_sample"]), _score(w.get("score"))) for seed, w in seeds.items()}
             for s, seeds in h["winners"].items()}, scale=scales.get(i),
            holdout_pool=held_out if both else None, search_pool=search if both else None))
    return out


def holdout_rank_table(decay: dict[str, dict[str, Any]], baseline: str | None = None) -> list[str]:
    """The out-of-sample differences as ranks among the suite's random configurations (``lift_rank``,
    ``decay_rank`` of :func:`stats.holdout_summary`); no lines when no instance has a holdout pool."""
    if not any(d["lift_rank"]["n_instances"] for d in decay.values()):
        return []
    lines = ["", "Among random configurations (the suite's 200 random configurations scored on each window):", "",
             "| searcher | holdout rank - defaults' holdout rank: IQM [95% CI] | Holm p | holdout rank - in-sample rank: "
             "IQM [95% CI] |", "|---|---|---|---|"]
    for s in sorted(decay, key=lambda s: (s != baseline, s)):
        lift, fall = decay[s]["lift_rank"], decay[s]["decay_rank"]
        lines.append(f"| {s} | {_fmt(lift['iqm'])} {_ci(lift['iqm_ci'])} (n={lift['n_instances']}) | "
                     f"{_fmt(lift['wilcoxon_holm_p'])} | {_fmt(fall['iqm'])} {_ci(fall['iqm_ci'])} "
                     f"(n={fall['n_instances']}) |")
    return lines + ["", "Rank: the share of the random configurations scoring below a score on the same window, plus half "
                    "the share tied with it (0 = below all of them, 1 = above all; a rejection, -inf, ties with the "
                    "rejected ones). Every winner scored on the holdout enters, rejected or not; one scale on every "
                    "instance without dividing by a range. Seeds averaged within an instance; n = instances; Holm p as "
                    "above."]


def instance_table(summaries: list[analysis.Summary], holdout: dict[str, Any], baseline: str | None) -> list[str]:
    """Per-instance table: best score at each budget (median [IQR] over seeds), -inf share, holdout, wall time."""
    if not summaries:
        return ["no runs"]
    points = sorted(summaries[0].best_at)
    lines = ["| searcher | " + " | ".join(f"best@{b} median [IQR]" for b in points)
             + " | AUC | -inf share | holdout of winners (median) |", "|---" * (len(points) + 4) + "|"]
    for s in sorted(summaries, key=lambda s: (s.searcher != baseline, s.searcher)):
        name = f"**{s.searcher}** (baseline)" if s.searcher == baseline else s.searcher
        best = [f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for m, lo, hi in (s.best_at[b] for b in points)]
        held = [_score(v.get("score")) for v in holdout.get("winners", {}).get(s.searcher, {}).values()
                if v.get("score") is not None]
        lines.append(f"| {name} | " + " | ".join(best) + f" | {_fmt(s.auc, 2)} | {_fmt(s.rejected_fraction, 2)} | "
                     f"{_fmt(analysis.quantiles(held)[0]) if held else 'n/a'} |")
    return lines


def cost_table(infos: Sequence[dict[str, Any]]) -> list[str]:
    """Seconds per searcher over all its runs: total, in real evaluations, and its own proposals (the rest)."""
    totals: dict[str, list[float]] = {}
    for info in infos:
        row = totals.setdefault(info["searcher"], [0.0, 0.0, 0])
        row[0] += info["wall_s"]
        row[1] += info.get("evaluation_s", 0.0)
        row[2] += 1
    lines = ["| searcher | runs | wall s | in evaluations | proposing (searcher's own) |", "|---|---|---|---|---|"]
    for searcher, (wall, evaluating, runs) in sorted(totals.items()):
        lines.append(f"| {searcher} | {runs} | {wall:.0f} | {evaluating:.0f} | {max(0.0, wall - evaluating):.0f} |")
    return lines


def finish(specs: Sequence[RunSpec], config: dict[str, Any], folder: Path, storage: str,
           infos: Sequence[dict[str, Any]]) -> int:
    """Merge, summarise, plot and report a finished comparison."""
    from runs import plots  # matplotlib: loaded by the process that reports, not by every worker

    for spec in specs:  # write any rows this machine lacks (runs done by other workers) from the studies
        _store(spec)
    runs = load_runs(specs)
    rows = merge_tsv(specs, folder / "trials.tsv")
    budget = config["budget"]
    searchers = [s for s in config["searchers"] if any(s in runs.get(i, {}) for i in runs)]
    baseline = BASELINE if BASELINE in searchers else None
    checkpoints = sorted({c for c in CHECKPOINTS if c < budget} | {budget})
    results, pool_sources = instance_results(config, runs, budget)
    summary = stats.aggregate_table(results, checkpoints, main_budget=budget, baseline=baseline)
    emulated = config.get("objective") == "emulated"
    holdout = holdout_scores(specs, runs, folder / "holdout.json") if not emulated else {  # the emulator models the
        i: {"defaults": {"score": None, "window": "not scored: emulated"}, "winners": {}} for i in runs}  # search window
    holdout_results = holdout_results_of(holdout, results, budget, config)
    decay = stats.holdout_summary(holdout_results)
    wall: dict[str, dict[str, dict[int, float]]] = {}
    for info in infos:  # a shared run's lanes ran side by side: its wall time is the longest lane's
        per = wall.setdefault(info["instance"], {}).setdefault(info["searcher"], {})
        per[info["seed"]] = max(per.get(info["seed"], 0.0), info["wall_s"])
    per_instance = {i: analysis.summarise(seeds, budget, checkpoints, wall=wall.get(i))
                    for i, seeds in runs.items()}

    figures = [plots.normalised_vs_budget_plot(stats.normalised_vs_budget(results, checkpoints),
                                               folder / "normalised_vs_budget.png")]
    ranks = {s: a["mean_rank"] for s, a in summary["aggregate"].items()}
    if summary["rank_instances"]:
        figures.append(plots.cd_diagram_plot(ranks, summary["cd"], folder / "cd_diagram.png",
                                             groups=summary["cd_groups"]))
    usable = [n for n in stats.normalise_all(results, [budget]) if not n.excluded]
    if usable:
        profiles = {s: stats.performance_profile([n.at(s, budget) for n in usable if s in n.scores])
                    for s in stats.searchers_of(usable)}
        figures.append(plots.performance_profile_plot(profiles, folder / "performance_profile.png"))
        figures.append(plots.suite_runtime_ecdf_plot(stats.runtime_ecdf(results, budget), folder / "runtime_ecdf.png"))
    if not emulated:
        figures.append(plots.holdout_instances_plot(holdout_results, folder / "holdout_vs_in_sample.png"))
    if len(runs) <= 4:
        figures += [plots.best_so_far_plot(seeds, budget, folder / f"best_so_far-{i}.png",
                                           title=f"Best-so-far on {i}{' (emulated)' if emulated else ''} "
                                                 "(median and IQR over seeds)")
                    for i, seeds in runs.items()]

    summary_json = {**summary, "pool_sources": pool_sources, "holdout": holdout, "holdout_summary": decay,
                    "instances": {i: [asdict(s) for s in ss] for i, ss in per_instance.items()},
                    "pretrain_overlap": pretrain_overlap(infos),
                    "runs": sorted(infos, key=lambda i: (i["instance"], i["searcher"], i["seed"], i.get("lane", 0))),
                    "objective": config.get("objective", "real"), "contract": config["contract"],
                    **({"emulator": config["emulator"]} if emulated else {}),
                    **({"partial": config["partial"]} if config.get("partial") else {})}
    (folder / "summary.json").write_text(json.dumps(stats.json_safe(summary_json), indent=1, allow_nan=False) + "\n")
    dashboard = dashboard_command(storage)
    n_instances = len(config["instances"])
    kind = "emulated" if emulated else "real"
    setup = (f"Set-up: {'suite `' + config['suite'] + '`, ' if config.get('suite') else ''}{n_instances} instance"
             f"{'s' if n_instances != 1 else ''}, budget {budget} {kind} evaluations per run, seeds {config['seeds']}, "
             f"searchers {', '.join(searchers)}, contract {config['contract']}. "
             + (f"Baseline: the phased one-at-a-time sweep (`{BASELINE}`)." if baseline else "No baseline row (the "
                "phased sweep did not run)."))
    lines = [f"# {config['name']}", "",
             "Question: which search policy finds the best configuration with the fewest real evaluations?", "", setup,
             ""]
    if config.get("partial"):
        part = config["partial"]
        lines[4:4] = [f"**Partial report**: the experiment is not finished ({part['runs_not_done']} runs not done); "
                      f"this report covers seeds {part['whole_seeds']} of {part['of_seeds']}, the seeds done on every "
                      "instance x searcher (runs go in seed rounds). Re-run the report once every run is done.", ""]
    if emulated:
        lines[4:4] = [f"**Emulated**: every score in this report was predicted by the emulator "
                      f"`{config['emulator']['path']}` (SHA-256 {config['emulator']['sha256'][:16]}...; fidelity: "
                      "`python -m surrogate.emulator report`), none by the harness; the holdout is not scored.", ""]
    lines += aggregate_section(summary, baseline)
    lines += in_sample_section(infos)
    if summary["n_instances"] < 5:
        lines += ["", f"With {summary['n_instances']} usable instance(s) no claim about searchers can be made: the "
                  "verdicts say \"the data cannot tell\" below 5 instances. Run a suite (`--suite real-v1`)."]
    if emulated:
        lines += ["", "## Out of sample", "", "Not scored: the emulator models the search window only."]
    lines += [] if emulated else ["", "## Out of sample (each instance's own holdout)", "",
              "| searcher | winners scored | holdout - defaults' holdout: IQM [95% CI] | Holm p | holdout - in-sample: "
              "IQM [95% CI] | winners rejected on the holdout |", "|---|---|---|---|---|---|"]
    for s in sorted(decay, key=lambda s: (s != baseline, s)) if not emulated else ():
        d = decay[s]
        lines.append(f"| {s} | {d['n_pairs']} | {_fmt(d['lift']['iqm'])} {_ci(d['lift']['iqm_ci'])} "
                     f"(n={d['lift']['n_instances']}) | {_fmt(d['lift']['wilcoxon_holm_p'])} | "
                     f"{_fmt(d['decay']['iqm'])} {_ci(d['decay']['iqm_ci'])} "
                     f"(n={d['decay']['n_instances']}) | {_fmt(d['rejected_share'], 2)} |")
    lines += [] if emulated else ["", "Holdout: each run's in-sample winner scored on the instance's holdout window "
                                  "(after the search, by the driver); both differences divided by the instance's in-sample "
                                  "range (its optimum minus random search's expected best at the full budget, the "
                                  "normalised score's denominator), so 1 = that whole range; winners rejected (-inf) on "
                                  "the holdout counted apart, never averaged; n = instances with a finite pair (seeds "
                                  "averaged within each): below 5, no claim. Holm p: Wilcoxon signed-rank test of the per-instance lifts "
                                  "against zero, Holm-corrected over the searchers in this table."]
    lines += [] if emulated else holdout_rank_table(decay, baseline)
    for i in sorted(per_instance):
        instance = instance_of(config_instances(config)[i])
        split = instance.split
        lines += ["", f"## {i}", "", f"Search {split.search_start}..{split.search_end}, holdout {split.holdout_start}.."
                  f"{split.holdout_end or 'end of data'}; defaults' holdout score "
                  f"{_fmt(_score(holdout[i]['defaults']['score']))}; random pool: {pool_sources[i]}.", ""]
        lines += instance_table(per_instance[i], holdout[i], baseline)
    lines += ["", "best@b: best score after b real evaluations, median [25%, 75%] over seeds. AUC: mean of the "
              "best-so-far curve rescaled between the worst and best finite scores of the instance (higher = good "
              "configurations earlier). -inf share: rejected trials. Holdout of winners: median over seeds of the "
              "holdout score of each run's in-sample winner.", "", "## Cost", ""]
    lines += cost_table(infos)
    machines = Counter(info.get("machine", "not recorded") for info in infos)
    lines += ["", "Machines (run parts done there): " + "; ".join(f"{m} ({n})" for m, n in sorted(machines.items())) + ". A run is "
              "replayed exactly only on the CPU family that made it (`docs/RUNS.md`, \"Reproducibility across CPUs\")."]
    warm_log = folder / "warm.json"
    if warm_log.exists():
        warmed = [json.loads(line) for line in warm_log.read_text().splitlines() if line.strip()]
        lines += ["", f"Instance warm-up before the runs (regime chains into the shared disk cache): "
                  f"{sum(w['configurations'] for w in warmed)} settings, {sum(w['seconds'] for w in warmed):.0f} s, "
                  "charged to no searcher."]
    lines += ["", "Seconds summed over each searcher's runs (these runs only: a resumed run counts its last part). "
              "Evaluations are cheaper once an instance's fits and regime chains are cached, so a run that went "
              "first on a cold instance pays more: compare proposing time, which is the searcher's own.", ""]
    lines += ["Figures: emulated runs.", ""] if emulated else []
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    lines += ["", f"{rows} {kind} trials in `trials.tsv`; browse them all: `{dashboard}`"]
    label = emulated_labels if emulated else (lambda lines: lines)
    (folder / "report.md").write_text("\n".join(label(lines)) + "\n")
    print("\n".join(label(aggregate_section(summary, baseline))))
    print(f"report: {folder / 'report.md'}")
    print(f"browse every trial: {dashboard}")
    return 0


def pretrain_overlap(infos: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """``{searcher: {"training" | "validation": [instance, ...]}}``: the instances of this comparison on which a
    learned searcher's policy was meta-trained or validated (its runs' ``pretrain_role``, ``policies.ppo``)."""
    overlap: dict[str, dict[str, set[str]]] = {}
    for info in infos:
        role = (info.get("searcher_stats") or {}).get("pretrain_role")
        if role in ("training", "validation"):
            overlap.setdefault(info["searcher"], {}).setdefault(role, set()).add(info["instance"])
    return {s: {role: sorted(ids) for role, ids in sorted(roles.items())} for s, roles in sorted(overlap.items())}


def in_sample_section(infos: Sequence[dict[str, Any]]) -> list[str]:
    """The report's warning for learned searchers run on instances their policy was trained or validated on."""
    lines = []
    for searcher, roles in pretrain_overlap(infos).items():
        where = "; ".join(f"{role} instances {', '.join(ids)}" for role, ids in roles.items())
        lines += ["", f"**Not held out:** `{searcher}`'s policy was meta-trained or validated on instances of this "
                  f"comparison ({where}; `policies/pretrained/*.json`): its results on them are in-sample, not "
                  "evidence about unseen problems."]
    return lines


def emulated_labels(lines: list[str]) -> list[str]:
    """An emulated report's lines with "emulated" in every heading and every table's first header cell."""
    out = []
    for line in lines:
        if line.startswith("#"):
            line += " (emulated)"
        elif line.startswith(("| searcher |", "| A vs B |")):
            first, rest = line[2:].split(" |", 1)
            line = f"| {first} (emulated) |{rest}"
        out.append(line)
    return out


def dashboard_command(storage: str) -> str:
    if storage.startswith("journal:"):
        return f"optuna-dashboard {storage[len('journal:'):]}"
    return f"optuna-dashboard {storage}"


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--suite", default=None,
                        help="a suite of problem instances: real-v1, synthetic-v1 or a suite file (docs/INSTANCES.md)")
    parser.add_argument("--instances", nargs="+", default=None, metavar="ID", help="only these instances of --suite")
    parser.add_argument("--searcher", nargs="+", default=None, metavar="NAME",
                        help=f"searchers to compare (default: {' '.join(DEFAULT_SEARCHERS)})")
    parser.add_argument("--budget", type=int, default=None, help="real evaluations per run (default 200; quick 60, "
                        "suite quick 40)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 per searcher and instance "
                        "(default 5; quick 3, suite quick 2)")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, help="explicit seeds instead of --seeds")
    parser.add_argument("--universe", default=None,
                        help="without --suite: one instance on this universe with the default split (synthetic "
                             "(default), synthetic-small (quick), bear-basket, or a data file/folder)")
    parser.add_argument("--universe-seed", type=int, default=0, help="market draw of a synthetic --universe")
    parser.add_argument("--space", default=None, choices=sorted(SPACES),
                        help="search space (default: each instance's own, joint for --universe)")
    parser.add_argument("--name", default=None, help="experiment name (folder runs/out/NAME; default from the set-up)")
    parser.add_argument("--out", type=Path, default=OUT, help="parent folder of experiment folders")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL: sqlite:///file.db (default, in the folder), postgresql://..., "
                             "or journal:FILE (default when --jobs > 1: several local processes)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes here (default 1; quick: 2 where the machine has 2+ cores); 0: only "
                             "queue the runs for `python -m runs.worker` elsewhere, and report once they are done")
    parser.add_argument("--lanes", type=int, default=1,
                        help="workers that may evaluate within one run of a searcher that supports it (tpe, gp): "
                             "1 keeps every run sequential and replayable")
    parser.add_argument("--resume", action="store_true", help="continue an existing experiment of the same name")
    parser.add_argument("--partial", action="store_true",
                        help="with --resume: while runs are still queued or running, report on the seeds already done "
                             "on every instance x searcher (the report says it is partial)")
    parser.add_argument("--rerun", nargs="+", default=None, metavar="NAME",
                        help="with --resume: discard these searchers' stored runs (studies, TSVs, queue claims) and "
                             "run them again, e.g. after a searcher's code or default policy changed")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the instance warm-up (every regime chain computed once, before the runs, with "
                             "--jobs processes: python -m runs.instances warm)")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick profile: {QUICK['universe']}, {QUICK['seeds']} seeds, budget {QUICK['budget']}; "
                             f"with --suite: 4 instances, {QUICK_SUITE['seeds']} seeds, budget {QUICK_SUITE['budget']}; "
                             "2 jobs")
    parser.add_argument("--objective", choices=("real", "emulated"), default=None,
                        help="real harness evaluations (default), or the instances' emulators (docs/EMULATOR.md): "
                             "emulated experiments are separate experiments (name suffix -emulated), never mixed "
                             "with real ones, and score no holdout")
    parser.add_argument("--emulator", type=Path, default=None,
                        help="with --objective emulated: the emulator file (default: the suite's, "
                             "surrogate/emulators/<suite>[-<space>].emulator)")
    return parser


def _instances(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str | None, str | None,
                                                                                     list[Instance]]:
    """``(suite name, suite path, instances)`` chosen by the arguments (``InstanceError`` for a bad suite)."""
    if args.suite is None:
        if args.instances:
            parser.error("--instances needs --suite")
        universe = args.universe or (QUICK["universe"] if args.quick else "synthetic")
        return None, None, [Instance.default(universe, seed=args.universe_seed, space=args.space or "joint")]
    if args.universe is not None:
        parser.error("--universe and --suite exclude each other (a suite names its universes)")
    suite = load_suite(args.suite)
    ids = args.instances
    if ids is None and args.quick:
        named = QUICK_SUITE["instances"].get(suite.name)
        ids = list(named) if named else suite.ids[:4]
    chosen = list(suite.select(ids))
    if args.space:
        chosen = [Instance.from_definition({**i.definition(), "space": args.space}, suite=suite.name) for i in chosen]
    return suite.name, str(suite.path), chosen


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser, instances: list[Instance],
              suite: str | None) -> dict[str, Any]:
    quick = (QUICK_SUITE if suite else QUICK) if args.quick else {"seeds": 5, "budget": 200}
    budget = args.budget if args.budget is not None else quick["budget"]
    seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds if args.seeds is not None else quick["seeds"]))
    searchers = args.searcher or [s for s in DEFAULT_SEARCHERS if s in policies.SEARCHERS]
    for name in searchers:
        try:
            policies.searcher_class(name)
        except ValueError as exc:
            parser.error(str(exc))
    if budget < 1:
        parser.error("--budget must be at least 1")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error("seeds must be distinct non-negative integers")
    jobs = args.jobs if args.jobs is not None else (min(2, len(os.sched_getaffinity(0))) if args.quick else 1)
    if jobs < 0:
        parser.error("--jobs must be 0 (queue only) or more")
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    label = suite or instances[0].id
    spaces = sorted({i.space for i in instances})
    name = args.name or (f"compare-{label}-{'-'.join(spaces)}-b{budget}" + ("-quick" if args.quick and suite else "")
                         + ("-emulated" if args.objective == "emulated" else ""))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        parser.error(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    return {"name": name, "budget": budget, "seeds": seeds, "searchers": list(dict.fromkeys(searchers)), "jobs": jobs,
            "lanes": args.lanes}


def _fill_from(previous: dict[str, Any], args: argparse.Namespace) -> None:
    """On --resume, the set-up arguments not given again default to the experiment's own."""
    for arg, key in (("budget", "budget"), ("searcher", "searchers"), ("seed_list", "seeds")):
        if getattr(args, arg) is None and not (arg == "seed_list" and args.seeds is not None):
            setattr(args, arg, previous[key])
    if args.suite is None and args.universe is None:
        if previous.get("suite"):
            args.suite = previous.get("suite_path") or previous["suite"]
            args.instances = args.instances or [d["id"] for d in previous["instances"]]
        else:
            (only,) = previous["instances"]
            args.universe, args.universe_seed = only["universe"], only["seed"]
            args.space = args.space or only["space"]
    if args.lanes == 1:
        args.lanes = previous.get("lanes", 1)
    if args.objective is None:
        args.objective = previous.get("objective", "real")
        if args.objective == "emulated" and args.emulator is None:
            args.emulator = REPO / previous["emulator"]["path"]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rerun and not args.resume:
        parser.error("--rerun discards runs of an existing experiment: pass --resume --name NAME")
    if args.resume and args.name:  # the experiment's own set-up, from its folder or else from the storage
        config_path = (args.out / args.name).resolve() / "config.json"
        stored = json.loads(config_path.read_text()) if config_path.exists() else (
            worker.ExperimentQueue(args.storage, args.name).config if args.storage else None)
        if stored:
            _fill_from(stored, args)
    objective = args.objective or "real"
    if args.emulator is not None and objective != "emulated":
        parser.error("--emulator needs --objective emulated")
    try:
        suite, suite_path, instances = _instances(args, parser)
        for instance in instances:  # an emulated run needs no data: the emulator checks the definition (and the
            instance.check(min_holdout_days=180 if suite else 0, data=objective == "real")  # data where present)
    except (InstanceError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = _settings(args, parser, instances, suite)
    folder = (args.out / settings["name"]).resolve()
    config_path = folder / "config.json"
    if config_path.exists() and not args.resume:
        print(f"error: {folder} already holds an experiment; pass --resume to continue it or --name for a new one",
              file=sys.stderr)
        return 2
    previous = json.loads(config_path.read_text()) if config_path.exists() else {}
    # an emulated trial takes about a millisecond: SQLite's commits (~90 ms a trial on the 2-core container) would
    # be all its cost, a journal file's ~7 ms (docs/EMULATOR.md)
    default = (f"sqlite:///{folder / 'trials.db'}" if settings["jobs"] <= 1 and objective == "real"
               else f"journal:{folder / 'trials.journal'}")
    storage = args.storage or previous.get("storage") or default
    if storage.startswith("sqlite") and settings["jobs"] > 1:
        print(f"error: SQLite serves one worker process; with --jobs {settings['jobs']} use --storage journal:FILE "
              "(this machine) or postgresql://... (several machines)", file=sys.stderr)
        return 2
    config = {**settings, "suite": suite, "suite_path": suite_path,
              "instances": [i.definition() for i in instances], "storage": storage, "contract": CONTRACT_VERSION,
              "objective": objective, "command": "python -m runs.compare " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        if objective == "emulated":
            config["emulator"] = emulator_config(_emulator_file(args, suite))
        if previous:
            same_objective(previous, config)
            worker.check_same_setup(previous, config)
        for instance in instances:  # load and seal every instance's data (or emulator) now: a bad file fails here
            problem_of(canonical(instance), emulator_of(config))
    except (StoreError, DataError, InstanceError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    specs = specs_of(config, storage, folder)
    print(f"{settings['name']}: {len(instances)} instance(s) x {len(settings['searchers'])} searchers x "
          f"{len(settings['seeds'])} seeds x budget {settings['budget']}\nstorage {storage}", file=sys.stderr)
    try:
        with _only_process(storage):
            queue = worker.ExperimentQueue(storage, settings["name"])
            if queue.config is not None:
                same_objective(queue.config, config)
            if args.rerun:
                rerun(queue, specs, args.rerun)
            queue.submit({k: v for k, v in config.items() if k != "jobs"},
                         [(spec.instance_id, spec.searcher, spec.seed, spec.lanes) for spec in queue_order(specs)])
            for spec in specs:
                if spec.shared:
                    _store(spec, tsv=False).ensure_slots(spec.budget)
            config_path.write_text(json.dumps(config, indent=1))
            if settings["jobs"] > 0:
                if not args.no_warm and objective == "real":
                    warmed = warm(instances, jobs=settings["jobs"])
                    print(warmed["skipped"] or f"instance warm-up: {warmed['configurations']} regime settings in "
                          f"{warmed['seconds']:.0f} s (charged to no searcher)", file=sys.stderr)
                    with (folder / "warm.json").open("a") as handle:
                        handle.write(json.dumps(warmed) + "\n")
                done = sum(len(records) for seeds in load_runs(specs).values() for runs_ in seeds.values()
                           for records in runs_.values())
                summary = run_all(storage, settings["name"], args.out.resolve(), settings["jobs"],
                                  sum(s.budget for s in specs), done, len(instances))
                for error in summary["errors"]:
                    print(f"run failed: {error}", file=sys.stderr)
    except (StoreError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished trial is stored; continue with --resume --name {settings['name']}",
              file=sys.stderr)
        return 130
    status = queue.status()
    if (status["waiting"] or status["running"]) and args.partial:
        infos = queue.infos()
        seeds = whole_seeds({(i["instance"], i["searcher"], i["seed"]) for i in infos}, config)
        if not seeds:
            print(f"error: no seed is done on every instance x searcher yet ({status['complete']} run claims done)",
                  file=sys.stderr)
            return 2
        partial = restrict_to_seeds(config, seeds, status["waiting"] + status["running"])
        return finish([spec for spec in specs if spec.seed in seeds], partial, folder, storage,
                      [info for info in infos if info["seed"] in seeds])
    if status["waiting"] or status["running"]:
        print(f"{status['complete']} run claims done, {status['running']} running, {status['waiting']} waiting: start "
              f"workers with `python -m runs.worker --storage {storage} --experiment {settings['name']}`; report with "
              f"`python -m runs.compare --storage {storage} --name {settings['name']} --resume --jobs 0`", file=sys.stderr)
        return 0
    if status["failed"]:
        print(f"{status['failed']} run(s) failed (see above); fix and --resume to run them again", file=sys.stderr)
        return 1
    return finish(specs, config, folder, storage, queue.infos())


if __name__ == "__main__":
    worker.interrupt_on_sigterm()  # the command line only: a caller of main() keeps its own signal handling
    sys.exit(main())
