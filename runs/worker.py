"""Workers: any number of processes, on one machine or many, share the runs of one experiment.

    # once, anywhere: record the experiment in the storage and queue its runs (--jobs 0: run none here)
    python -m runs.compare --storage postgresql://user@host/db --name NAME --searcher tpe gp --seeds 10 --jobs 0
    # on every machine, as many as you like, started and stopped whenever you like
    python -m runs.worker --storage postgresql://user@host/db --experiment NAME
    # anywhere, once the queue is empty: the report (merges the studies into runs/out/NAME/)
    python -m runs.compare --storage postgresql://user@host/db --name NAME --resume --jobs 0

The experiment lives in the storage, nowhere else: its set-up (with the
definitions of its problem instances) is a user attribute of the queue study
``NAME/_runs`` and each instance x searcher x seed run is one queued trial there (a *run claim*, ``env.leases``). A worker claims a run
atomically, executes it (resuming from the run's own study if an earlier
worker died in it), and marks the claim COMPLETE with the run's summary; then
it takes the next. With ``--lanes K`` (``runs.compare``), runs of the searchers that
can evaluate in parallel (``tpe``, ``gp``) are queued as ``K`` claims each, and
up to ``K`` workers draw that run's evaluations from its slots together.

A worker killed at any point loses nothing: its claim and slots go back to
the queue (at once when it ran on this host, after ``GEMSEARCH_GRACE_S``
seconds without heartbeat otherwise), and whoever takes them resumes from the
trial store; a worker killed while taking a claim back leaves a run with no
claim, which the next worker queues again (:meth:`ExperimentQueue.reclaim`).
A worker with nothing left to claim waits while other workers hold runs (one
may die) and exits when every run is done.

Storage: PostgreSQL (or any server database SQLAlchemy reaches) for several
machines; ``journal:FILE`` for several processes on one machine. SQLite is
refused here: it cannot arbitrate claims between processes (docs/howto/several-machines.md).
Exit codes: 0 every run done, 1 some run raised (its claim is FAIL with the
error; the next ``runs.compare --resume`` queues it again), 2 bad arguments,
130 stopped by Ctrl-C or ``kill PID`` (SIGTERM): the run in progress goes back to
the queue (its holder is a dead process) and resumes from its last stored trial.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from env import leases
from env.store import StoreError, open_storage
from runs.execution import execute as run_spec
from runs.execution import spec_from_config

QUEUE_SUFFIX = "/_runs"


def check_same_setup(stored: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    """A later submission of an experiment may add instances, searchers, seeds and budget, but an instance id
    must keep its definition (universe, split, space, strategy): ``StoreError`` otherwise."""
    before = {d["id"]: d for d in stored.get("instances", [])}
    for definition in config["instances"]:
        old = before.get(definition["id"])
        if old is not None and old != definition:
            raise StoreError(f"experiment {config['name']!r} ran instance {definition['id']!r} as {old}, not "
                             f"{definition}; use another --name")


@dataclass(frozen=True)
class Claim:
    """One queued run (or one lane of a shared run) this worker holds."""

    number: int
    instance: str
    searcher: str
    seed: int
    lane: int


class ExperimentQueue:
    """The runs of one experiment as queued trials of the study ``<experiment>/_runs``."""

    def __init__(self, storage: str, experiment: str) -> None:
        self.experiment = experiment
        try:
            self.study = optuna.create_study(storage=open_storage(storage), study_name=experiment + QUEUE_SUFFIX,
                                             direction="maximize", load_if_exists=True)
        except Exception as exc:
            raise StoreError(f"cannot open Optuna storage {storage!r}: {exc}") from exc

    @property
    def config(self) -> dict[str, Any] | None:
        """The experiment's set-up as submitted (None before the first submission)."""
        return self.study.user_attrs.get("experiment")

    def submit(self, config: Mapping[str, Any], runs: Sequence[tuple[str, str, int, int]]) -> int:
        """Record the set-up and queue each ``(instance, searcher, seed, lanes)`` run not done at ``config['budget']``.

        Call it from one process at a time (the experiment's owner). Returns the
        number of claims queued.
        """
        stored = self.config
        if stored is not None:
            check_same_setup(stored, config)
            known = {d["id"]: d for d in stored["instances"]}
            known.update({d["id"]: d for d in config["instances"]})
            config = {**config, "instances": list(known.values())}
        self.study.set_user_attr("experiment", dict(config))
        covered = set()
        discarded = self.discarded_claims()
        for trial in self.study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            if discarded(trial):
                continue
            if trial.state in (TrialState.WAITING, TrialState.RUNNING) or (
                    trial.state == TrialState.COMPLETE and attrs.get("budget", 0) >= config["budget"]):
                covered.add(_run_of(trial))
        queued = 0
        for instance, searcher, seed, lanes in runs:
            for lane in range(lanes):
                if (instance, searcher, seed, lane) not in covered:
                    leases.enqueue(self.study, {"instance": instance, "searcher": searcher, "seed": seed, "lane": lane,
                                                "budget": config["budget"]})
                    queued += 1
        return queued

    def pop(self) -> Claim | None:
        """Claim the next waiting run: the lowest seed first, in queued order within a seed. A replacement of a
        run taken back from a dead worker goes where the run it replaces was queued (``leases.requeue`` appends
        it), so seed rounds stay whole after a crash (before, it waited behind every later seed).

        A claim is dropped (FAIL, ``redundant``) instead of returned when an earlier claim of the same run is
        waiting, running or done at its budget: two processes that each queued the run again (see
        :meth:`reclaim`) leave two claims, and only the earlier one runs."""
        while True:
            trial = leases.pop(self.study, key=lambda t: (int(t.user_attrs.get("seed", 0)),
                                                         int(t.user_attrs.get("replaces", t.number))))
            if trial is None:
                return None
            earlier = self._earlier_live_claim(trial)
            if earlier is None:
                break
            self._fail_held(trial.number, "redundant", earlier)
        attrs = trial.user_attrs
        return Claim(trial.number, attrs["instance"], attrs["searcher"], int(attrs["seed"]), int(attrs.get("lane", 0)))

    def _earlier_live_claim(self, trial: optuna.trial.FrozenTrial) -> int | None:
        """The number of an earlier claim of ``trial``'s run that is waiting, running, or complete at a budget
        at least ``trial``'s; None when there is none."""
        run, budget = _run_of(trial), trial.user_attrs.get("budget", 0)
        discarded = self.discarded_claims()
        for other in self.study.get_trials(deepcopy=False):
            if other.number >= trial.number or _run_of(other) != run or discarded(other):
                continue
            if other.state in (TrialState.WAITING, TrialState.RUNNING) or (
                    other.state == TrialState.COMPLETE and other.user_attrs.get("budget", 0) >= budget):
                return other.number
        return None

    def reclaim(self) -> None:
        """Take back the claims of dead workers (``leases.reclaim``: each is failed, then a replacement queued), and
        queue again each run whose latest claim was taken back with no replacement queued: the process that took
        it back died between its two writes (before, that run was lost until the next ``runs.compare --resume``).
        Two processes may both queue it; :meth:`pop` runs the earlier claim and drops the other."""
        leases.reclaim(self.study)
        latest: dict[tuple, optuna.trial.FrozenTrial] = {}
        discarded = self.discarded_claims()
        for trial in self.study.get_trials(deepcopy=False):
            run = _run_of(trial)
            if not discarded(trial) and "redundant" not in trial.user_attrs and (
                    run not in latest or latest[run].number < trial.number):
                latest[run] = trial
        for trial in latest.values():
            if trial.state == TrialState.FAIL and "error" not in trial.user_attrs:  # taken back, not raised
                leases.requeue(self.study, trial)

    def status(self) -> dict[str, int]:
        """Claims by state: ``waiting``, ``running``, ``complete``, ``failed`` (runs that raised and have not been
        queued again since: a failed claim that a later ``--resume`` re-queued no longer counts)."""
        counts = {"waiting": 0, "running": 0, "complete": 0, "failed": 0}
        failed, latest = [], {}
        discarded = self.discarded_claims()
        for trial in self.study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            if discarded(trial):
                continue
            run = _run_of(trial)
            if trial.state == TrialState.WAITING:
                counts["waiting"] += 1
            elif trial.state == TrialState.RUNNING:
                counts["running"] += 1
            elif trial.state == TrialState.COMPLETE:
                counts["complete"] += 1
            elif "error" in attrs:
                failed.append((trial.number, run))
                continue
            latest[run] = max(trial.number, latest.get(run, -1))
        counts["failed"] = sum(1 for number, run in failed if latest.get(run, -1) < number)
        return counts

    def done(self, claim: Claim, info: Mapping[str, Any]) -> None:
        best = info.get("best")
        best = -math.inf if best is None else best
        tid = leases.trial_id(self.study, claim.number)
        self.study._storage.set_trial_user_attr(tid, "info", dict(info))
        self.study.tell(claim.number, best)

    def give_back(self, claim: Claim) -> None:
        """Put a claim this process holds back in the queue, in its place (this worker is stopping)."""
        leases.give_back(self.study, self.study._storage.get_trial(leases.trial_id(self.study, claim.number)))

    def failed(self, claim: Claim, error: str) -> None:
        self._fail_held(claim.number, "error", error[-4000:])

    def _fail_held(self, number: int, reason: str, value: Any) -> None:
        """Fail claim ``number``, which this process holds, with ``value`` recorded under ``reason`` first."""
        self.study._storage.set_trial_user_attr(leases.trial_id(self.study, number), reason, value)
        self.study.tell(number, state=TrialState.FAIL)

    def infos(self) -> list[dict[str, Any]]:
        """The run summaries of the COMPLETE claims."""
        discarded = self.discarded_claims()
        return [t.user_attrs["info"] for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if "info" in t.user_attrs and not discarded(t)]

    @property
    def discarded(self) -> dict[str, int]:
        """``{searcher: last discarded claim number}``: that searcher's claims up to it count for nothing."""
        return dict(self.study.user_attrs.get("discarded", {}))

    def discarded_claims(self) -> Callable[[optuna.trial.FrozenTrial], bool]:
        """Whether a claim was discarded (the study's attribute read once, not once per claim)."""
        last = self.discarded
        return lambda trial: trial.number <= last.get(trial.user_attrs.get("searcher"), -1)

    def discard(self, searchers: Sequence[str]) -> None:
        """Forget every claim of ``searchers`` so far (``runs.compare --rerun``): the next submission queues their
        runs again. ``StoreError`` while one of them is running (a worker holds it)."""
        trials = self.study.get_trials(deepcopy=False)
        discarded = self.discarded_claims()
        busy = sorted({t.user_attrs.get("searcher") for t in trials if t.state == TrialState.RUNNING
                       and t.user_attrs.get("searcher") in searchers and not discarded(t)})
        if busy:
            raise StoreError(f"cannot re-run {', '.join(busy)}: a worker is running one of its runs; wait for it, "
                             "or stop the workers first")
        last = max((t.number for t in trials), default=-1)
        self.study.set_user_attr("discarded", self.discarded | {searcher: last for searcher in searchers})


def _run_of(trial: optuna.trial.FrozenTrial) -> tuple:
    """The run a claim is for: ``(instance, searcher, seed, lane)``."""
    attrs = trial.user_attrs
    return attrs.get("instance"), attrs.get("searcher"), attrs.get("seed"), attrs.get("lane")


def _interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` was caused by a ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM under :func:`interrupt_on_sigterm`)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def interrupt_on_sigterm() -> None:
    """Make SIGTERM (``kill PID``) stop this process as Ctrl-C does, by ``KeyboardInterrupt``: every finished trial
    is stored, and the claim in progress goes back to the queue (:meth:`ExperimentQueue.give_back`). Without it SIGTERM
    ends Python at once without unwinding (``runs.compare --jobs N`` then cannot stop its worker processes); a
    job started in the background by a non-interactive shell also ignores SIGINT, so SIGTERM is its way to stop."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)


def refuse_sqlite(storage: str) -> None:
    if storage.startswith("sqlite"):
        raise StoreError("SQLite cannot arbitrate run claims between processes: use journal:FILE (one machine) "
                         "or postgresql://... (several machines) for workers")


def work(storage: str, experiment: str, out: Path, progress: Any = None, max_runs: int | None = None,
         poll_s: float = 1.0, execute: Callable[..., dict[str, Any]] | None = None) -> dict[str, Any]:
    """Claim and execute runs of ``experiment`` until none is left (or ``max_runs`` done); returns a summary.

    ``execute(spec, progress, holder=, check=)`` runs one claim (``runs.execution.execute``).
    """
    execute = execute or run_spec
    queue = ExperimentQueue(storage, experiment)
    config = queue.config
    if config is None:
        raise StoreError(f"no experiment {experiment!r} in {storage}: queue it first with runs.compare --jobs 0")
    holder = leases.Lease(queue.study._storage)
    infos: list[dict[str, Any]] = []
    errors: list[str] = []
    lost = 0
    try:
        while max_runs is None or len(infos) < max_runs:
            queue.reclaim()
            claim = queue.pop()
            if claim is None:
                if queue.status()["running"] == 0:
                    break
                time.sleep(poll_s)  # runs held elsewhere: one may come back if its worker dies
                continue
            holder.hold(queue.study, claim.number)
            spec = spec_from_config(config, storage, out / experiment, claim.instance, claim.searcher, claim.seed)
            try:
                info = execute(spec, progress, holder=holder,
                               check=lambda number=claim.number: holder.check(queue.study, number))
            except leases.LeaseLost:
                lost += 1
                continue
            except KeyboardInterrupt:  # stopping: the run resumes from its last stored trial under a new claim
                queue.give_back(claim)
                raise
            except Exception as exc:
                if _interrupted(exc):  # e.g. numba's SystemError around a KeyboardInterrupt in compiled code
                    queue.give_back(claim)
                    raise KeyboardInterrupt from exc
                error = f"{claim.instance} {claim.searcher} seed {claim.seed}: {traceback.format_exc()}"
                try:
                    queue.failed(claim, error)
                except UpdateFinishedTrialError:  # taken back before it raised (a frozen worker whose database
                    lost += 1  # session ended): the replacement claim redoes the run, this error is not its
                    continue
                errors.append(error)
                continue
            finally:
                holder.release(queue.study, claim.number)
            info["lane"] = claim.lane
            try:
                queue.done(claim, info)
            except UpdateFinishedTrialError:  # taken back while we finished: the replacement claim redoes nothing
                lost += 1
                continue
            infos.append(info)
    finally:
        holder.close()
    return {"runs": infos, "errors": errors, "lost": lost}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.worker", description=__doc__.split("\n\n")[0])
    parser.add_argument("--storage", required=True, help="postgresql://user@host/db or journal:FILE")
    parser.add_argument("--experiment", required=True, help="the experiment's --name in runs.compare")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "out",
                        help="parent folder of this machine's per-run TSVs")
    parser.add_argument("--max-runs", type=int, default=None, help="stop after this many runs")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between looks at the queue when idle")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        refuse_sqlite(args.storage)
        summary = work(args.storage, args.experiment, args.out, max_runs=args.max_runs, poll_s=args.poll)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: every finished trial is stored; the run in progress goes back to the queue",
              file=sys.stderr)
        return 130
    for info in summary["runs"]:
        print(f"{info['instance']} {info['searcher']} seed {info['seed']} lane {info['lane']}: {info['evaluations']} evaluations "
              f"(resumed from {info['resumed_from']}), best {info['best']}", file=sys.stderr)
    for error in summary["errors"]:
        print(f"run failed: {error}", file=sys.stderr)
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    interrupt_on_sigterm()  # the command line only: a caller of main() keeps its own signal handling
    sys.exit(main())
