"""stats (suite statistics) and runs.plots (figures): formulas, edge cases, determinism, layout."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from env.records import TrialRecord
import stats as S
from runs import plots


def _curve(scores) -> np.ndarray:
    return np.maximum.accumulate(np.asarray(scores, dtype=float))


def _suite(n_instances=8, seeds=3, budget=40, effects=None, seed=0):
    """Synthetic suite: a pool of N(0,1) scores with 10% rejections; searcher curves shifted by ``effects``."""
    rng = np.random.default_rng(seed)
    effects = effects or {"random": 0.0, "good": 0.8, "bad": -0.8}
    out = []
    for i in range(n_instances):
        pool = rng.normal(size=200)
        pool[rng.random(200) < 0.1] = -np.inf
        curves = {name: {k: _curve(np.where(rng.random(budget) < 0.1, -np.inf, rng.normal(shift, 1, budget)))
                         for k in range(seeds)} for name, shift in effects.items()}
        out.append(S.InstanceResults(f"inst{i:02d}", curves, pool))
    return out


# --- expected best of random search ------------------------------------------------------------

def test_expected_best_equals_the_stated_sum_and_a_monte_carlo_estimate():
    rng = np.random.default_rng(3)
    pool = np.concatenate([rng.normal(size=57), [0.5, 0.5, 0.5], np.full(10, -3.0)])  # ties and a floor block
    budgets = [1, 3, 10, 50]
    got = S.expected_best_of_random(pool, budgets)
    s, n = np.sort(pool), pool.size
    k = np.arange(1, n + 1)
    for b, value in zip(budgets, got):
        direct = np.sum(s * ((k / n) ** b - ((k - 1) / n) ** b))
        assert value == pytest.approx(direct, abs=1e-12)
        draws = pool[rng.integers(0, n, size=(40_000, b))].max(axis=1)
        assert abs(value - draws.mean()) < 4 * draws.std() / math.sqrt(draws.size) + 1e-12
    assert got[0] == pytest.approx(pool.mean())
    assert np.all(np.diff(got) >= 0) and got[-1] <= pool.max()


def test_expected_best_of_a_constant_pool_is_that_constant_exactly():
    assert np.all(S.expected_best_of_random(np.full(7, 1.2345), [1, 5, 500]) == 1.2345)
    with pytest.raises(ValueError):
        S.expected_best_of_random(np.array([1.0, -np.inf]), 3)
    with pytest.raises(ValueError):
        S.expected_best_of_random(np.array([]), 3)


# --- normalisation -----------------------------------------------------------------------------

def test_normalised_score_is_one_at_the_optimum_and_zero_at_random_expectation():
    pool = np.array([0.0, 1.0])
    r4 = 1.0 - 0.5 ** 4  # E[max of 4 draws from {0, 1}]
    inst = S.InstanceResults("a", {"s": {0: np.array([0.0, 0.5, 2.0, 2.0]), 1: np.array([r4] * 4)}}, pool, optimum=2.0)
    norm = S.normalise_instance(inst, [4])
    assert norm.excluded is None
    assert norm.random_best[0] == pytest.approx(r4)
    assert norm.at("s", 4) == pytest.approx([1.0, 0.0])


def test_neg_inf_is_scored_at_the_floor_and_never_becomes_nan():
    pool = np.array([-np.inf, 0.0, 1.0, 2.0])
    inst = S.InstanceResults("a", {"s": {0: np.array([-np.inf, -np.inf]), 1: np.array([-np.inf, 3.0])}}, pool,
                             floor=-5.0)
    norm = S.normalise_instance(inst, [1, 2])
    assert norm.floor == -5.0 and norm.optimum == 3.0
    r = S.expected_best_of_random(np.array([-5.0, 0.0, 1.0, 2.0]), [1, 2])
    assert norm.scores["s"][0] == pytest.approx((-5.0 - r) / (3.0 - r))
    assert norm.scores["s"][1] == pytest.approx([(-5.0 - r[0]) / (3.0 - r[0]), 1.0])
    assert np.all(np.isfinite(norm.scores["s"]))


def test_all_neg_inf_pool_uses_the_floor_and_all_neg_inf_instance_is_excluded():
    inst = S.InstanceResults("a", {"s": {0: np.array([-np.inf, 1.0]), 1: np.array([-np.inf, -np.inf])}},
                             np.full(50, -np.inf), floor=-1.0)
    norm = S.normalise_instance(inst, [2])
    assert norm.excluded is None and norm.random_best[0] == -1.0
    assert norm.at("s", 2) == pytest.approx([1.0, 0.0])  # -inf at the floor = random's expectation here
    nothing = S.InstanceResults("b", {"s": {0: np.full(3, -np.inf)}}, np.full(9, -np.inf))
    out = S.normalise_instance(nothing, [3])
    assert out.excluded and "no finite score" in out.excluded and out.scores == {}


def test_flat_instance_is_excluded_with_a_reason_and_inconsistent_optimum_raises():
    flat = S.InstanceResults("flat", {"s": {0: np.array([1.0, 1.0])}}, np.full(20, 1.0))
    out = S.normalise_instance(flat, [1, 2])
    assert out.excluded and "flat instance" in out.excluded
    assert S.normalise_instance(S.InstanceResults("e", {}, np.array([])), 1).excluded == "empty random pool"
    with pytest.raises(ValueError, match="below an observed score"):
        S.normalise_instance(S.InstanceResults("x", {"s": {0: np.array([5.0])}}, np.array([0.0]), optimum=4.0), 1)
    with pytest.raises(ValueError, match="NaN"):
        S.normalise_instance(S.InstanceResults("x", {"s": {0: np.array([np.nan])}}, np.array([0.0])), 1)


def test_short_curves_carry_their_last_value_and_raw_scores_are_accumulated():
    inst = S.InstanceResults("a", {"s": {0: np.array([0.0, 2.0, 1.0])}}, np.array([0.0, 1.0]), optimum=2.0)
    norm = S.normalise_instance(inst, [3, 10])
    assert norm.at("s", 10) == pytest.approx([1.0])
    assert norm.at("s", 3) == pytest.approx([1.0])


# --- bootstrap, IQM, determinism ---------------------------------------------------------------

def test_iqm_is_scipy_trim_mean_of_the_per_instance_seed_means():
    rng = np.random.default_rng(0)
    groups = [rng.normal(size=rng.integers(1, 6)) for _ in range(13)]
    means = np.array([g.mean() for g in groups])
    out = S.bootstrap_aggregates(groups, reps=50, seed=1)
    assert out["iqm"] == pytest.approx(sps.trim_mean(means, 0.25))
    assert out["mean"] == pytest.approx(means.mean())
    assert out["n_instances"] == 13 and out["n_runs"] == sum(g.size for g in groups)
    assert S.iqm([1, 2, 3, 4, 100, 200, -50, 0]) == pytest.approx(sps.trim_mean([1, 2, 3, 4, 100, 200, -50, 0], 0.25))


def test_hierarchical_bootstrap_ci_covers_the_truth_on_synthetic_data():
    rng = np.random.default_rng(42)
    truth, hits_mean, hits_iqm, trials = 0.3, 0, 0, 60
    for t in range(trials):
        effects = rng.normal(truth, 0.2, size=20)  # per-instance effect, symmetric around the truth
        groups = [rng.normal(mu, 0.3, size=5) for mu in effects]
        out = S.bootstrap_aggregates(groups, reps=400, seed=t)
        hits_mean += out["mean_ci"][0] <= truth <= out["mean_ci"][1]
        hits_iqm += out["iqm_ci"][0] <= truth <= out["iqm_ci"][1]
    assert hits_mean / trials >= 0.85 and hits_iqm / trials >= 0.85
    # and the interval is not trivially wide: one with 4x the instances is about half as wide
    few = S.bootstrap_aggregates([rng.normal(rng.normal(0, 0.2), 0.3, 5) for _ in range(10)], reps=400)
    many = S.bootstrap_aggregates([rng.normal(rng.normal(0, 0.2), 0.3, 5) for _ in range(40)], reps=400)
    assert np.diff(many["mean_ci"])[0] < 0.75 * np.diff(few["mean_ci"])[0]


def test_bootstrap_resamples_seeds_within_instances():
    """A single instance: only seed noise is left, so the CI has width > 0 (and 0 with one seed)."""
    out = S.bootstrap_aggregates([np.array([0.0, 1.0, 2.0, 3.0])], reps=300)
    assert out["mean_ci"][0] < 1.5 < out["mean_ci"][1]
    assert S.bootstrap_aggregates([np.array([2.0])], reps=50)["mean_ci"] == [2.0, 2.0]


def test_aggregate_table_is_byte_identical_for_the_same_seed_and_order_free():
    suite = _suite()
    first = json.dumps(S.json_safe(S.aggregate_table(suite, [10, 40], reps=200, seed=7).to_json()), allow_nan=False)
    again = json.dumps(S.json_safe(S.aggregate_table(suite[::-1], [40, 10], reps=200, seed=7).to_json()), allow_nan=False)
    other = json.dumps(S.json_safe(S.aggregate_table(suite, [10, 40], reps=200, seed=8).to_json()), allow_nan=False)
    assert first == again
    assert first != other


def test_aggregate_table_has_the_keys_the_report_needs_and_finds_the_clear_winner():
    suite = _suite(n_instances=10) + [S.InstanceResults("zz-empty", {"good": {0: np.full(3, -np.inf)}},
                                                         np.full(5, -np.inf))]
    table = S.aggregate_table(suite, [10, 40], reps=300)
    assert table.main_budget == 40 and table.n_instances == 10
    assert "zz-empty" in table.excluded
    agg = table.aggregate
    assert set(agg) == {"bad", "good", "random"}
    for row in agg.values():
        assert row.iqm_ci[0] <= row.iqm <= row.iqm_ci[1]
        assert set(row.by_budget) == {10, 40} and row.by_budget[40].iqm == row.iqm
    assert agg["good"].mean_rank < agg["random"].mean_rank < agg["bad"].mean_rank
    assert agg["random"].mean_ci[0] < 0 < agg["random"].mean_ci[1]  # random ~ its own expectation
    assert table.friedman_p is not None and table.friedman_p < 0.01
    assert table.cd == pytest.approx(S.nemenyi_cd(3, 10))
    verdicts = {(p.a, p.b): p.verdict for p in table.pairwise}
    assert verdicts[("bad", "good")] == "good beats bad"
    assert verdicts[("good", "random")] == "good beats random"
    document = table.to_json()  # summary.json's layout: budgets as string keys, the report's keys
    assert set(document["aggregate"]["good"]["by_budget"]) == {"10", "40"}
    assert {"iqm", "iqm_ci", "mean", "mean_ci", "mean_rank", "n_instances", "n_runs", "by_budget"} == set(
        document["aggregate"]["good"])
    text = json.dumps(S.json_safe(document), allow_nan=False)
    assert json.dumps(S.json_safe(S.SuiteSummary.from_json(json.loads(text)).to_json()), allow_nan=False) == text


def test_holm_over_the_baseline_family_corrects_only_the_comparisons_with_the_baseline():
    suite = _suite(n_instances=10)
    table = S.aggregate_table(suite, [40], reps=100, baseline="random")
    rows = {(p.a, p.b): p for p in table.pairwise}
    family = [rows[("bad", "random")], rows[("good", "random")]]
    assert [r.wilcoxon_holm_baseline_p for r in family] == pytest.approx(S.holm([r.wilcoxon_p for r in family]))
    assert rows[("bad", "good")].wilcoxon_holm_baseline_p is None
    for r in family:  # a smaller family never corrects more than the family of every pair
        assert r.wilcoxon_p <= r.wilcoxon_holm_baseline_p <= r.wilcoxon_holm_p
    assert table.settings["baseline"] == "random" == table.baseline
    unnamed = S.aggregate_table(suite, [40], reps=100)
    assert all(p.wilcoxon_holm_baseline_p is None for p in unnamed.pairwise)


def test_few_instances_or_no_effect_gives_the_data_cannot_tell():
    same = _suite(n_instances=12, effects={"a": 0.0, "b": 0.0}, seed=5)
    row = S.aggregate_table(same, [40], reps=300).pairwise[0]
    assert row.diff_iqm_ci[0] < 0 < row.diff_iqm_ci[1]
    assert row.verdict == S.VERDICT_CANNOT_TELL
    few = _suite(n_instances=3, effects={"a": 0.0, "b": 2.0}, seed=5)
    assert S.aggregate_table(few, [40], reps=200).pairwise[0].verdict == S.VERDICT_CANNOT_TELL


# --- paired differences, probability of improvement, profiles ----------------------------------

def test_verdict_rules():
    assert S.verdict([0.1, 0.5], "tpe", "random") == "tpe beats random"
    assert S.verdict([-0.5, -0.1], "tpe", "random") == "random beats tpe"
    assert S.verdict([-0.1, 0.2], "tpe", "random") == "the data cannot tell"
    assert S.verdict([0.0, 0.3]) == "the data cannot tell"  # touching zero is not excluding it
    assert S.verdict([math.nan, 1.0]) == "the data cannot tell"
    assert S.verdict([0.1, 0.5], n_instances=4) == "the data cannot tell"
    assert S.verdict([0.1, 0.5], n_instances=5) == "A beats B"


def test_paired_difference_is_per_instance_seed_mean_difference():
    a = [np.array([1.0, 3.0]), np.array([0.0]), np.array([5.0, 5.0, 5.0])]
    b = [np.array([1.0]), np.array([1.0, 2.0]), np.array([4.0])]
    out = S.paired_difference(a, b, reps=300)
    assert out["differences"] == pytest.approx([1.0, -1.5, 1.0])
    assert out["mean"] == pytest.approx(0.5 / 3)
    assert out["mean_ci"][0] <= out["mean"] <= out["mean_ci"][1]


def test_probability_of_improvement_is_mann_whitney_averaged_over_instances():
    a = [np.array([1.0, 2.0]), np.array([1.0]), np.array([0.3, 0.1, 0.7])]
    b = [np.array([1.5, 0.0]), np.array([1.0]), np.array([0.2, 0.9])]
    per = [sps.mannwhitneyu(x, y).statistic / (x.size * y.size) for x, y in zip(a, b)]
    out = S.probability_of_improvement(a, b, reps=300)
    assert per[:2] == pytest.approx([0.75, 0.5])
    assert out["p"] == pytest.approx(np.mean(per))
    assert 0 <= out["ci"][0] <= out["p"] <= out["ci"][1] <= 1


def test_performance_profile_is_the_instance_averaged_share_above_tau():
    groups = [np.array([0.0, 1.0]), np.array([0.5, 0.5, 0.5, 2.0])]
    out = S.performance_profile(groups, taus=[-1.0, 0.25, 0.75, 3.0], reps=200)
    assert out["profile"] == pytest.approx([1.0, (0.5 + 1.0) / 2, (0.5 + 0.25) / 2, 0.0])
    assert np.all(out["lo"] <= out["profile"] + 1e-12) and np.all(out["profile"] <= out["hi"] + 1e-12)


# --- ranks and tests ---------------------------------------------------------------------------

RANK_TABLE = np.array([[3.0, 2.0, 1.0], [3.0, 1.0, 2.0], [2.0, 2.0, 1.0], [1.0, 2.0, 3.0]])


def test_mean_ranks_with_ties_by_hand():
    assert S.mean_ranks(RANK_TABLE) == pytest.approx([(1 + 1 + 1.5 + 3) / 4, (2 + 3 + 1.5 + 2) / 4, (3 + 2 + 3 + 1) / 4])


def test_friedman_statistic_by_hand_and_undefined_cases():
    table = np.array([[9.0, 5, 1], [8, 6, 2], [7, 1, 4], [3, 9, 1], [6, 5, 4]])  # no ties
    n, k = table.shape
    ranks = sps.rankdata(-table, axis=1).sum(axis=0)
    chi2 = 12 / (n * k * (k + 1)) * np.sum(ranks ** 2) - 3 * n * (k + 1)
    assert S.friedman_p(table) == pytest.approx(sps.chi2.sf(chi2, k - 1))
    assert S.friedman_p(table[:, :2]) is None
    assert S.friedman_p(table[:1]) is None
    assert S.friedman_p(np.ones((4, 3))) is None


def test_nemenyi_q_matches_demsars_table_and_cd_formula():
    demsar = {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 7: 2.949, 8: 3.031, 9: 3.102, 10: 3.164}
    for k, q in demsar.items():
        assert S.nemenyi_q(k) == pytest.approx(q, abs=1.5e-3)
    assert S.nemenyi_cd(3, 4) == pytest.approx(S.nemenyi_q(3) * math.sqrt(3 * 4 / (6 * 4)))
    assert S.nemenyi_cd(1, 10) is None and S.nemenyi_cd(3, 0) is None


def test_cd_groups_join_searchers_within_the_critical_difference():
    ranks = {"a": 1.0, "b": 1.5, "c": 2.4, "d": 3.9}
    assert S.cd_groups(ranks, 1.0) == [["a", "b"], ["b", "c"]]
    assert S.cd_groups(ranks, 5.0) == [["a", "b", "c", "d"]]
    assert S.cd_groups(ranks, None) == []


def test_autorank_agrees_on_ranks_and_cd_when_installed():
    pd = pytest.importorskip("pandas")
    autorank = pytest.importorskip("autorank")
    rng = np.random.default_rng(0)
    table = rng.normal(size=(12, 4)) + np.array([0.0, 0.5, 1.0, 1.5])
    result = autorank.autorank(pd.DataFrame(table, columns=list("abcd")), verbose=False, force_mode="nonparametric")
    assert result.cd == pytest.approx(S.nemenyi_cd(4, 12), rel=1e-4)  # autorank: q from a 3-decimal table
    assert dict(result.rankdf["meanrank"]) == pytest.approx(dict(zip("abcd", S.mean_ranks(table))))


def test_holm_on_a_known_example():
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert S.holm([0.5, None, 0.01]) == [pytest.approx(0.5), None, pytest.approx(0.02)]
    assert S.holm([0.04, 0.03]) == pytest.approx([0.06, 0.06])  # monotone: never below a smaller p's value
    assert S.holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert S.holm([]) == []


def test_holm_agrees_with_statsmodels_when_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = np.random.default_rng(2).uniform(0, 0.2, size=9)
    assert S.holm(list(p)) == pytest.approx(multitest.multipletests(p, method="holm")[1])


def test_wilcoxon_p_of_zero_differences_and_of_too_few():
    assert S.wilcoxon_p([0.0, 0.0, 0.0]) == 1.0 and S.wilcoxon_p([1.0]) is None


# --- runtime ECDF, holdout ---------------------------------------------------------------------

def test_runtime_ecdf_targets_and_fractions_by_hand():
    inst = S.InstanceResults("a", {"s": {0: np.array([-np.inf, 1.0, 1.5, 2.0])}}, np.array([0.0, 1.0]), optimum=2.0)
    norm = S.normalise_instance(inst, [4])
    r4 = 1 - 0.5 ** 4
    assert S.ecdf_targets(norm, (0.0, 0.5, 1.0)) == pytest.approx([r4, r4 + 0.5 * (2 - r4), 2.0])
    out = S.runtime_ecdf([inst], 4, levels=(0.0, 0.5, 1.0))
    assert out["searchers"]["s"]["ecdf"] == pytest.approx([0.0, 1 / 3, 2 / 3, 1.0])
    assert S.runtimes(np.array([-np.inf, -np.inf]), np.array([-1e300])).tolist() == [math.inf]


def test_holdout_summary_counts_rejections_and_keeps_them_out_of_means():
    results = [
        S.HoldoutResults("i1", 0.5, {"s": {0: (2.0, 1.0), 1: (3.0, -np.inf), 2: (2.0, math.nan)}}),
        S.HoldoutResults("i2", -np.inf, {"s": {0: (1.0, 0.5)}}),
        S.HoldoutResults("i3", 1.0, {"s": {0: (-np.inf, -np.inf), 1: (4.0, 2.0)}}),
    ]
    out = S.holdout_summary(results, reps=100)["s"]
    assert out["n_pairs"] == 6 and out["n_missing"] == 1 and out["n_rejected_holdout"] == 2
    assert out["rejected_share"] == pytest.approx(2 / 5)
    assert out["n_default_rejected"] == 1
    assert out["decay"]["n_instances"] == 3
    assert out["decay"]["mean"] == pytest.approx(np.mean([-1.0, -0.5, -2.0]))
    assert out["lift"]["n_instances"] == 2 and out["lift"]["mean"] == pytest.approx(np.mean([0.5, 1.0]))
    assert out["n_unscaled"] == 0  # no instance has a scale: raw units everywhere
    json.dumps(S.json_safe(out), allow_nan=False)


def test_holdout_summary_divides_by_the_scale_and_leaves_unscaled_instances_out_of_the_means():
    results = [
        S.HoldoutResults("big", 10.0, {"s": {0: (30.0, 20.0)}}, scale=20.0),   # lift 0.5, decay -0.5
        S.HoldoutResults("small", 0.1, {"s": {0: (0.3, 0.2)}}, scale=0.2),     # lift 0.5, decay -0.5
        S.HoldoutResults("flat", 0.0, {"s": {0: (5.0, -np.inf), 1: (5.0, 100.0)}}),  # no scale: counted only
    ]
    out = S.holdout_summary(results, reps=100)["s"]
    assert out["lift"]["n_instances"] == 2 and out["lift"]["iqm"] == pytest.approx(0.5)
    assert out["decay"]["mean"] == pytest.approx(-0.5) and out["lift"]["iqm_ci"] == pytest.approx([0.5, 0.5])
    assert out["n_unscaled"] == 1 and out["n_rejected_holdout"] == 1 and out["rejected_share"] == pytest.approx(1 / 4)


def test_in_sample_scales_is_the_normalised_denominator():
    inst = S.InstanceResults("a", {"s": {0: np.array([0.0, 1.0, 2.0])}}, np.array([0.0, 1.0]), optimum=3.0)
    flat = S.InstanceResults("f", {"s": {0: np.array([1.0, 1.0])}}, np.array([1.0, 1.0]))
    norm = S.normalise_all([inst, flat], [3])
    scales = S.in_sample_scales([inst, flat], 3)
    assert set(scales) == {"a"}  # the flat instance is excluded: no scale
    assert scales["a"] == pytest.approx(3.0 - norm[0].random_best[0])
    assert S.normalise_instance(inst, [3]).at("s", 3)[0] == pytest.approx((2.0 - norm[0].random_best[0]) / scales["a"])


# --- strict JSON -------------------------------------------------------------------------------

@dataclass
class _Row:
    value: float
    items: tuple


def test_json_safe_makes_strict_json():
    data = {np.int64(3): np.float32("nan"), "a": [np.inf, -np.inf, np.float64(1.5), np.int32(2), np.bool_(True)],
            "arr": np.array([[1.0, np.nan], [-np.inf, 2.0]]), "row": _Row(math.nan, (1, np.inf)),
            "path": Path("/x/y"), "set": {3, 1}, "none": None, math.inf: "key", "zero_d": np.array(4.0)}
    text = json.dumps(S.json_safe(data), allow_nan=False)
    back = json.loads(text)
    assert back["3"] is None and back["a"] == ["inf", "-inf", 1.5, 2, True]
    assert back["arr"] == [[1.0, None], ["-inf", 2.0]] and back["row"] == {"value": None, "items": [1, "inf"]}
    assert back["path"] == "/x/y" and back["set"] == [1, 3] and back["inf"] == "key" and back["zero_d"] == 4.0


# --- plots -------------------------------------------------------------------------------------

def _records(name, seed, scores):
    return [TrialRecord(i, name, seed, {}, float(x)) for i, x in enumerate(scores)]


def _title_inside(fig) -> bool:
    fig.canvas.draw()
    box = fig.axes[0].title.get_window_extent()
    return box.x0 >= 0 and box.x1 <= fig.bbox.width and box.y1 <= fig.bbox.height and box.width > 0


def test_best_so_far_plot_draws_neg_inf_in_a_band_and_keeps_long_titles_inside(tmp_path):
    runs = {"phased": {k: _records("phased", k, [-np.inf] * (10 + k) + [0.2] * 10) for k in range(3)},
            "gp": {k: _records("gp", k, [-np.inf] + list(np.linspace(1, 2, 19))) for k in range(3)},
            "tpe": {}, "ppo": {0: []}}
    title = "A deliberately long title that would be clipped at both edges of a seven-inch figure " * 3
    fig = plots.best_so_far_figure(runs, 20, title=title)
    try:
        ax = fig.axes[0]
        assert _title_inside(fig) and "\n" in ax.get_title()
        assert [p for p in ax.patches if p.get_gid() == plots.NEG_INF_BAND_GID]
        assert any(t.get_text() == plots.NEG_INF_LABEL for t in ax.texts)
        assert "-inf" in [t.get_text() for t in ax.get_yticklabels()]
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["phased (n=3)", "gp (n=3)"]  # only searchers that ran
        phased = ax.get_lines()[0].get_ydata()
        assert phased[0] < 0.2 - 0.05 * (2 - 0.2) and phased[-1] == pytest.approx(0.2)  # -inf below the finite range
    finally:
        plots.plt.close(fig)
    path = plots.best_so_far_plot(runs, 20, tmp_path / "bsf.png", title=title)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    fig = plots.best_so_far_figure({"gp": {0: _records("gp", 0, [1.0, 2.0])}}, 2)  # nothing infeasible: no band
    try:
        assert not [p for p in fig.axes[0].patches if p.get_gid() == plots.NEG_INF_BAND_GID]
    finally:
        plots.plt.close(fig)


def test_holdout_figure_draws_rejected_holdouts_in_the_minus_inf_band():
    fig = plots.holdout_figure({"random": [(0.5, -np.inf), (0.4, 0.2), (0.3, math.nan)], "gp": []})
    try:
        assert [p for p in fig.axes[0].patches if p.get_gid() == plots.NEG_INF_BAND_GID]
        assert _title_inside(fig)
    finally:
        plots.plt.close(fig)


def test_suite_plots_write_pngs_with_titles_inside(tmp_path):
    suite = _suite(n_instances=6, budget=20)
    table = S.aggregate_table(suite, [20], reps=100)
    norm = S.normalise_all(suite, [20])
    ranks = {s: v.mean_rank for s, v in table.aggregate.items()}
    figures = [
        plots.cd_diagram_figure(ranks, table.cd, table.cd_groups),
        plots.performance_profile_figure({s: S.performance_profile([n.at(s, 20) for n in norm], reps=50)
                                          for s in S.searchers_of(norm)}),
        plots.normalised_vs_budget_figure(S.normalised_vs_budget(suite, [5, 10, 20], reps=50)),
        plots.suite_runtime_ecdf_figure(S.runtime_ecdf(suite, 20)),
        plots.holdout_instances_figure([S.HoldoutResults("i", 0.0, {"good": {0: (1.0, -np.inf), 1: (1.0, 0.5)}})]),
    ]
    try:
        assert all(_title_inside(fig) for fig in figures)
    finally:
        for fig in figures:
            plots.plt.close(fig)
    assert plots.cd_diagram_plot(ranks, table.cd, tmp_path / "cd.png", table.cd_groups).exists()


def test_holdout_summary_holm_corrects_the_lift_test_over_the_searchers():
    """Every searcher's lift is +1 on 6 instances (Wilcoxon p = 2/64 = 0.031 each); with three searchers in the
    family Holm multiplies the smallest by 3 (0.094): no longer below 0.05, though each CI excludes zero."""
    results = [S.HoldoutResults(f"i{k}", 0.0, {s: {0: (2.0, 1.0 + 0.01 * k)} for s in ("a", "b", "c")}, scale=1.0)
               for k in range(6)]
    out = S.holdout_summary(results, reps=200)
    for s in ("a", "b", "c"):
        assert out[s]["lift"]["iqm_ci"][0] > 0
        assert out[s]["lift"]["wilcoxon_p"] == pytest.approx(2 / 64)
        assert out[s]["lift"]["wilcoxon_holm_p"] == pytest.approx(3 * 2 / 64)
    alone = S.holdout_summary([S.HoldoutResults(r.instance, 0.0, {"a": r.winners["a"]}, scale=1.0) for r in results],
                              reps=200)
    assert alone["a"]["lift"]["wilcoxon_holm_p"] == pytest.approx(2 / 64)  # a family of one: no correction


def test_pool_rank_is_the_mid_rank_share_and_ties_rejections_together():
    pool = np.array([-np.inf, -np.inf, 0.0, 1.0, 2.0, np.nan])  # NaN (missing) dropped: 5 scores
    assert S.pool_rank(1.0, pool) == pytest.approx((3 + 0.5) / 5)
    assert S.pool_rank(-np.inf, pool) == pytest.approx(0.5 * 2 / 5)  # with the two rejections
    assert S.pool_rank(5.0, pool) == 1.0 and S.pool_rank(-1.0, pool) == pytest.approx(2 / 5)
    assert math.isnan(S.pool_rank(math.nan, pool)) and math.isnan(S.pool_rank(1.0, []))


def test_holdout_ranks_put_every_scored_winner_on_one_scale_rejections_included():
    """Two instances whose holdout scores differ by 100x give the same ranks; a winner rejected on the holdout enters
    the rank lift (at the rank of the pool's rejections) while the score lift leaves it out."""
    holdout_pool, search_pool = np.array([-np.inf, 1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0])
    results = [S.HoldoutResults("small", 1.0, {"s": {0: (5.0, 2.5), 1: (5.0, -np.inf)}}, scale=1.0,
                                holdout_pool=holdout_pool, search_pool=search_pool),
               S.HoldoutResults("big", 100.0, {"s": {0: (500.0, 250.0), 1: (500.0, -np.inf)}}, scale=100.0,
                                holdout_pool=holdout_pool * 100, search_pool=search_pool * 100),
               S.HoldoutResults("none", 1.0, {"s": {0: (5.0, 2.5)}}, scale=1.0)]  # no pools: no ranks
    out = S.holdout_summary(results, reps=100)["s"]
    # rank(2.5) = 3/4, rank(-inf) = 1/8, defaults rank(1.0) = 3/8; in-sample 5.0 is above the whole pool: 1
    assert out["lift_rank"]["n_instances"] == 2
    assert out["lift_rank"]["mean"] == pytest.approx(np.mean([3 / 4 - 3 / 8, 1 / 8 - 3 / 8]))
    assert out["decay_rank"]["mean"] == pytest.approx(np.mean([3 / 4 - 1, 1 / 8 - 1]))
    assert out["lift"]["mean"] == pytest.approx(1.5)  # the rejected winners are not in the score lift
    assert "wilcoxon_holm_p" in out["lift_rank"] and "wilcoxon_holm_p" in out["decay_rank"]
