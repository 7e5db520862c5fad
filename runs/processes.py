"""The local worker-process pool of ``runs.compare``: ``--jobs`` processes running ``runs.worker.work`` on one
experiment's queue, with one progress bar over all real evaluations, stopped cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import fcntl
import math
import multiprocessing
import queue as queue_module
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from env import StoreError
from runs import worker


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
def only_process(storage: str):
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
