"""Issue 17: PPO meta-training on emulated instances (both action designs), ``--describe``, the ablation and ``ppo-edit``.

Tiny sizes on the committed ``synthetic-v1`` emulator (split ``synthetic-v1``: train 01..06, validate 07, test 08).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import PPO

import policies  # noqa: F401  (registers the searchers)
from env import TrialStore
from env.objective import Objective
from learn import ablation
from policies.base import make, run
from learn.train_ppo import SPLITS, describe, load_tasks, main, make_env, split_tasks, train
from conftest import DiesAt

RANDOMISATION = {"scale": (0.5, 2.0), "shift": (-0.1, 0.1), "noise": (0.0, 0.1)}


@pytest.fixture(scope="module")
def training():
    return load_tasks("synthetic-v1", "training_tasks")[:2]


@pytest.fixture(scope="module")
def tiny_edit(tmp_path_factory):
    """An edit policy trained for 256 steps (2 envs x 128) on the synthetic-v1 split."""
    out = tmp_path_factory.mktemp("pretrained") / "ppo_edit_tiny.zip"
    meta = train("joint", 256, out, seed=0, budget=(8, 12), split="synthetic-v1", design="edit", n_envs=2,
                 validation_seeds=1, checkpoint_every=0)
    return out, meta


def test_splits_keep_test_instances_out_of_training_and_validation():
    for name in SPLITS:
        tasks = split_tasks(name)
        train_ids, validation, test = tasks["training_tasks"], tasks["validation_tasks"], tasks["test_tasks"]
        assert train_ids and validation and test
        assert not set(train_ids) & set(test) and not set(validation) & set(test) and not set(train_ids) & set(validation)
    forward = split_tasks("binance-to-bybit")
    assert all(i.startswith("binance-spot-") for i in forward["training_tasks"] + forward["validation_tasks"])
    assert len(forward["test_tasks"]) == 10 and all(i.startswith("bybit-") for i in forward["test_tasks"])
    assert forward["validation_tasks"] == ["binance-spot-2023-01", "binance-spot-2023-07"]
    reverse = split_tasks("bybit-to-binance")
    assert all(i.startswith("binance-spot-") for i in reverse["test_tasks"]) and len(reverse["training_tasks"]) == 8


@pytest.mark.parametrize("design", ["candidates", "edit"])
def test_both_designs_pass_check_env_on_emulated_instances_and_are_seeded(design, training):
    env = make_env(design, "joint", (8, 12), "improvement", "synthetic-v1", problems=training,
                   randomisation=RANDOMISATION)
    check_env(env, skip_render_check=True)

    def rollout(seed: int) -> list[float]:
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        rewards, done = [], False
        while not done:
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            assert env.observation_space.contains(obs) and math.isfinite(reward) and -1 <= info["regret"] <= 2
            rewards.append(reward)
            done = terminated or truncated
        assert terminated and info["real_evaluations"] == env.objective.budget
        return rewards

    assert rollout(3) == rollout(3)


def test_edit_planning_queries_are_free_and_bounded(training):
    env = make_env("edit", "joint", (10, 10), "improvement", "synthetic-v1", problems=training, planning=2)
    env.reset(seed=0)
    used = env.objective.used
    for _ in range(2):  # two free queries: the walk moves, the budget does not
        _, reward, *_ , info = env.step(np.array([0, 5, 0]))
        assert info["query"] and reward == 0.0 and env.objective.used == used
    _, _, _, _, info = env.step(np.array([1, 5, 0]))  # the third query in a row is a real evaluation
    assert not info["query"] and env.objective.used == used + 1
    charged = make_env("edit", "joint", (10, 10), "improvement", "synthetic-v1", problems=training, planning=2,
                       query_cost=0.003)
    charged.reset(seed=0)
    _, reward, *_, info = charged.step(np.array([0, 5, 0]))  # --query-cost: a query earns minus the cost
    assert info["query"] and reward == -0.003
    from learn.train_ppo import run_settings
    assert "query_cost" not in run_settings("joint", 8, 0, (8, 12), "improvement", None, split="synthetic-v1",
                                            design="edit")  # absent when free: older checkpoints still resume
    with pytest.raises(ValueError, match="edit design"):
        train("joint", 8, Path("unused.zip"), split="synthetic-v1", design="candidates", query_cost=0.01)


@pytest.mark.slow
def test_training_on_emulated_instances_resumes_and_records_the_split(tiny_edit, tmp_path):
    out, meta = tiny_edit
    assert meta["action_design"] == "edit" and meta["timesteps"] == 256 and meta["tasks"] == "emulated"
    assert meta["training_tasks"] == [f"synthetic-v1-0{i}" for i in range(1, 7)]
    assert meta["validation_tasks"] == ["synthetic-v1-07"] and meta["test_tasks"] == ["synthetic-v1-08"]
    assert meta["acting"] in ("greedy", "sampled") and set(meta["validation"]["mean_normalised_best"]) == {"greedy", "sampled"}
    assert meta["train_wall_s"] > 0 and meta["planning"] == 3
    # a run "killed" after its first checkpoint (simulated: the checkpoint of a 256-step run, target 512) resumes
    again = tmp_path / "ppo_cand.zip"
    kwargs = dict(seed=1, budget=(8, 12), split="synthetic-v1", design="candidates", n_envs=2, validation_seeds=0,
                  checkpoint_every=256)
    first = train("joint", 256, again, **kwargs)
    assert first["timesteps"] == 256 and first["action_design"] == "candidates"
    from learn.train_ppo import checkpoint_path, save_checkpoint, run_settings
    model = PPO.load(again, device="cpu")
    settings = run_settings("joint", 512, 1, (8, 12), "improvement", None, split="synthetic-v1", design="candidates",
                            n_envs=2, randomisation=RANDOMISATION)
    save_checkpoint(checkpoint_path(again), model, {"settings": settings, "timesteps": 256, "target_timesteps": 512,
                                                     "rows": [], "train_wall_s": 1.0, "resumed_from": []})
    resumed = train("joint", 512, again, **kwargs)
    assert resumed["timesteps"] == 512 and resumed["resumed_from"] == [256] and not checkpoint_path(again).exists()


def test_describe_json_lists_every_committed_policy_with_its_split(tiny_edit, capsys):
    out, _ = tiny_edit
    rows = {r["name"]: r for r in describe(out.parent)}
    row = rows["ppo_edit_tiny"]
    assert row["action_design"] == "edit" and row["timesteps"] == 256 and row["test_tasks"] == ["synthetic-v1-08"]
    main(["--describe", "--json"])
    committed = json.loads(capsys.readouterr().out)
    fields = {"name", "action_design", "timesteps", "training_tasks", "validation_tasks", "test_tasks"}
    assert committed and all(fields <= set(r) for r in committed)
    assert all(r["action_design"] in ("edit", "candidates") for r in committed)
    # issue 17, item 3: every committed policy has at least 1,000,000 steps, and both designs are there
    assert all(r["timesteps"] >= 1_000_000 for r in committed), [(r["name"], r["timesteps"]) for r in committed]
    assert {"edit", "candidates"} <= {r["action_design"] for r in committed}


def test_ablation_json_fields_on_a_tiny_configuration(tiny_edit, capsys):
    out, _ = tiny_edit
    ablation.main(["--json", "--folder", str(out.parent), "--budget", "12", "--seeds", "2", "--split", "synthetic-v1"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "ppo_edit_tiny" and row["test_tasks"] == ["synthetic-v1-08"]
    for key in ("learned", "best_fixed", "diff_ci", "histogram", "entropy", "greedy", "sampled", "fixed"):
        assert key in row, key
    assert set(row["fixed"]) == {"uniform", "random edit", "hill climb", "fresh point", "fresh or climb"}
    assert set(row["histogram"]) <= {f"{move} ({kind})" for move in ("edit", "back to best", "fresh point")
                                     for kind in ("real", "surrogate query")}
    lo, hi = row["diff_ci"]
    assert lo <= row["diff_mean"] <= hi and abs(sum(row["histogram"].values()) - 1) < 1e-9


def test_fixed_candidate_rules_cover_every_slot_and_uniform():
    rules = ablation.fixed_rules("candidates", 35, 0)
    assert len(rules) == 8 and "uniform slot" in rules


def test_ppo_edit_searcher_spends_the_budget_and_is_deterministic(tiny_edit):
    out, _ = tiny_edit
    problem = load_tasks("synthetic-v1", "test_tasks")[0]

    def once(seed: int):
        objective = Objective(problem, 15, searcher="ppo-edit", seed=seed)
        searcher = make("ppo-edit", policy_path=str(out))
        run(searcher, objective, seed)
        assert objective.used == 15 and searcher.stats["policy_decisions"] > 0
        return [(r.params, r.score) for r in objective.history]

    assert once(0) == once(0)


def test_validate_scores_on_validation_instances_only(tiny_edit, capsys):
    out, _ = tiny_edit
    ablation.main(["--validate", "--json", "--folder", str(out.parent), "--budget", "10", "--seeds", "1",
                   "--split", "synthetic-v1"])
    (row,) = json.loads(capsys.readouterr().out)
    assert row["validation_tasks"] == ["synthetic-v1-07"] and row["best"] == max(row["greedy"], row["sampled"])
    assert -1.0 <= row["greedy"] <= 2.0 and -1.0 <= row["sampled"] <= 2.0
    other = ablation.validate("ppo_edit_tiny", "binance-to-bybit", folder=out.parent)  # its split is synthetic-v1
    assert other["skipped"] == "trained on the synthetic-v1 split"


def test_a_run_on_a_training_instance_warns_and_records_its_role(tiny_edit):
    out, _ = tiny_edit
    for which, role in (("training_tasks", "training"), ("test_tasks", "test")):
        problem = load_tasks("synthetic-v1", which)[0]
        searcher = make("ppo-edit", policy_path=str(out))
        objective = Objective(problem, 4, searcher="ppo-edit")
        if role == "training":
            with pytest.warns(UserWarning, match=f"{problem.instance} is one of ppo_edit_tiny.zip's training"):
                run(searcher, objective, 0)
        else:
            run(searcher, objective, 0)
        assert searcher.stats["pretrain_role"] == role


def test_compare_report_flags_a_policy_run_on_its_own_training_instances(tmp_path):
    """``runs.compare`` with ``ppo`` on one of its policy's training instances and one test instance (committed
    real-v1 emulator, no data needed): the report and ``summary.json`` name the in-sample instance, only that one."""
    from runs import compare

    argv = ["--suite", "real-v1", "--instances", "binance-spot-2021-07", "bybit-perp-2021-05", "--objective",
            "emulated", "--no-warm", "--searcher", "ppo", "random", "--seeds", "1", "--budget", "8", "--out",
            str(tmp_path), "--name", "overlap"]
    with pytest.warns(UserWarning, match="binance-spot-2021-07 is one of ppo_candidates_binance.zip's training"):
        assert compare.main(argv) == 0
    summary = json.loads((tmp_path / "overlap" / "summary.json").read_text())
    assert summary["pretrain_overlap"] == {"ppo": {"training": ["binance-spot-2021-07"]}}
    report = (tmp_path / "overlap" / "report.md").read_text()
    assert "Not held out:** `ppo`'s policy was meta-trained or validated" in report
    assert "training instances binance-spot-2021-07;" in report and "random`'s policy" not in report


def test_searcher_variants_name_committed_policies(capsys):
    """``ppo@<policy>`` / ``ppo-edit@<policy>``: another committed policy of the same design, by name."""
    from policies.base import searcher_class
    from policies.ppo import PRETRAINED
    from runs import compare

    searcher = make("ppo@ppo_candidates_binance")
    assert searcher.options["policy_path"] == str(PRETRAINED / "ppo_candidates_binance.zip")
    assert searcher_class("ppo-edit@ppo_edit_binance").name == "ppo-edit"
    with pytest.raises(ValueError, match="no committed candidates policy 'ppo_edit_binance'.*ppo_candidates_binance"):
        make("ppo@ppo_edit_binance")  # an edit policy is not a candidates policy
    with pytest.raises(ValueError, match="searcher 'random' has no variants"):
        make("random@fast")
    with pytest.raises(SystemExit):
        compare.main(["--searcher", "ppo@missing", "--quick"])
    assert "no committed candidates policy 'missing'" in capsys.readouterr().err


@pytest.mark.parametrize("design", ["candidates", "edit"])
def test_held_out_variant_gives_every_real_instance_a_policy_that_never_saw_it(design):
    """``ppo@held-out`` / ``ppo-edit@held-out``: each real-v1 instance gets a committed policy of the design for
    which it is a test instance (the leave-one-venue-out partner), the design's default where that qualifies."""
    from policies.ppo import DEFAULT_POLICY, EDIT_POLICY, PRETRAINED, held_out_policy, pretrain_role
    from instances.suite import load_suite

    default = DEFAULT_POLICY if design == "candidates" else EDIT_POLICY
    chosen = {}
    for instance in load_suite("real-v1").instances:
        path = held_out_policy(design, instance.id, default)
        meta = json.loads(path.with_suffix(".json").read_text())
        assert meta["action_design"] == design and pretrain_role(meta, instance.id) == "test", instance.id
        chosen[instance.id] = path.stem
    assert {chosen[i] for i in chosen if i.startswith("bybit")} == {default.stem}  # trained on Binance
    assert default.stem not in {chosen[i] for i in chosen if i.startswith("binance")}
    assert make(("ppo" if design == "candidates" else "ppo-edit") + "@held-out").options == {"held_out": True}
    assert held_out_policy(design, "", default) == default  # an instance outside every split: unseen by all
    assert PRETRAINED in default.parents


@pytest.mark.parametrize("name", ["candidates-ucb", "edit-fresh-or-climb"])
def test_fixed_rule_searchers_spend_the_budget_exactly_and_are_deterministic(name):
    problem = load_tasks("synthetic-v1", "test_tasks")[0]

    def once(seed: int):
        objective = Objective(problem, 12, searcher=name, seed=seed)
        searcher = make(name)
        run(searcher, objective, seed)
        assert objective.used == 12 and searcher.stats["policy_decisions"] > 0
        assert searcher.stats["rule"] in ablation.fixed_rules(searcher.design, len(problem.space), 3, 11, True)
        return [(r.params, r.score) for r in objective.history]

    first = once(0)
    assert first == once(0) and len({str(p) for p, _ in first}) == 12  # no configuration evaluated twice


@pytest.mark.parametrize("name", ["candidates-ucb", "edit-fresh-or-climb", "ppo-edit"])
def test_a_killed_policy_run_resumes_from_the_store_exactly_as_if_uninterrupted(name, tiny_edit, tmp_path):
    """The full comparison stops and resumes its workers between sessions: a resumed run must replay the stored
    evaluations and then propose what the uninterrupted run proposed."""
    problem = load_tasks("synthetic-v1", "test_tasks")[0]
    options = {"policy_path": str(tiny_edit[0])} if name == "ppo-edit" else {}

    def store() -> TrialStore:
        return TrialStore(f"journal:{tmp_path}/trials.log", "exp", name, 0, problem.space)

    with pytest.raises(KeyboardInterrupt):
        run(make(name, **options), Objective(DiesAt(problem, at=9), 16, searcher=name, seed=0, store=store()), 0)
    resumed = Objective(problem, 16, searcher=name, seed=0, store=store())
    assert resumed.used == 8
    run(make(name, **options), resumed, 0)
    whole = Objective(problem, 16, searcher=name, seed=0)
    run(make(name, **options), whole, 0)
    assert [(r.params, r.score) for r in resumed.history] == [(r.params, r.score) for r in whole.history]
