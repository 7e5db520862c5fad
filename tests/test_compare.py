"""``python -m runs.compare``: arguments, the experiment folder, resume, the report (tiny budgets)."""

from __future__ import annotations

import csv
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import optuna
import pytest

from runs import analysis, worker
from runs.compare import main
from env.records import TrialRecord


TINY = ["--universe", "synthetic-small", "--space", "core", "--searcher", "random", "--seeds", "2", "--no-warm"]


def _rows(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.mark.parametrize("argv, message", [
    (["--searcher", "sgd"], "unknown searcher"),
    (["--budget", "0"], "--budget must be at least 1"),
    (["--seed-list", "1", "1"], "distinct"),
    (["--jobs", "-1"], "--jobs"),
    (["--lanes", "0"], "--lanes"),
    (["--name", "a/b"], "--name"),
])
def test_bad_arguments_exit_2_with_a_clear_message(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path)])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_unknown_universe_is_a_clear_error(tmp_path, capsys):
    assert main(["--universe", "nowhere.csv", "--searcher", "random", "--out", str(tmp_path)]) == 2
    assert "neither a named universe" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_bad_suite_and_instances_are_clear_errors(tmp_path, capsys):
    assert main(["--suite", "no-such-suite", "--searcher", "random", "--out", str(tmp_path)]) == 2
    assert "neither a shipped suite" in capsys.readouterr().err
    assert main(["--suite", "synthetic-v1", "--instances", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown instance 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--suite", "synthetic-v1", "--universe", "synthetic", "--out", str(tmp_path)])
    assert not list(tmp_path.iterdir())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A finished 2-seed random comparison (budget 3) and what it printed."""
    out = tmp_path_factory.mktemp("compare")
    return out, main(TINY + ["--budget", "3", "--out", str(out), "--name", "tiny"])


def test_run_report_and_resume(tiny, capsys):
    tmp_path, code = tiny
    assert code == 0
    out = ["--out", str(tmp_path), "--name", "tiny"]
    folder = tmp_path / "tiny"
    printed = (folder / "report.md").read_text()
    assert "| random |" in printed and "`optuna-dashboard sqlite:///" in printed
    for name in ("config.json", "trials.tsv", "report.md", "summary.json", "best_so_far-synthetic-small.png",
                 "holdout.json", "normalised_vs_budget.png"):
        assert (folder / name).exists(), name
    assert len(_rows(folder / "trials.tsv")) == 6

    # the same name again without --resume refuses and loses nothing
    assert main(TINY + ["--budget", "3"] + out) == 2
    assert "--resume" in capsys.readouterr().err
    assert len(_rows(folder / "trials.tsv")) == 6

    # resume with a larger budget continues both runs without repeating a trial
    assert main(TINY + ["--budget", "5", "--resume"] + out) == 0
    rows = _rows(folder / "trials.tsv")
    assert len(rows) == 10
    for seed in ("0", "1"):
        mine = [r for r in rows if r["seed"] == seed]
        assert sorted(int(r["eval_index"]) for r in mine) == list(range(5))
        assert len({tuple(v for k, v in r.items() if k.startswith("p.")) for r in mine}) == 5

    # the Optuna study holds the same trials as the TSV, rejections as -inf
    storage = json.loads((folder / "config.json").read_text())["storage"]
    for seed in (0, 1):
        study = optuna.load_study(study_name=f"tiny/synthetic-small/random/seed{seed}", storage=storage)
        values = sorted(t.value for t in study.trials)
        tsv = sorted(float(r["score"]) for r in rows if r["seed"] == str(seed))
        assert values == tsv

    report = (folder / "report.md").read_text()
    assert "(baseline)" not in report and "No baseline row" in report and "holdout" in report.lower()
    assert "the data cannot tell" in report  # one instance: no claim about searchers
    from runs.execution import machine
    assert f"Machines (run parts done there): {machine()} (4)" in report  # each run: its first part, then resumed
    summary = json.loads((folder / "summary.json").read_text(), parse_constant=_refuse)  # strict JSON
    (random_summary,) = summary["instances"]["synthetic-small"]
    assert random_summary["searcher"] == "random" and len(random_summary["final"]) == 2
    assert set(summary["aggregate"]) == {"random"} and {"iqm", "iqm_ci", "mean_rank"} <= set(summary["aggregate"]["random"])
    # holdout scores exist: synthetic-small runs to 2027, past the default split's 2025 boundary
    winners = summary["holdout"]["synthetic-small"]["winners"]["random"]
    assert all(v["score"] is not None for v in winners.values())


def _refuse(constant: str):
    raise ValueError(f"summary.json holds {constant}: not strict JSON")


def _record(i: int, score: float) -> TrialRecord:
    return TrialRecord(eval_index=i, searcher="x", seed=0, params={"a": i}, score=score)


def test_best_so_far_auc_and_quantiles_per_instance():
    runs = {
        "random": {0: [_record(0, float("-inf")), _record(1, 1.0), _record(2, 0.5)],
                   1: [_record(0, 0.0), _record(1, 0.2), _record(2, 0.4)]},
        "smart": {0: [_record(0, 2.0), _record(1, 1.0), _record(2, 3.0)],
                  1: [_record(0, 1.0), _record(1, 3.0), _record(2, 0.0)]},
    }
    curve = analysis.best_so_far(runs["random"][0], 4)
    assert list(curve) == [float("-inf"), 1.0, 1.0, 1.0]
    summaries = {s.searcher: s for s in analysis.summarise(runs, budget=3, checkpoints=(2,))}
    assert summaries["smart"].final == [3.0, 3.0] and summaries["random"].best_at[2] == (0.6, 0.4, 0.8)
    assert summaries["smart"].auc > summaries["random"].auc
    assert summaries["random"].rejected_fraction == pytest.approx(1 / 6)
    assert analysis.quantiles([float("-inf"), float("-inf"), 1.0])[0] == float("-inf")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_serves_every_trial_of_the_cli_run(tiny):
    tmp_path, code = tiny
    assert code == 0
    folder = tmp_path / "tiny"
    storage = json.loads((folder / "config.json").read_text())["storage"]
    port = _free_port()
    dashboard = Path(sys.executable).with_name("optuna-dashboard")
    server = subprocess.Popen([str(dashboard), storage, "--host", "127.0.0.1", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                studies = _get(f"{base}/api/studies")["study_summaries"]
                break
            except OSError:
                time.sleep(0.2)
        else:
            pytest.fail("optuna-dashboard did not answer within 20 s")
        by_name = {s["study_name"]: s["study_id"] for s in studies}
        rows = _rows(folder / "trials.tsv")
        for seed in ("0", "1"):
            detail = _get(f"{base}/api/studies/{by_name[f'tiny/synthetic-small/random/seed{seed}']}")
            served = sorted(float(t["values"][0]) for t in detail["trials"])
            stored = sorted(float(r["score"]) for r in rows if r["seed"] == seed)
            assert served == stored and len(served) == len(stored) > 0
        served_all = [t["values"][0] for s in by_name.values() for t in _get(f"{base}/api/studies/{s}")["trials"]]
        assert "-inf" in served_all, "the tiny run is expected to hold a hard rejection (random seeds 0/1)"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_parallel_workers_on_one_journal_storage_match_a_single_process_run(tiny, tmp_path):
    single_out, code = tiny
    assert code == 0
    assert main(TINY + ["--budget", "3", "--jobs", "2", "--out", str(tmp_path), "--name", "tiny"]) == 0
    config = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert config["storage"].startswith("journal:")
    parallel = _rows(tmp_path / "tiny" / "trials.tsv")
    single = _rows(single_out / "tiny" / "trials.tsv")

    def trials(rows):
        return sorted((r["seed"], r["eval_index"], r["score"], tuple(sorted((k, v) for k, v in r.items() if k.startswith("p."))))
                      for r in rows)

    # the module's single-process run may have been resumed to a larger budget: compare its first 3 per seed
    assert len(parallel) == 6
    assert trials(parallel) == trials([r for r in single if int(r["eval_index"]) < 3])
    for seed in (0, 1):
        study = optuna.load_study(study_name=f"tiny/synthetic-small/random/seed{seed}",
                                  storage=optuna.storages.JournalStorage(
                                      optuna.storages.journal.JournalFileBackend(config["storage"][len("journal:"):])))
        assert len(study.trials) == 3


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" not in status.read_text()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc (Linux)")
@pytest.mark.slow
def test_kill_stops_the_driver_and_its_workers_and_resume_finishes_every_run_once(tiny, tmp_path):
    """``kill PID`` (SIGTERM) on ``python -m runs.compare --jobs 2``: the driver stops its worker processes and
    exits 130 (before, the workers outlived it, took the rest of the queue and idled forever); ``--resume`` then
    completes every run with each evaluation once."""
    single_out, code = tiny
    assert code == 0
    setup = TINY + ["--budget", "30", "--jobs", "2", "--out", str(tmp_path), "--name", "killed"]
    driver = subprocess.Popen([sys.executable, "-m", "runs.compare", *setup], cwd=Path(__file__).resolve().parents[1],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not any(len(_rows(t)) >= 2 for t in (tmp_path / "killed" / "runs").glob("*/*.tsv")):
            assert driver.poll() is None and time.monotonic() < deadline, "no trial was stored"
            time.sleep(0.2)
        workers = [c for c in _children(driver.pid)]
        assert len(workers) >= 3  # the two workers and the queue manager (and spawn's resource tracker)
        driver.terminate()
        output = driver.communicate(timeout=120)[0]
    finally:
        driver.kill()
    assert driver.returncode == 130, output
    assert "interrupted: every finished trial is stored" in output
    time.sleep(0.5)
    assert not [w for w in workers if _alive(w)], "a worker outlived its driver"
    storage = json.loads((tmp_path / "killed" / "config.json").read_text())["storage"]
    status = worker.ExperimentQueue(storage, "killed").status()
    assert status["running"] == status["failed"] == 0, status  # given back: no claim left to a dead process
    done = sum(len(_rows(t)) for t in (tmp_path / "killed" / "runs").glob("*/*.tsv"))
    assert 0 < done < 60, "the experiment finished before the kill: nothing was tested"
    assert main(TINY + ["--budget", "30", "--out", str(tmp_path), "--name", "killed", "--resume"]) == 0
    rows = _rows(tmp_path / "killed" / "trials.tsv")
    assert sorted((r["seed"], int(r["eval_index"])) for r in rows) == [(s, i) for s in "01" for i in range(30)]


def _tables(report: str) -> str:
    """The results of a report (aggregate, pairwise, holdout and per-instance tables), without set-up or cost."""
    return report[report.index("## Over instances"):report.index("## Cost")]


@pytest.mark.slow
def test_two_runs_of_one_comparison_give_byte_identical_tables(tmp_path):
    setup = ["--suite", "synthetic-v1", "--instances", "synthetic-v1-01", "synthetic-v1-02", "--space", "core",
             "--searcher", "random", "phased", "tpe", "--budget", "4", "--seeds", "2", "--no-warm", "--out", str(tmp_path)]
    assert main(setup + ["--name", "first"]) == 0
    assert main(setup + ["--name", "second"]) == 0
    first, second = ((tmp_path / name / "report.md").read_text() for name in ("first", "second"))
    assert _tables(first) == _tables(second)
    assert "| **phased** (baseline) |" in first and "## synthetic-v1-02" in first
    summaries = [json.loads((tmp_path / name / "summary.json").read_text(), parse_constant=_refuse)
                 for name in ("first", "second")]
    assert summaries[0]["aggregate"] == summaries[1]["aggregate"]
    assert summaries[0]["n_instances"] + len(summaries[0]["excluded"]) == 2  # an excluded instance says why
    assert set(summaries[0]["aggregate"]) == {"random", "phased", "tpe"} and "friedman_p" in summaries[0]


def test_workers_take_whole_seeds_in_rounds_costliest_searchers_first():
    from runs.execution import RunSpec, queue_order

    specs = [RunSpec("x", "/tmp", "journal:/tmp/x", json.dumps({"id": instance}), 10, name, seed, 1, "")
             for instance in ("a", "b") for name in ("random", "smac", "tpe", "gp", "phased") for seed in (1, 0)]
    order = [(s.instance_id, s.searcher, s.seed) for s in queue_order(specs)]
    assert {seed for _, _, seed in order[:10]} == {0} and {seed for _, _, seed in order[10:]} == {1}
    assert order[:4] == [("a", "smac", 0), ("b", "smac", 0), ("a", "gp", 0), ("b", "gp", 0)]
    assert [name for _, name, _ in order[4:6]] == ["tpe", "tpe"]
    assert set(order) == {(s.instance_id, s.searcher, s.seed) for s in specs}


def test_the_report_has_a_by_budget_table_with_ranks_and_friedman_at_each_budget():
    import numpy as np

    import stats
    from runs.report import aggregate_section

    rng = np.random.default_rng(0)
    instances = [stats.InstanceResults(f"i{k}", {s: {seed: rng.normal(size=50) + shift for seed in (0, 1)}
                                                 for s, shift in (("a", 0.0), ("b", 3.0))}, rng.normal(size=200))
                 for k in range(6)]
    lines = aggregate_section(stats.aggregate_table(instances, [25, 50], reps=50), None)
    at = lines.index("## By budget")
    assert lines[at + 2] == "| searcher | IQM @25 [95% CI] | rank @25 | IQM @50 [95% CI] | rank @50 |"
    rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in lines[at + 4:at + 6]}
    assert rows["b"][2] == rows["b"][4].rstrip(" |") == "1.00"  # b is best on every instance at both budgets
    assert rows["a"][2] == "2.00"
    assert any(line.startswith("The same runs cut at each budget") and "@25 " in line and "@50 " in line
               for line in lines)


def test_a_replacement_claim_keeps_its_place_in_the_seed_rounds(tmp_path):
    """A run taken back from a dead worker is queued again at the end of the queue study; workers still take
    it in its own seed round (before, it waited behind every later seed, so no later seed could be whole)."""
    from env import leases
    from runs.worker import ExperimentQueue

    queue = ExperimentQueue(f"journal:{tmp_path / 'queue.journal'}", "rounds")
    queue.submit({"name": "rounds", "budget": 5, "instances": []},
                 [("a", "random", 0, 1), ("b", "random", 0, 1), ("a", "random", 1, 1), ("b", "random", 1, 1)])
    first = queue.pop()
    assert (first.instance, first.seed) == ("a", 0)
    held = queue.study.trials[first.number]
    assert leases._fail(queue.study, held)  # what leases.reclaim does to the claim of a dead worker
    leases.requeue(queue.study, held)
    assert [(c.instance, c.seed) for c in iter(queue.pop, None)] == [("a", 0), ("b", 0), ("a", 1), ("b", 1)]


def test_holdout_results_carry_the_suites_random_pools_and_the_report_ranks_winners_among_them():
    """With the suite's holdout pool (committed for synthetic-v1) every instance's holdout results carry both
    random pools; the report's rank table then places the winners among random configurations. Without a suite
    (a single universe) there is no holdout pool and no rank table."""
    from instances import load_suite
    import stats
    from runs import report
    from runs.results import holdout_pool

    suite = load_suite("synthetic-v1")
    instance = suite.select(["synthetic-v1-02"])[0]
    config = {"suite_path": str(suite.path), "instances": [instance.definition()]}
    pool = holdout_pool(instance, config)
    assert pool is not None and len(pool) == 200
    search_pool = np.linspace(-1.0, 1.0, 200)
    results = [stats.InstanceResults(instance.id, {"s": {0: np.array([0.5, 2.0])}}, search_pool)]
    holdout = {instance.id: {"defaults": {"score": 0.1}, "winners": {"s": {0: {"in_sample": 2.0, "score": 0.3}}}}}
    (held,) = report.holdout_results_of(holdout, results, 2, config)
    assert np.array_equal(held.holdout_pool, pool) and np.array_equal(held.search_pool, search_pool)
    decay = stats.holdout_summary([held], reps=50)
    assert decay["s"]["lift_rank"]["iqm"] == pytest.approx(stats.pool_rank(0.3, pool) - stats.pool_rank(0.1, pool))
    table = "\n".join(report.holdout_rank_table(decay))
    assert "| s | " in table and "holdout rank - defaults' holdout rank" in table
    assert holdout_pool(instance, {"instances": [instance.definition()]}) is None
    bare = stats.holdout_summary([stats.HoldoutResults(instance.id, 0.1, {"s": {0: (2.0, 0.3)}})], reps=50)
    assert report.holdout_rank_table(bare) == []
