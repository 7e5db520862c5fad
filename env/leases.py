"""Work items shared through an Optuna storage: claimed atomically, kept alive, taken back when a worker dies.

Two kinds of work are queued as WAITING Optuna trials, marked by a user attribute:

* a **run claim** (``searcher``, ``seed``, ``lane``) in the experiment's queue study
  ``<experiment>/_runs``: whoever moves it to RUNNING executes that searcher x seed run;
* an **evaluation slot** (``slot``) in a run's own study, for the searchers that
  evaluate in parallel within one run: each slot is one real evaluation of the budget.

Claiming is Optuna's own atomic WAITING -> RUNNING transition
(``storage.set_trial_state_values`` returns False to all but one caller; PostgreSQL
serialises it with ``SELECT ... FOR UPDATE``, the journal by its file lock). The
holder records its ``owner`` (host, pid) on the trial and, on RDB storages, a
heartbeat every ``HEARTBEAT_S`` seconds (Optuna's ``record_heartbeat``: database
server time, immune to clock skew between machines).

A held trial is **stale** when its owner is a dead process on this host (seen
at once), or when its heartbeat is older than ``GRACE_S`` seconds (Optuna's
``fail_stale_trials``, any host), or when it has no owner ``GRACE_S`` seconds after
it started (a worker killed between claiming and recording itself). Whoever fails
a stale trial (again an atomic transition: exactly one caller succeeds) enqueues
one replacement with the same attributes: no work is lost and none is done twice.
Failing and queueing are two writes; a process killed between them leaves a
failed item with no replacement: the run queue (``runs.worker``) finds such a
run claim and queues it again, and a lane of a shared run that finds it drained
below its budget queues the missing slots again (``policies.base.run_lane``).
A worker that was merely slow and finds its trial failed stops that work
(:class:`LeaseLost`): its replacement is someone else's now.
"""

from __future__ import annotations

import datetime
import os
import socket
import threading
import warnings
from typing import Any, Callable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat, is_heartbeat_enabled  # Optuna exports no public alias
from optuna.trial import FrozenTrial, TrialState

from env import faults

HEARTBEAT_S = int(os.environ.get("GEMSEARCH_HEARTBEAT_S", "10"))
"""Seconds between heartbeats of a held trial (RDB storages)."""
GRACE_S = int(os.environ.get("GEMSEARCH_GRACE_S", "60"))
"""Seconds without a heartbeat after which another worker takes a trial back."""
QUEUED_ATTRS = ("instance", "searcher", "seed", "lane", "budget", "slot")
"""The user attributes that describe a work item (copied to its replacement)."""


class LeaseLost(RuntimeError):
    """This worker's claim was taken back (it looked dead); the work belongs to its replacement now."""


def owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    """Whether process ``pid`` on this host is alive; a zombie (dead, not yet reaped by its parent) is not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        pass
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):  # no /proc (not Linux): trust kill(0)
        return True
    return state not in ("Z", "X")


def study_id(study: optuna.Study) -> int:
    return study._storage.get_study_id_from_name(study.study_name)


def trial_id(study: optuna.Study, number: int) -> int:
    return study._storage.get_trial_id_from_study_id_trial_number(study_id(study), number)


def enqueue(study: optuna.Study, attrs: dict[str, Any]) -> None:
    """Queue one work item (a WAITING trial with no fixed parameters and ``attrs`` as user attributes)."""
    study.enqueue_trial({}, user_attrs=attrs)


def requeue(study: optuna.Study, trial: FrozenTrial) -> None:
    """Queue the replacement of a failed stale work item (Optuna's stale-trial callback)."""
    attrs = {k: v for k, v in trial.user_attrs.items() if k in QUEUED_ATTRS}
    if attrs:
        enqueue(study, {**attrs, "replaces": trial.number})


def give_back(study: optuna.Study, trial: FrozenTrial) -> None:
    """Return a work item this process holds because it is stopping (Ctrl-C, ``kill PID``): failed, with one
    replacement queued. A claim left RUNNING is taken back only when its owner is seen dead on this host or its
    heartbeat stops; a journal file has no heartbeats, and one restored on another machine (``runs.archive``) could
    never tell its owner is gone."""
    if _fail(study, trial):
        faults.point("taken-back")
        requeue(study, trial)


def _fail(study: optuna.Study, trial: FrozenTrial) -> bool:
    """Fail a RUNNING trial; True for the one caller whose transition took effect."""
    try:
        return bool(study._storage.set_trial_state_values(trial_id(study, trial.number), TrialState.FAIL))
    except UpdateFinishedTrialError:  # someone else finished or failed it first
        return False


def is_stale(trial: FrozenTrial, now: datetime.datetime | None = None) -> bool:
    """A RUNNING work item whose holder is a dead local process, or that never recorded an owner in time."""
    held_by = trial.user_attrs.get("owner")
    if held_by is None:  # killed between claiming and recording itself
        now = now or datetime.datetime.now()
        return trial.datetime_start is not None and (now - trial.datetime_start).total_seconds() > GRACE_S
    return held_by.get("host") == socket.gethostname() and not _alive(int(held_by.get("pid", -1)))


def reclaim(study: optuna.Study) -> None:
    """Fail the stale work items of ``study`` and queue their replacements."""
    if beats(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # calls requeue() for the ones it failed
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _queued(trial) and is_stale(trial) and _fail(study, trial):
            faults.point("taken-back")
            requeue(study, trial)


def beats(storage: BaseStorage) -> bool:
    """Whether ``storage`` records heartbeats (an RDB storage opened by ``env.store.open_storage``;
    Optuna hands studies a caching wrapper around it, so no ``isinstance(.., RDBStorage)`` here)."""
    return isinstance(storage, BaseHeartbeat) and is_heartbeat_enabled(storage)


def _queued(trial: FrozenTrial) -> bool:
    return any(k in trial.user_attrs for k in QUEUED_ATTRS)


def pop(study: optuna.Study, key: Callable[[FrozenTrial], Any] | None = None) -> FrozenTrial | None:
    """Atomically claim one WAITING work item of ``study`` (moved to RUNNING); None when none is waiting.

    Items are tried in ``key`` order (default: the order they were queued)."""
    storage = study._storage
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    for trial in sorted(waiting, key=key) if key is not None else waiting:
        try:
            if storage.set_trial_state_values(trial_id(study, trial.number), TrialState.RUNNING):
                return trial
        except UpdateFinishedTrialError:
            continue
    return None


class Lease:
    """Keeps the work items this process holds alive: owner attribute, then a heartbeat thread (RDB storages).

    ``check(study, number)`` raises :class:`LeaseLost` once another worker has
    taken the item back (it is no longer RUNNING).
    """

    def __init__(self, storage: BaseStorage, interval: float = HEARTBEAT_S) -> None:
        self.storage = storage
        self.interval = interval
        self._held: set[int] = set()  # trial ids
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, study: optuna.Study, number: int) -> None:
        tid = trial_id(study, number)
        self.storage.set_trial_user_attr(tid, "owner", owner())
        self._beat(tid)
        with self._lock:
            self._held.add(tid)
        if self._thread is None and beats(self.storage):
            self._thread = threading.Thread(target=self._run, name="gemsearch-heartbeat", daemon=True)
            self._thread.start()

    def release(self, study: optuna.Study, number: int) -> None:
        with self._lock:
            self._held.discard(trial_id(study, number))

    def check(self, study: optuna.Study, number: int) -> None:
        if self.storage.get_trial(trial_id(study, number)).state != TrialState.RUNNING:
            raise LeaseLost(f"trial {number} of {study.study_name!r} was taken back by another worker")

    def _beat(self, tid: int) -> None:
        if beats(self.storage):
            self.storage.record_heartbeat(tid)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                held = list(self._held)
            for tid in held:
                try:
                    self._beat(tid)
                except Exception:  # a transient database error: the next beat retries
                    pass

    def close(self) -> None:
        self._stop.set()
