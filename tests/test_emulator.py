"""The emulated benchmark: the ``sobol`` design searcher, datasets, emulators (fit, fidelity, container, refusals),
the emulated problem and gym tasks, ``runs.compare --objective emulated`` and ranking fidelity (tiny sizes)."""

from __future__ import annotations

import csv
import json
import math
import zipfile
from pathlib import Path

import numpy as np
import pytest

import policies
from env import Objective, SyntheticTask, TrialStore
from env.records import params_key
from harness.integrity import contract_id
from instances import Instance, load_suite
from policies.base import make, run
from runs import compare, worker
from runs.execution import specs_of
from runs.results import load_experiment
from strategy.space import SearchSpace
from surrogate.emulator import (EmulatedProblem, EmulatorError, EmulatorFile, EpisodeSampler, fit_instance, make_env,
                                read_dataset, save)
from runs.emulator import main as emulator_main
from surrogate.emulator.dataset import Collected, encode_rows, write_dataset
from surrogate.emulator.model import features
from conftest import DiesAt

CORE = SearchSpace("core")


def _instance(space: str = "core", seed: int | None = None) -> Instance:
    suite = load_suite("synthetic-v1")
    definition = {**suite.get("synthetic-v1-01").definition(), "space": space}
    if seed is not None:
        definition["seed"] = seed
    return Instance.from_definition(definition, suite=suite.name)


def _trace(history) -> list[tuple[str, float]]:
    return [(params_key(r.params), r.score) for r in history]


# --------------------------------------------------------------------------- the sobol searcher
def test_sobol_spends_the_budget_in_sequence_order_and_is_deterministic():
    objective = Objective(SyntheticTask(CORE, seed=3), budget=40, searcher="sobol")
    run(make("sobol"), objective, 0)
    assert objective.used == 40 and len({params_key(r.params) for r in objective.history}) == 40
    from scipy.stats import qmc
    first = qmc.Sobol(len(CORE), scramble=True, seed=np.random.default_rng(0)).random(1)
    assert objective.history[0].params == CORE.values(CORE.decode(CORE.snap(first)[0]))
    again = Objective(SyntheticTask(CORE, seed=3), budget=40, searcher="sobol")
    run(make("sobol"), again, 0)
    assert _trace(again.history) == _trace(objective.history)
    other = Objective(SyntheticTask(CORE, seed=3), budget=40, searcher="sobol")
    run(make("sobol"), other, 1)
    assert _trace(other.history) != _trace(objective.history)


class _Crash(RuntimeError):
    pass


def test_sobol_resumes_exactly_after_a_kill(tmp_path: Path):
    def store() -> TrialStore:
        return TrialStore(f"journal:{tmp_path}/trials.log", "exp", "sobol", 0, CORE)

    with pytest.raises(_Crash):
        dying = DiesAt(SyntheticTask(CORE, seed=3), at=30, error=_Crash)
        run(make("sobol"), Objective(dying, budget=60, searcher="sobol", store=store()), 0)
    resumed = Objective(SyntheticTask(CORE, seed=3), budget=60, searcher="sobol", store=store())
    assert resumed.used == 29
    run(make("sobol"), resumed, 0)
    uninterrupted = Objective(SyntheticTask(CORE, seed=3), budget=60, searcher="sobol")
    run(make("sobol"), uninterrupted, 0)
    assert _trace(resumed.history) == _trace(uninterrupted.history)
    assert "sobol" in policies.SEARCHERS


# --------------------------------------------------------------------------- an emulator on an analytic landscape
@pytest.fixture(scope="module")
def landscape(tmp_path_factory):
    """A dataset of 600 rows of an analytic task (its scores stand in for real ones) for synthetic-v1-01 in the
    core space, and the emulator container fitted on it."""
    folder = tmp_path_factory.mktemp("emulator")
    instance = _instance()
    task = SyntheticTask(CORE, seed=5)
    collected = Collected(instance, instance.fingerprint, CORE)
    rng = np.random.default_rng(0)
    for k in range(600):
        params = CORE.sample(rng)
        score = task.evaluate(params).score
        collected.add(CORE.values(params), score, contract_id(), "design", 0, k,
                      {"annualized_return_pct": -60.0 if score == -math.inf else 10.0}, {"calmar_ratio": 1.0})
    dataset = write_dataset([collected], folder / "synthetic-v1-core.parquet")
    frame = read_dataset(dataset)
    emulator = fit_instance(frame, instance, instance.fingerprint)
    path = save(folder / "synthetic-v1-core.emulator", [emulator], "synthetic-v1", "0" * 64)
    return {"folder": folder, "instance": instance, "frame": frame, "emulator": emulator, "path": path, "task": task}


def test_dataset_rows_keep_rejections_reasons_and_exact_parameters(landscape):
    frame = landscape["frame"]
    assert len(frame) == 600 and (frame["score"] == -math.inf).any()
    assert set(frame.loc[frame["score"] == -math.inf, "reason"]) == {"annualised return below -50%"}
    assert set(frame.loc[frame["score"] > -math.inf, "reason"]) == {""}
    assert str(frame["base.annualized_return_pct"].dtype) == "float32"
    first = {name: frame[f"p.{name}"].iloc[0] for name in CORE.names}
    assert np.allclose(encode_rows(frame.iloc[:1], CORE)[0], CORE.encode(CORE.params({k: (v.item() if hasattr(v, "item")
                                                                                          else v) for k, v in first.items()})))


def test_emulator_fidelity_on_held_out_rows_and_determinism(landscape, tmp_path):
    fidelity = landscape["emulator"].meta["fidelity"]
    assert fidelity["n_test"] == 120 and fidelity["n_train"] == 480
    assert fidelity["spearman"] > 0.8 and fidelity["feasibility_auc"] > 0.9
    assert 0.0 <= fidelity["top_decile_recall"] <= 1.0
    again = fit_instance(landscape["frame"], landscape["instance"], landscape["instance"].fingerprint)
    copy = save(tmp_path / "again.emulator", [again], "synthetic-v1", "0" * 64)
    assert copy.read_bytes() == landscape["path"].read_bytes()  # bit for bit


def test_features_ignore_the_axes_a_switch_turns_off():
    joint = SearchSpace("joint")
    derive = features(joint.names)
    x = joint.snap(np.random.default_rng(0).random((200, len(joint))))
    x[:, joint.names.index("switches.use_bull")] = 0.0
    x[:, joint.names.index("switches.use_hmm")] = 0.0
    moved = x.copy()
    for j, name in enumerate(joint.names):
        if name.startswith("bull.") or name in ("hmm.detector", "hmm.hmm_refit_interval"):
            moved[:, j] = 1.0 - moved[:, j]
    assert np.array_equal(derive(x), derive(moved), equal_nan=True)
    assert not np.array_equal(derive(x), derive(np.where(x == moved, 1.0 - x, x)), equal_nan=True)
    assert np.array_equal(features(CORE.names)(x[:, :len(CORE)]), x[:, :len(CORE)])  # no switches: the encoding


def test_emulated_problem_records_its_emulator_and_never_claims_to_be_real(landscape):
    problem = EmulatedProblem(EmulatorFile(landscape["path"]).load(landscape["instance"]))
    objective = Objective(problem, budget=30, searcher="tpe", seed=0)
    run(make("tpe"), objective, 0)
    assert objective.used == 30
    assert all(not r.real and r.contract == f"emulator:{problem.emulator.fingerprint[:16]}" for r in objective.history)
    again = Objective(EmulatedProblem(EmulatorFile(landscape["path"]).load(landscape["instance"])), budget=30,
                      searcher="tpe", seed=0)
    run(make("tpe"), again, 0)
    assert _trace(again.history) == _trace(objective.history)
    # the emulator agrees with the landscape it was fitted on
    probe = CORE.snap(np.random.default_rng(7).random((300, len(CORE))))
    truth = np.array([landscape["task"].evaluate(CORE.decode(u)).score for u in probe])
    emulated = problem.evaluate_unit(probe)
    both = np.isfinite(truth) & np.isfinite(emulated)
    assert np.corrcoef(truth[both], emulated[both])[0, 1] > 0.8
    assert np.mean(np.isfinite(truth) == np.isfinite(emulated)) > 0.85


def test_noise_and_scaling_are_deterministic_per_configuration(landscape):
    base = EmulatedProblem(EmulatorFile(landscape["path"]).load(landscape["instance"]))
    noisy = base.randomised(np.random.default_rng(1), scale=(0.5, 2.0), shift=(-0.1, 0.1), noise=(0.1, 0.2))
    probe = CORE.snap(np.random.default_rng(3).random((50, len(CORE))))
    a, b = noisy.evaluate_unit(probe), noisy.evaluate_unit(probe)
    assert np.array_equal(a, b) and not np.array_equal(a, base.evaluate_unit(probe))
    assert np.array_equal(np.isfinite(a), np.isfinite(base.evaluate_unit(probe)))  # -inf stays -inf
    single = noisy.evaluate(CORE.decode(probe[0])).score
    assert single == a[0] or (math.isinf(single) and math.isinf(a[0]))


def test_gym_envs_run_on_emulated_instances(landscape):
    problem = EmulatedProblem(EmulatorFile(landscape["path"]).load(landscape["instance"]))
    for kind in ("candidate", "edit"):
        env = make_env([problem], kind=kind, budget=12, seed=0, scale=(0.5, 2.0), noise=(0.0, 0.1))
        obs, _ = env.reset(seed=0)
        assert env.observation_space.contains(obs)
        done = False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert math.isfinite(reward)
            done = terminated or truncated
    sampler = EpisodeSampler([problem], budget=(5, 9), seed=2)
    budgets = {sampler().budget for _ in range(20)}
    assert budgets <= set(range(5, 10)) and len(budgets) > 1


# --------------------------------------------------------------------------- refusals
def _one_line_refusal(call, *words):
    with pytest.raises(EmulatorError) as error:
        call()
    message = str(error.value)
    assert "\n" not in message and all(w in message for w in words), message
    return message


def test_mismatched_or_corrupt_emulators_are_refused_in_one_line(landscape, tmp_path, monkeypatch):
    path, instance = landscape["path"], landscape["instance"]
    _one_line_refusal(lambda: EmulatorFile(path).load(instance, SearchSpace("joint")), "space", "'core'")
    _one_line_refusal(lambda: EmulatorFile(path).load(_instance(seed=9)), "definition", "seed")
    _one_line_refusal(lambda: EmulatorFile(path).load("synthetic-v1-02"), "no emulator for")
    faked = fit_instance(landscape["frame"].assign(fingerprint="f" * 64), instance, "f" * 64)
    other = save(tmp_path / "fingerprint.emulator", [faked], "synthetic-v1", "0" * 64)
    _one_line_refusal(lambda: EmulatorFile(other).load(instance), "fingerprint", "data changed")
    EmulatorFile(other).load(instance, check_data=False)  # no data check asked: the definition matches
    truncated = tmp_path / "truncated.emulator"
    truncated.write_bytes(path.read_bytes()[:-200])
    _one_line_refusal(lambda: EmulatorFile(truncated), "corrupt")
    garbage = tmp_path / "garbage.emulator"
    garbage.write_bytes(b"\x00not a zip" * 50)
    _one_line_refusal(lambda: EmulatorFile(garbage), "corrupt")
    tampered = tmp_path / "tampered.emulator"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(tampered, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            target.writestr(name, data.replace(b"leaf_value=", b"leaf_value=1", 1) if name.endswith(".txt") else data)
    _one_line_refusal(lambda: EmulatorFile(tampered).load(instance), "corrupt", "hash")
    old = tmp_path / "old.emulator"
    with zipfile.ZipFile(path) as source, zipfile.ZipFile(old, "w") as target:
        for name in source.namelist():
            data = source.read(name)
            if name == "manifest.json":
                data = json.dumps({**json.loads(data), "format_version": 0}).encode()
            target.writestr(name, data)
    _one_line_refusal(lambda: EmulatorFile(old), "format_version")
    monkeypatch.setattr("surrogate.emulator.model.contract_id", lambda: "9.9.9+000000000000")
    _one_line_refusal(lambda: EmulatorFile(path), "contract", "9.9.9")


# --------------------------------------------------------------------------- runs.compare --objective emulated
EMULATED = ["--suite", "synthetic-v1", "--instances", "synthetic-v1-01", "--space", "core", "--objective", "emulated",
            "--no-warm"]


@pytest.mark.slow
def test_compare_on_the_emulator_is_labelled_separate_and_resumable(landscape, tmp_path, capsys):
    argv = EMULATED + ["--emulator", str(landscape["path"]), "--searcher", "random", "sobol", "phased", "--seeds", "2",
                       "--budget", "30", "--out", str(tmp_path)]
    assert compare.main(argv) == 0
    (folder,) = tmp_path.iterdir()
    assert folder.name.endswith("-emulated")
    report = (folder / "report.md").read_text()
    headings = [line for line in report.splitlines() if line.startswith("#")]
    assert headings and all("emulated" in h for h in headings)
    assert all("(emulated)" in line for line in report.splitlines() if line.startswith("| searcher"))
    assert "Not scored: the emulator models the search window only" in report
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["objective"] == "emulated" and summary["pool_sources"]["synthetic-v1-01"].startswith("emulated pool")
    rows = (folder / "trials.tsv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 2 * 30 and all("\tFalse\t" in r and "emulator:" in r for r in rows[1:])
    # resuming continues on the same emulator; the real harness, or another emulator, is refused in one line
    name = ["--name", folder.name, "--out", str(tmp_path), "--resume", "--space", "core"]
    assert compare.main(name + ["--budget", "31"]) == 0
    capsys.readouterr()
    assert compare.main(name + ["--objective", "real"]) == 2
    assert "never mix" in capsys.readouterr().err
    other = tmp_path / "other.emulator"
    other.write_bytes(landscape["path"].read_bytes() + b"")  # same bytes: same emulator, accepted
    assert compare.main(name + ["--emulator", str(other)]) == 0
    corrupt = tmp_path / "corrupt.emulator"
    corrupt.write_bytes(b"junk")
    capsys.readouterr()
    assert compare.main(EMULATED + ["--emulator", str(corrupt), "--searcher", "random", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "corrupt" in err and "\n" not in err


def test_workers_build_the_same_emulated_problem_from_the_stored_config(landscape, tmp_path):
    storage = f"journal:{tmp_path}/trials.journal"
    argv = EMULATED + ["--emulator", str(landscape["path"]), "--searcher", "random", "--seeds", "1", "--budget", "20"]
    assert compare.main(argv + ["--out", str(tmp_path), "--name", "queued", "--storage", storage, "--jobs", "0"]) == 0
    done = worker.work(storage, "queued", tmp_path)
    assert not done["errors"] and len(done["runs"]) == 1
    assert compare.main(["--name", "queued", "--out", str(tmp_path), "--resume", "--jobs", "0", "--space", "core"]) == 0
    assert compare.main(argv + ["--out", str(tmp_path), "--name", "here"]) == 0
    assert _trials(tmp_path / "queued") == _trials(tmp_path / "here")


def test_a_part_run_experiment_reports_its_whole_seeds_only(landscape, tmp_path, capsys):
    """``--resume --jobs 0 --partial`` while runs are queued: the report and ``summary.json`` cover the seeds done
    on every instance x searcher and say so; ``load_experiment`` (the experiments' reader) does the same."""
    storage = f"journal:{tmp_path}/trials.journal"
    argv = EMULATED + ["--emulator", str(landscape["path"]), "--searcher", "random", "sobol", "--seeds", "2",
                       "--budget", "8", "--out", str(tmp_path), "--name", "part", "--storage", storage]
    assert compare.main(argv + ["--jobs", "0"]) == 0
    report = ["--name", "part", "--out", str(tmp_path), "--resume", "--jobs", "0", "--space", "core", "--partial"]
    capsys.readouterr()
    assert compare.main(report) == 2 and "no seed is done" in capsys.readouterr().err
    done = worker.work(storage, "part", tmp_path, max_runs=3)  # seed 0 of both searchers (a round), then one more
    assert not done["errors"] and {(r["searcher"], r["seed"]) for r in done["runs"]} >= {("random", 0), ("sobol", 0)}
    assert compare.main(report) == 0
    summary = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert summary["partial"] == {"whole_seeds": [0], "of_seeds": [0, 1], "runs_not_done": 1}
    assert {r["seed"] for r in summary["runs"]} == {0} and set(summary["aggregate"]) == {"random", "sobol"}
    assert "**Partial report**" in (tmp_path / "part" / "report.md").read_text()
    config, specs, runs = load_experiment(tmp_path / "part")
    assert config["seeds"] == [0] and config["partial"]["runs_not_done"] == 1 and {s.seed for s in specs} == {0}
    everything = specs_of(json.loads((tmp_path / "part" / "config.json").read_text()), storage, tmp_path / "part")
    running = next(spec for spec in everything if not spec.tsv.exists())  # a run's TSV grows as it evaluates:
    finished = next(spec for spec in everything if spec.seed == running.seed and spec.tsv.exists())
    running.tsv.write_text("".join(finished.tsv.read_text().splitlines(keepends=True)[:3]))  # as if 2 rows in
    config, specs, runs = load_experiment(tmp_path / "part")
    assert config["seeds"] == [0] and {s.seed for s in specs} == {0} and all(set(by) == {0} for i in runs.values()
                                                                              for by in i.values())
    running.tsv.unlink()
    worker.work(storage, "part", tmp_path)
    assert compare.main(report) == 0  # finished: the whole report, no partial mark
    summary = json.loads((tmp_path / "part" / "summary.json").read_text())
    assert "partial" not in summary and {r["seed"] for r in summary["runs"]} == {0, 1}
    assert "Partial report" not in (tmp_path / "part" / "report.md").read_text()
    assert "partial" not in load_experiment(tmp_path / "part")[0]


def _trials(folder: Path) -> list[tuple]:
    with (folder / "trials.tsv").open(newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [tuple(v for k, v in row.items() if k.startswith("p.") or k in ("score", "contract", "real")) for row in rows]


# --------------------------------------------------------------------------- the real pipeline, tiny
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``runs.emulator build`` on one synthetic instance, core space, 48 real evaluations; a tiny real
    comparison on the same instance (random and sobol, 2 seeds, budget 25); then ``report --real``."""
    root = tmp_path_factory.mktemp("built")
    common = ["--suite", "synthetic-v1", "--space", "core", "--runs-out", str(root / "runs"), "--data-dir",
              str(root / "data")]
    assert emulator_main(["build", *common, "--instances", "synthetic-v1-07", "--budget", "48", "--jobs", "1"]) == 0
    real = ["--suite", "synthetic-v1", "--instances", "synthetic-v1-07", "--space", "core", "--searcher", "random",
            "sobol", "--seeds", "2", "--budget", "25", "--out", str(root / "runs"), "--name", "real", "--no-warm"]
    assert compare.main(real) == 0
    return root, common


@pytest.mark.slow
def test_build_writes_a_dataset_and_an_emulator_that_refit_bit_for_bit(built, capsys):
    root, common = built
    data, emulator = root / "data" / "synthetic-v1-core.parquet", root / "data" / "synthetic-v1-core.emulator"
    frame = read_dataset(data)
    assert len(frame) == 48 and set(frame["source"]) == {"design"} and set(frame["contract"]) == {contract_id()}
    assert (frame["reason"] != "").sum() == (frame["score"] == -math.inf).sum()
    first = (data.read_bytes(), emulator.read_bytes())
    assert emulator_main(["fit", *common]) == 0
    assert emulator.read_bytes() == first[1]
    assert emulator_main(["export", *common, "--from", str(root / "runs" / "real")]) == 0
    grown = read_dataset(data)
    assert len(grown) > 48 and {"design", "random", "sobol"} >= set(grown["source"]) >= {"design", "random"}
    assert emulator_main(["export", *common]) == 0  # without --from: the design alone, the same bytes again
    assert (data.read_bytes(), emulator.read_bytes()) == first


@pytest.mark.slow
def test_report_json_has_one_object_per_instance_with_ranking_fidelity(built, capsys):
    root, common = built
    capsys.readouterr()
    assert emulator_main(["report", "--suite", "synthetic-v1", *common[2:], "--real", str(root / "runs" / "real"),
                          "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["instance"] for r in rows] == ["synthetic-v1-07"]
    for key in ("instance", "n_real", "spearman", "feasibility_auc", "ranking_kendall_tau"):
        assert key in rows[0]
    assert rows[0]["n_real"] == 48 and rows[0]["predict_ms_1000"] < 10
    twin = json.loads((root / "runs" / "real-emulated" / "config.json").read_text())
    assert twin["objective"] == "emulated" and twin["searchers"] == ["random", "sobol"] and twin["seeds"] == [0, 1]
