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

import optuna
import pytest

from runs import analysis
from runs.compare import main
from env.records import TrialRecord


TINY = ["--universe", "synthetic-small", "--space", "core", "--searcher", "random", "--seeds", "2"]


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
    for name in ("config.json", "trials.tsv", "report.md", "summary.json", "best_so_far.png", "holdout.json"):
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
        study = optuna.load_study(study_name=f"tiny/random/seed{seed}", storage=storage)
        values = sorted(t.value for t in study.trials)
        tsv = sorted(float(r["score"]) for r in rows if r["seed"] == str(seed))
        assert values == tsv

    report = (folder / "report.md").read_text()
    assert "Baseline: the phased one-at-a-time sweep" in report and "holdout" in report.lower()
    summary = json.loads((folder / "summary.json").read_text())
    (random_summary,) = summary["summaries"]
    assert random_summary["searcher"] == "random" and len(random_summary["final"]) == 2
    # holdout scores exist: synthetic-small runs to 2027, past the sealed 2025 boundary
    assert all(v["holdout"] is not None for v in summary["holdout"]["random"].values())


def _record(i: int, score: float) -> TrialRecord:
    return TrialRecord(eval_index=i, searcher="x", seed=0, params={"a": i}, score=score)


def test_best_so_far_normalisation_and_targets():
    runs = {
        "random": {0: [_record(0, float("-inf")), _record(1, 1.0), _record(2, 0.5)],
                   1: [_record(0, 0.0), _record(1, 0.2), _record(2, 0.4)]},
        "smart": {0: [_record(0, 2.0), _record(1, 1.0), _record(2, 3.0)],
                  1: [_record(0, 1.0), _record(1, 3.0), _record(2, 0.0)]},
    }
    curve = analysis.best_so_far(runs["random"][0], 4)
    assert list(curve) == [float("-inf"), 1.0, 1.0, 1.0]
    assert analysis.evals_to_reach(curve, 1.0) == 2 and analysis.evals_to_reach(curve, 5.0) == float("inf")
    summaries = {s.searcher: s for s in analysis.summarise(runs, budget=3, checkpoints=(2,), baseline=None)}
    assert summaries["random"].normalised_at[3] == pytest.approx(1.0, abs=0.35)
    assert summaries["smart"].normalised_at[3] == 0.0  # both seeds reach the best known score
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
            detail = _get(f"{base}/api/studies/{by_name[f'tiny/random/seed{seed}']}")
            served = sorted(float(t["values"][0]) for t in detail["trials"])
            stored = sorted(float(r["score"]) for r in rows if r["seed"] == seed)
            assert served == stored and len(served) == len(stored) > 0
        served_all = [t["values"][0] for s in by_name.values() for t in _get(f"{base}/api/studies/{s}")["trials"]]
        assert "-inf" in served_all, "the tiny run is expected to hold a hard rejection (random seeds 0/1)"
    finally:
        server.terminate()
        server.wait(timeout=10)


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
        study = optuna.load_study(study_name=f"tiny/random/seed{seed}",
                                  storage=optuna.storages.JournalStorage(
                                      optuna.storages.journal.JournalFileBackend(config["storage"][len("journal:"):])))
        assert len(study.trials) == 3
