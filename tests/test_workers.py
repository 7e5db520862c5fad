"""Workers sharing one experiment on a real PostgreSQL server; kill -9 at random points, then resume.

The uninterrupted single-process run (SQLite, ``runs.compare --jobs 1``) is the
reference: for the deterministic searchers (every sequential run: phased, random,
tpe, gp) the distributed and the killed-and-resumed experiments must hold exactly
its trials. Shared runs (``--lanes``) are not replayable; for them the budget must
hold exactly and nothing may be lost or duplicated.
"""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from env.store import open_storage
from runs.compare import main
from runs.worker import ExperimentQueue

ROOT = Path(__file__).resolve().parents[1]
SETUP = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "phased", "random", "tpe", "gp",
         "--seeds", "2", "--budget", "16"]
SEARCHERS, SEEDS, BUDGET = ("phased", "random", "tpe", "gp"), (0, 1), 16


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _trials(folder: Path) -> list[tuple]:
    with (folder / "trials.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return sorted((r["searcher"], int(r["seed"]), int(r["eval_index"]), r["score"],
                   tuple(sorted((k, v) for k, v in r.items() if k.startswith("p.")))) for r in rows)


def _summaries(folder: Path) -> list[dict]:
    summary = json.loads((folder / "summary.json").read_text())
    return [{k: v for k, v in s.items() if k != "wall_s"} for s in summary["instances"]["synthetic-small"]], \
        summary["holdout"]


def _workers(url: str, name: str, out: Path, count: int, kill_at: str | None = None) -> list[subprocess.Popen]:
    env = {**os.environ, "GEMSEARCH_KILL_AT": kill_at} if kill_at else dict(os.environ)
    env.pop("GEMSEARCH_KILL_AT", None) if not kill_at else None
    return [subprocess.Popen([sys.executable, "-m", "runs.worker", "--storage", url, "--experiment", name,
                              "--out", str(out / f"worker{i}"), "--poll", "0.2"],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for i in range(count)]


def _check_studies(url: str, name: str, runs: list[tuple[str, int]], budget: int, late: int = 0) -> None:
    """Each run holds exactly ``budget`` real evaluations, numbered 0..budget-1, nothing queued; at most ``late``
    extra trials, each a later copy of a counted configuration (a frozen worker's write landing after its run
    was redone), which the store does not count."""
    queue = optuna.load_study(study_name=f"{name}/_runs", storage=url)
    errors = [t.user_attrs["error"] for t in queue.get_trials(states=(TrialState.FAIL,)) if "error" in t.user_attrs]
    assert not errors, "a run raised:\n" + "\n".join(errors)
    for searcher, seed in runs:
        study = optuna.load_study(study_name=f"{name}/synthetic-small/{searcher}/seed{seed}", storage=url)
        trials = sorted((t for t in study.get_trials(states=(TrialState.COMPLETE,)) if "duplicate_of" not in t.user_attrs),
                        key=lambda t: (t.datetime_complete, t.number))
        records = [json.loads(t.user_attrs["record"]) if isinstance(t.user_attrs["record"], str) else t.user_attrs["record"]
                   for t in trials]
        params = [json.dumps(r["params"], sort_keys=True) for r in records]
        assert len(set(params)) == budget, (searcher, seed, len(set(params)))
        assert len(records) - budget <= late, f"{searcher} seed {seed} evaluated a configuration twice"
        assert not study.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))
    assert not queue.get_trials(states=(TrialState.WAITING, TrialState.RUNNING))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The reference: the experiment run uninterrupted in one process on SQLite."""
    out = tmp_path_factory.mktemp("single")
    assert main(SETUP + ["--out", str(out), "--name", "ref"]) == 0
    return out / "ref"


@pytest.mark.slow
def test_workers_on_postgres_share_the_runs_and_report_what_one_process_does(single, postgres_url, tmp_path):
    name = _name("shared")
    assert main(SETUP + ["--storage", postgres_url, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    workers = _workers(postgres_url, name, tmp_path, 3)
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    done = Counter(line.split(" seed")[0] for out in outputs for line in out.splitlines() if " evaluations (" in line)
    assert sum(done.values()) == len(SEARCHERS) * len(SEEDS) and sum(1 for o in outputs if "evaluations (" in o) >= 2
    _check_studies(postgres_url, name, [(s, seed) for s in SEARCHERS for seed in SEEDS], BUDGET)
    # the report, on "another machine": a folder that never saw the experiment, set-up read from the storage
    report_out = tmp_path / "reporter"
    assert main(["--storage", postgres_url, "--name", name, "--resume", "--jobs", "0", "--out", str(report_out)]) == 0
    assert _trials(report_out / name) == _trials(single)
    assert _summaries(report_out / name) == _summaries(single)


@pytest.mark.slow
def test_lanes_evaluate_within_one_run_in_parallel_and_keep_the_budget_exact(postgres_url, tmp_path):
    name, budget = _name("lanes"), 12
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "tpe", "gp", "--seeds", "1",
             "--budget", str(budget), "--lanes", "3"]
    assert main(setup + ["--storage", postgres_url, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    workers = _workers(postgres_url, name, tmp_path, 3)
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0], outputs
    _check_studies(postgres_url, name, [("tpe", 0), ("gp", 0)], budget)
    for searcher in ("tpe", "gp"):
        study = optuna.load_study(study_name=f"{name}/synthetic-small/{searcher}/seed0", storage=postgres_url)
        owners = {t.user_attrs["owner"]["pid"] for t in study.get_trials(states=(TrialState.COMPLETE,))
                  if "record" in t.user_attrs}
        assert len(owners) >= 2, f"{searcher}: the evaluations of one run were not shared between workers"
    assert main(["--storage", postgres_url, "--name", name, "--resume", "--jobs", "0", "--out", str(tmp_path)]) == 0
    indices = sorted(t[2] for t in _trials(tmp_path / name) if t[0] == "tpe")
    assert indices == list(range(budget))


@pytest.mark.slow
def test_kill_minus_nine_at_random_points_then_resume_loses_and_duplicates_nothing(single, postgres_url, tmp_path):
    """Workers die (SIGKILL) mid-evaluation, between the Optuna write and the TSV row, and at random times."""
    name = _name("killed")
    rng = random.Random(8)
    assert main(SETUP + ["--storage", postgres_url, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    kills = 0
    plans = ["evaluated:3", "study-written:5", None, "evaluated:9", "study-written:2", None]
    for plan in plans:
        workers = _workers(postgres_url, name, tmp_path, 2, kill_at=plan)
        if plan is None:  # a random moment: whatever the workers are doing then
            time.sleep(rng.uniform(3.0, 6.0))
            victim = rng.choice(workers)
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)
        outputs = []
        for w in workers:
            try:
                outputs.append(w.communicate(timeout=900)[0])
            except subprocess.TimeoutExpired:
                w.kill()
                raise
        assert all(w.returncode in (0, -signal.SIGKILL) for w in workers), (plan, outputs)  # no run may fail
        kills += sum(w.returncode == -signal.SIGKILL for w in workers)
    assert kills >= 5, f"only {kills} workers were killed: the experiment finished too early to test resuming"
    finish = _workers(postgres_url, name, tmp_path, 2)
    assert [w.communicate(timeout=900)[0] is not None and w.returncode for w in finish] == [0, 0]
    _check_studies(postgres_url, name, [(s, seed) for s in SEARCHERS for seed in SEEDS], BUDGET)
    assert main(["--storage", postgres_url, "--name", name, "--resume", "--jobs", "0", "--out", str(tmp_path)]) == 0
    assert _trials(tmp_path / name) == _trials(single)
    assert _summaries(tmp_path / name) == _summaries(single)
    print(f"\n{kills} workers killed with SIGKILL; the resumed experiment equals the uninterrupted one")


@pytest.mark.slow
def test_a_frozen_worker_loses_its_run_by_heartbeat_and_nothing_it_writes_after_counts(postgres_url, tmp_path):
    """A worker that stops beating (SIGSTOP: alive, silent, as a partitioned machine) has its run taken back
    after the grace period; when it wakes up its next lease check finds the claim gone and it drops the run.
    Frozen between its check and its write, it can land that one write late: a copy of a configuration the
    rescuer evaluated, which the store does not count (the records equal the uninterrupted run's)."""
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "random", "tpe", "--seeds", "1",
             "--budget", "40"]
    assert main(setup + ["--out", str(tmp_path / "single"), "--name", "ref"]) == 0
    name = _name("frozen")
    assert main(setup + ["--storage", postgres_url, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    fast = {"GEMSEARCH_HEARTBEAT_S": "1", "GEMSEARCH_GRACE_S": "4"}
    os.environ.update(fast)
    started: list[subprocess.Popen] = []
    try:
        started += _workers(postgres_url, name, tmp_path, 1)
        frozen = started[0]
        queue = optuna.load_study(study_name=f"{name}/_runs", storage=postgres_url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # wait until it is mid-run: a few evaluations stored
            held = queue.get_trials(states=(TrialState.RUNNING,))
            if held:
                run = held[0].user_attrs
                try:
                    study = optuna.load_study(study_name=f"{name}/synthetic-small/{run['searcher']}/seed0", storage=postgres_url)
                except KeyError:  # claimed, its study not created yet
                    continue
                if len(study.get_trials(states=(TrialState.COMPLETE,))) >= 3:
                    break
            time.sleep(0.1)
        frozen.send_signal(signal.SIGSTOP)
        [rescuer] = _workers(postgres_url, name, tmp_path, 1)
        started.append(rescuer)
        rescued = rescuer.communicate(timeout=900)[0]
        assert rescuer.returncode == 0, rescued
        frozen.send_signal(signal.SIGCONT)
        woken = frozen.communicate(timeout=120)[0]
        assert frozen.returncode == 0, woken
    finally:
        for key in fast:
            os.environ.pop(key, None)
        for process in started:  # never leave a stopped worker behind a failed test
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.kill()
    claims = queue.get_trials()
    taken_back = [t for t in claims if t.state == TrialState.FAIL]
    assert len(taken_back) == 1 and taken_back[0].user_attrs["owner"]["pid"] == frozen.pid
    assert any(t.user_attrs.get("replaces") == taken_back[0].number and t.state == TrialState.COMPLETE for t in claims)
    _check_studies(postgres_url, name, [("random", 0), ("tpe", 0)], 40, late=1)
    assert main(["--storage", postgres_url, "--name", name, "--resume", "--jobs", "0", "--out", str(tmp_path)]) == 0
    assert _trials(tmp_path / name) == _trials(tmp_path / "single" / "ref")


def test_a_run_that_raises_after_its_claim_was_taken_back_is_lost_not_a_crash(tmp_path):
    """A worker frozen past the grace period can wake into errors (PostgreSQL ended its session); by then the
    claim belongs to a rescuer, so the error is counted as a lost run and the worker goes on (it used to die
    with ``UpdateFinishedTrialError`` while marking the taken-back claim failed): here it takes the rescuer's
    replacement claim itself and finishes the run."""
    from env import leases
    from runs import execution, worker

    storage = f"journal:{tmp_path / 'q.journal'}"
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "random", "--seeds", "1",
             "--budget", "5", "--storage", storage, "--name", "taken", "--jobs", "0", "--out", str(tmp_path)]
    assert main(setup) == 0
    queue = worker.ExperimentQueue(storage, "taken")
    calls = []

    def taken_back_then_raises(spec, progress, holder=None, check=None):
        calls.append(spec.seed)
        if len(calls) > 1:
            return execution.execute(spec, progress, holder=holder, check=check)
        [claim] = queue.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        assert leases._fail(queue.study, claim)  # what a rescuer's reclaim does to a stale claim
        leases.requeue(queue.study, claim)
        raise ConnectionError("server closed the connection unexpectedly")

    summary = worker.work(storage, "taken", tmp_path, max_runs=1, poll_s=0.01, execute=taken_back_then_raises)
    assert (len(summary["runs"]), summary["errors"], summary["lost"]) == (1, [], 1)
    assert queue.status() == {"waiting": 0, "running": 0, "complete": 1, "failed": 0}


@pytest.mark.slow
def test_a_run_whose_rescuer_died_before_queueing_its_replacement_is_queued_again(tmp_path):
    """Taking a dead worker's claim back is two writes (fail it, queue a replacement). A rescuer killed between
    them (``taken-back``) used to leave the run with no claim: the next workers found nothing to do and exited
    0 with the run unfinished (seen once in CI in the kill -9 test above: ``gp`` seed 0 stopped at 7 of 16
    evaluations). Workers now queue such a run again, and the run ends with each evaluation once."""
    storage, name = f"journal:{tmp_path / 'q.journal'}", "orphan"
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "random", "--seeds", "2",
             "--budget", "4"]
    assert main([*setup, "--storage", storage, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    for kill_at in ("evaluated:2", "taken-back:1"):  # dies holding seed 0's claim; its rescuer dies in between
        [w] = _workers(storage, name, tmp_path, 1, kill_at=kill_at)
        output = w.communicate(timeout=300)[0]
        assert w.returncode == -signal.SIGKILL, output
    queue = ExperimentQueue(storage, name)
    taken = [t for t in queue.study.trials if t.state == TrialState.FAIL]
    assert len(taken) == 1 and not any(t.user_attrs.get("replaces") == taken[0].number for t in queue.study.trials)
    [w] = _workers(storage, name, tmp_path, 1)
    output = w.communicate(timeout=300)[0]
    assert w.returncode == 0, output
    assert queue.status() == {"waiting": 0, "running": 0, "complete": 2, "failed": 0}
    assert main(["--storage", storage, "--name", name, "--resume", "--jobs", "0", "--out", str(tmp_path / "report")]) == 0
    rows = _trials(tmp_path / "report" / name)
    assert sorted((r[1], r[2]) for r in rows) == [(seed, i) for seed in (0, 1) for i in range(4)]


@pytest.mark.parametrize("queued_by_hand", [0, 2])
@pytest.mark.slow
def test_a_shared_run_whose_slot_rescuer_died_before_queueing_its_replacement_still_spends_its_budget(
        tmp_path, queued_by_hand):
    """The same crash inside a shared run (``--lanes``): a worker dies holding an evaluation slot, the worker that
    takes the slot back dies between failing it and queueing its replacement. The run used to end one evaluation
    short; a lane that finds the run drained below its budget now tops it up (``policies.base.run_lane``).
    ``queued_by_hand=2``: the replacement plus one slot too many (as two lanes topping up at once would queue):
    the surplus slot is dropped, never evaluated."""
    from env import leases

    storage, name, budget = f"journal:{tmp_path / 'q.journal'}", "slot-orphan", 5
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "tpe", "--seeds", "1",
             "--budget", str(budget), "--lanes", "2"]
    assert main([*setup, "--storage", storage, "--name", name, "--jobs", "0", "--out", str(tmp_path)]) == 0
    # the first worker dies holding a slot; its rescuer takes back the lane claim (1), then the slot (2), and dies
    for kill_at in ("evaluated:2", "taken-back:2"):
        [w] = _workers(storage, name, tmp_path, 1, kill_at=kill_at)
        output = w.communicate(timeout=300)[0]
        assert w.returncode == -signal.SIGKILL, output
    study = optuna.load_study(study_name=f"{name}/synthetic-small/tpe/seed0", storage=open_storage(storage))
    orphans = [t for t in study.trials if t.state == TrialState.FAIL and "slot" in t.user_attrs
               and not any(o.user_attrs.get("replaces") == t.number for o in study.trials)]
    assert len(orphans) == 1, "the rescuer did not die between failing the slot and queueing its replacement"
    for _ in range(queued_by_hand):
        leases.enqueue(study, {"slot": True})
    workers = _workers(storage, name, tmp_path, 2)
    outputs = [w.communicate(timeout=300)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    assert main(["--storage", storage, "--name", name, "--resume", "--jobs", "0", "--out", str(tmp_path / "report")]) == 0
    rows = _trials(tmp_path / "report" / name)
    assert sorted(r[2] for r in rows) == list(range(budget))
    assert len({r[4] for r in rows}) == budget  # each configuration once
    surplus = [t for t in study.get_trials(states=(TrialState.FAIL,)) if t.user_attrs.get("surplus")]
    assert len(surplus) >= queued_by_hand - 1  # more when both lanes happened to top up the drained run


def test_a_run_queued_twice_runs_once_and_a_larger_budget_is_not_a_duplicate(tmp_path):
    """Two processes may queue the same taken-back run again at once: ``pop`` runs the earlier claim and drops the
    later one (FAIL, ``redundant``; not a failed run). A claim for a larger budget than a completed one runs."""
    from env import leases

    queue = ExperimentQueue(f"journal:{tmp_path / 'q.journal'}", "twice")
    queue.submit({"name": "twice", "budget": 5, "instances": []}, [("a", "random", 0, 1)])
    [first] = queue.study.trials
    leases.requeue(queue.study, first)  # a second claim of the same run while the first waits
    claim = queue.pop()
    assert claim.number == first.number and queue.pop() is None
    dropped = queue.study.trials[-1]
    assert dropped.state == TrialState.FAIL and dropped.user_attrs["redundant"] == first.number
    assert queue.status() == {"waiting": 0, "running": 1, "complete": 0, "failed": 0}
    queue.reclaim()  # a dropped duplicate is not a run to queue again
    assert queue.status()["waiting"] == 0
    queue.done(claim, {"best": 1.0})
    assert queue.submit({"name": "twice", "budget": 9, "instances": []}, [("a", "random", 0, 1)]) == 1
    assert queue.pop() is not None


def test_a_failed_run_that_resume_runs_again_no_longer_blocks_the_report(tmp_path):
    """A run that raised is FAIL in the queue; ``--resume`` queues it again, and once that run is done the experiment
    is complete: the report is written and the exit status is 0 (the old FAIL claim used to count for ever)."""
    from runs import worker

    storage = f"journal:{tmp_path / 'q.journal'}"
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "random", "--seeds", "1",
             "--budget", "4", "--storage", storage, "--name", "again", "--out", str(tmp_path)]
    assert main([*setup, "--jobs", "0"]) == 0

    def raises(spec, progress, holder=None, check=None):
        raise RuntimeError("a bad day")

    summary = worker.work(storage, "again", tmp_path, max_runs=1, poll_s=0.01, execute=raises)
    assert len(summary["errors"]) == 1
    queue = worker.ExperimentQueue(storage, "again")
    assert queue.status()["failed"] == 1
    assert main([*setup, "--jobs", "0", "--resume"]) == 0  # re-queued: waiting, not failed
    assert queue.status() == {"waiting": 1, "running": 0, "complete": 0, "failed": 0}
    assert main([*setup, "--jobs", "1", "--resume"]) == 0
    assert queue.status() == {"waiting": 0, "running": 0, "complete": 1, "failed": 0}
    assert (tmp_path / "again" / "report.md").exists()


@pytest.mark.slow
def test_rerun_discards_one_searchers_runs_and_runs_them_again(tmp_path):
    """``--resume --rerun S``: S's studies, TSVs and claims are discarded and re-run; the other searchers' are kept."""
    import optuna

    from runs import worker

    storage = f"journal:{tmp_path / 'q.journal'}"
    setup = ["--universe", "synthetic-small", "--space", "core", "--no-warm", "--searcher", "random", "phased",
             "--seeds", "1", "--budget", "4", "--storage", storage, "--name", "rerun", "--out", str(tmp_path)]
    assert main([*setup, "--jobs", "1"]) == 0
    folder = tmp_path / "rerun"
    [phased_tsv] = folder.glob("runs/*/phased-seed0.tsv")
    [random_tsv] = folder.glob("runs/*/random-seed0.tsv")
    kept, before = phased_tsv.read_text(), random_tsv.read_text()
    stamp = phased_tsv.stat().st_mtime_ns
    assert main([*setup, "--jobs", "0", "--resume", "--rerun", "random"]) == 0
    assert not random_tsv.exists() and phased_tsv.stat().st_mtime_ns == stamp and phased_tsv.read_text() == kept
    studies = {s.study_name for s in optuna.get_all_study_summaries(storage=worker.open_storage(storage))}
    assert not any("/random/" in name for name in studies) and any("/phased/" in name for name in studies)
    queue = worker.ExperimentQueue(storage, "rerun")
    assert queue.status() == {"waiting": 1, "running": 0, "complete": 1, "failed": 0}
    assert main([*setup, "--jobs", "1", "--resume"]) == 0
    assert _without_wall_time(random_tsv.read_text()) == _without_wall_time(before)  # the same seeded run again
    assert queue.status() == {"waiting": 0, "running": 0, "complete": 2, "failed": 0}
    assert sorted(info["searcher"] for info in queue.infos()) == ["phased", "random"]
    assert main([*setup, "--jobs", "0", "--rerun", "nobody", "--resume"]) == 2


def _without_wall_time(tsv: str) -> list[dict[str, str]]:
    return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(tsv.splitlines(), delimiter="\t")]


@pytest.mark.slow
def test_a_journal_lock_left_by_a_killed_process_is_released_after_optunas_grace_period(tmp_path):
    """A process killed while it holds a journal's lock leaves the lock (a symlink) behind. Optuna releases a lock
    whose target has not changed for 30 s, but it stats the target through the link, and the link of a relative
    journal path (``journal:runs/out/x.journal``) points relative to the wrong folder: every other process waited
    for ever (seen once when the full comparison was stopped). ``open_storage`` opens journals by absolute path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "out").mkdir()
    hold = ("import os, signal\nfrom env.store import open_storage\n"
            "open_storage('journal:out/q.journal')._backend._lock.acquire()\nos.kill(os.getpid(), signal.SIGKILL)")
    holder = subprocess.run([sys.executable, "-c", hold], cwd=tmp_path, env=env)
    assert holder.returncode == -signal.SIGKILL and (tmp_path / "out" / "q.journal.lock").is_symlink()
    write = ("import optuna\nfrom env.store import open_storage\n"
             "optuna.create_study(storage=open_storage('journal:out/q.journal'), study_name='after')")
    waiter = subprocess.run([sys.executable, "-c", write], cwd=tmp_path, env=env, timeout=120,
                            capture_output=True, text=True)
    assert waiter.returncode == 0, waiter.stderr[-2000:]
