"""The trial store: an Optuna study (RDB or journal storage) plus a TSV, holding the same rows.

* ``sqlite:///path.db`` (the zero-setup default), any SQLAlchemy URL such as
  ``postgresql://user@host/db`` (several machines), or ``journal:path.log``
  (Optuna's ``JournalStorage`` with a file backend: several local processes).
* Each searcher run is one study named ``<experiment>/<searcher>/seed<seed>``; each
  real evaluation is one COMPLETE trial whose value is the score (``-inf`` kept
  as ``-inf``: Optuna completes it, samplers rank it worst) and whose user
  attribute ``record`` holds the full :class:`~env.records.TrialRecord`.
  Trials of searchers that are not Optuna samplers are added with the search
  space's distributions, so optuna-dashboard shows every searcher alike.
* One TSV per run (no concurrent writers on one file); the run drivers merge
  them into the experiment's ``trials.tsv``.
* A **shared** run (several workers evaluating in parallel within it, see
  ``env.leases``) holds one WAITING trial per unspent evaluation ("slots"); its
  records are numbered in completion order when loaded, nobody fails its
  RUNNING trials on opening (they are other workers' evaluations in flight), and
  its TSV is rewritten from the study by whoever reports.
* Write order: study first (the source of truth), then the TSV row (flushed and
  fsynced). A worker checks its lease before each write, but one frozen between
  that check and the write can still land the write after its run was taken
  back and redone: only the first completed record of a configuration counts. On reopening, TSV rows missing after a crash are re-appended, and a
  TSV or study that does not belong to this experiment is an error, never
  overwritten.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from env import faults, leases
from env.records import TSV_FIXED, TrialRecord, params_key
from strategy.space import Axis, SearchSpace

optuna.logging.set_verbosity(optuna.logging.WARNING)
# RDB storages have heartbeats enabled for env.leases, which records them itself (Optuna expects
# Study.optimize to, and warns on every ask otherwise)
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


class StoreError(RuntimeError):
    """The storage or TSV is corrupted or belongs to another experiment."""


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """This process's Optuna storage for ``url`` (one object per URL).

    ``journal:PATH`` -> Optuna's file journal (several processes on one machine);
    anything else is an SQLAlchemy URL (``sqlite:///file.db``, ``postgresql://user@host/db``;
    ``postgres://`` is accepted too) opened as an ``RDBStorage`` with heartbeats
    enabled, so that the work of a dead worker is taken back (``env.leases``).
    """
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    return _open_storage(url)


@lru_cache(maxsize=None)
def _open_storage(url: str) -> optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        # absolute: Optuna's journal lock is a symlink to this path, and it releases a lock left by a killed
        # process after 30 s by stat()-ing through the link, which a relative path with folders cannot do
        path = Path(url[len("journal:"):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine: dict[str, Any] = {}
    if url.startswith("postgresql"):
        # a worker frozen mid-transaction (a paused VM, a partitioned machine) must not hold its row locks
        # past the grace period: the server ends such a session, and the other workers can take its work back
        engine = {"pool_pre_ping": True, "connect_args": {
            "options": f"-c idle_in_transaction_session_timeout={leases.GRACE_S * 1000}"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return RDBStorage(url, engine_kwargs=engine, heartbeat_interval=leases.HEARTBEAT_S,
                          grace_period=leases.GRACE_S, heartbeat_stale_trial_callback=leases.requeue)


def distribution(axis: Axis) -> BaseDistribution:
    """The Optuna distribution of one search axis."""
    if axis.kind == "bool":
        return CategoricalDistribution([False, True])
    if axis.kind == "categorical":
        return CategoricalDistribution(list(axis.choices))
    if axis.kind == "int":
        return IntDistribution(int(axis.low), int(axis.high), log=axis.log)
    return FloatDistribution(float(axis.low), float(axis.high), log=axis.log)


def distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    return {axis.name: distribution(axis) for axis in space.axes}


def study_name(experiment: str, searcher: str, seed: int) -> str:
    return f"{experiment}/{searcher}/seed{seed}"


class TrialStore:
    """Persistent history of one searcher run (one study + one TSV)."""

    def __init__(self, storage: str, experiment: str, searcher: str, seed: int, space: SearchSpace,
                 tsv_path: Path | str | None = None, identity: Mapping[str, Any] | None = None,
                 shared: bool = False, lease: Callable[[], None] | None = None) -> None:
        """``shared``: several workers evaluate in this run at once (see the module docstring).
        ``lease``: called before every write; raises ``env.leases.LeaseLost`` once this
        worker's claim on the run was taken back, so a worker thought dead never writes."""
        self.space = space
        self.tsv_path = Path(tsv_path) if tsv_path is not None else None
        self.distributions = distributions(space)
        self.shared = shared
        self.lease = lease
        self.identity = {"space": space.name, "axes": space.names, **(identity or {})}
        if shared:
            self.identity["shared"] = True
        try:
            self.study = optuna.create_study(storage=open_storage(storage), direction="maximize",
                                             study_name=study_name(experiment, searcher, seed), load_if_exists=True)
        except Exception as exc:  # sqlalchemy/journal errors on a corrupted or non-Optuna file
            raise StoreError(f"cannot open Optuna storage {storage!r}: {exc}") from exc
        self._check_identity()
        if not shared:
            self._fail_interrupted()
        self._records = self._load_records()
        self._sync_tsv()

    # ------------------------------------------------------------------ opening
    def _check_identity(self) -> None:
        stored = self.study.user_attrs.get("gemsearch")
        if stored is None:
            if self.study.trials:
                raise StoreError(f"study {self.study.study_name!r} has trials not written by gemsearch; refusing to mix")
            self.study.set_user_attr("gemsearch", self.identity)
        elif stored != self.identity:
            raise StoreError(
                f"study {self.study.study_name!r} belongs to another experiment set-up "
                f"(stored {stored}, now {self.identity}); use another experiment name"
            )

    def _fail_interrupted(self) -> None:
        """Trials left RUNNING by a killed process never got a score: mark them FAIL (they cost no budget)."""
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            self.study.tell(trial.number, state=TrialState.FAIL)

    def _counted(self, trials: Sequence[FrozenTrial]) -> list[TrialRecord]:
        """The evaluations that count among ``trials``: completed, not a free duplicate, and the first completed
        record of its configuration (a later one can only be the write of a worker frozen between its lease check
        and its write, landing after its run was taken back and redone), in completion order."""
        complete = []
        for trial in trials:
            if trial.state != TrialState.COMPLETE or "duplicate_of" in trial.user_attrs:
                continue
            if "record" not in trial.user_attrs:
                raise StoreError(f"trial {trial.number} of {self.study.study_name!r} has no gemsearch record")
            complete.append(trial)
        complete.sort(key=lambda t: (t.datetime_complete, t.number))
        records, seen = [], set()
        for trial in complete:
            record = TrialRecord.from_json(trial.user_attrs["record"])
            key = params_key(record.params)
            if key not in seen:
                seen.add(key)
                records.append(record)
        return records

    def _load_records(self) -> list[TrialRecord]:
        records = self._counted(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
        if self.shared:  # workers' own counts overlap: number the evaluations in the order they completed
            records = [dataclasses.replace(record, eval_index=k) for k, record in enumerate(records)]
        records.sort(key=lambda r: r.eval_index)
        if [r.eval_index for r in records] != list(range(len(records))):
            raise StoreError(f"study {self.study.study_name!r} has duplicate or missing evaluation indices")
        return records

    def _read_tsv(self) -> list[TrialRecord]:
        if self.tsv_path is None or not self.tsv_path.exists():
            return []
        try:
            with self.tsv_path.open(newline="") as handle:
                rows = list(csv.DictReader(handle, delimiter="\t"))
            return [TrialRecord.from_row(row) for row in rows]
        except (KeyError, ValueError, TypeError) as exc:
            raise StoreError(f"{self.tsv_path}: not a gemsearch trials TSV ({exc})") from exc

    def _sync_tsv(self) -> None:
        if self.shared and self.tsv_path is not None and self.tsv_path.exists():
            self.tsv_path.unlink()  # a report of a shared run: its rows are rewritten from the study
        mine = self._read_tsv()
        for written, stored in zip(mine, self._records):
            if written.eval_index != stored.eval_index or written.params != stored.params:
                raise StoreError(f"{self.tsv_path}: rows disagree with the Optuna study {self.study.study_name!r}")
        if len(mine) > len(self._records):
            raise StoreError(f"{self.tsv_path}: has rows the Optuna study {self.study.study_name!r} lacks")
        for record in self._records[len(mine):]:
            self._append_tsv(record)

    # ------------------------------------------------------------------ writing
    def _append_tsv(self, record: TrialRecord) -> None:
        if self.tsv_path is None:
            return
        self.tsv_path.parent.mkdir(parents=True, exist_ok=True)
        row = record.to_row()
        header = list(TSV_FIXED) + [k for k in row if k not in TSV_FIXED]
        exists = self.tsv_path.exists() and self.tsv_path.stat().st_size > 0
        if exists:
            with self.tsv_path.open(newline="") as handle:
                header = next(csv.reader(handle, delimiter="\t"))
            missing = set(row) - set(header)
            if missing:
                raise StoreError(f"{self.tsv_path}: header lacks columns {sorted(missing)} (another space?)")
        with self.tsv_path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header, delimiter="\t", restval="")
            if not exists:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
            os.fsync(handle.fileno())

    def append(self, record: TrialRecord, trial: optuna.trial.Trial | None = None) -> None:
        """Persist one record: tell the running Optuna ``trial`` or add a finished trial; then the TSV row."""
        if self.lease is not None:
            self.lease()
        attrs = {"record": record.to_json()}
        if trial is not None:
            for key, value in attrs.items():
                trial.set_user_attr(key, value)
            self.study.tell(trial, record.score)
        else:
            params = {k: v for k, v in record.params.items() if k in self.distributions}
            frozen = optuna.trial.create_trial(params=params, distributions={k: self.distributions[k] for k in params},
                                               value=record.score, user_attrs=attrs)
            self.study.add_trial(frozen)
        faults.point("study-written")
        self._records.append(record)
        self._append_tsv(record)

    def tell_duplicate(self, trial: optuna.trial.Trial, record: TrialRecord) -> None:
        """Finish an Optuna-sampler trial that re-proposed an evaluated configuration (free, not a record)."""
        trial.set_user_attr("duplicate_of", record.eval_index)
        self.study.tell(trial, record.score)

    @property
    def records(self) -> list[TrialRecord]:
        return list(self._records)

    def refresh(self) -> list[TrialRecord]:
        """Reload the records from the study (a shared run: the other workers' evaluations too)."""
        self._records = self._load_records()
        return self.records

    # ------------------------------------------------------------------ evaluation slots (shared runs)
    def slots(self, before: int | None = None) -> dict[str, int]:
        """Counts of this run's evaluation slots, ``waiting`` and ``running`` (in flight; with ``before``, only the
        slots numbered below it), and the ``spent`` evaluations, all from one read of the study."""
        trials = self.study.get_trials(deepcopy=False)
        live = [t for t in trials if "slot" in t.user_attrs and (before is None or t.number < before)]
        return {"waiting": sum(t.state == TrialState.WAITING for t in live),
                "running": sum(t.state == TrialState.RUNNING for t in live),
                "spent": len(self._counted(trials))}

    @property
    def budget(self) -> int | None:
        """The budget the run's slots were last queued for (:meth:`ensure_slots`); None before."""
        budget = self.study.user_attrs.get("budget")
        return None if budget is None else int(budget)

    def ensure_slots(self, budget: int) -> int:
        """Queue slots until spent + waiting + running slots equal ``budget``; returns how many. Called by the
        submitter, and by a lane that finds the run drained (a slot lost with its rescuer: ``policies.base.run_lane``)."""
        if self.budget != budget:
            self.study.set_user_attr("budget", int(budget))
        counts = self.slots()
        missing = budget - counts["spent"] - counts["waiting"] - counts["running"]
        for _ in range(max(0, missing)):
            leases.enqueue(self.study, {"slot": True})
        return max(0, missing)
