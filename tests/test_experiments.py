"""Joint-space experiments: the interaction measure, the survivors universe, one experiment end to end."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace

import numpy as np
import pytest

import policies  # noqa: F401  (registers the searchers)
from data import DataError, load_universe, survivors
from runs.experiments import h_statistic, main, median_lift
from strategy.space import SearchSpace
from surrogate.gp import Prediction


@dataclass
class _Function:
    """A known response surface in the surrogate's interface (``space``, ``predict``)."""

    space: SearchSpace
    f: object

    def predict(self, x: np.ndarray) -> Prediction:
        mean = self.f(np.atleast_2d(x))
        return Prediction(mean=mean, std=np.zeros_like(mean), feasible=np.ones_like(mean))


def test_h_statistic_separates_additive_from_interacting_axes():
    space = SearchSpace("core")
    i, j = space.names.index("bull.r2_threshold"), space.names.index("bear.r2_threshold")
    background = space.snap(np.random.default_rng(0).random((32, len(space))))
    additive = _Function(space, lambda x: 2 * x[:, i] + np.sin(3 * x[:, j]))
    product = _Function(space, lambda x: (x[:, i] - 0.5) * (x[:, j] - 0.5))
    assert h_statistic(additive, i, j, background) < 1e-6
    assert h_statistic(product, i, j, background) > 0.9


def test_the_lift_over_the_phased_sweep_keeps_infeasible_runs_as_minus_infinity():
    inf = math.inf
    assert median_lift([0.5, 0.7, 0.9], [0.1, 0.2, 0.3]) == pytest.approx(0.5)
    assert median_lift([0.2, 0.3, -inf], [-inf, -inf, -inf]) == inf  # only the searcher found a feasible one
    assert median_lift([-inf, -inf, 0.1], [0.4, 0.4, 0.4]) == -inf  # only the sweep did
    assert math.isnan(median_lift([-inf], [-inf]))  # neither did
    assert math.isnan(median_lift([0.3], []))  # the sweep did not run


def test_survivors_universe_keeps_only_tokens_listed_on_the_last_day():
    full = load_universe("synthetic-small")
    alive = load_universe("synthetic-small:survivors")
    assert set(alive.tokens) == {t for t, on in zip(full.tokens, full.listed[-1]) if on}
    assert alive.n_tokens < full.n_tokens  # the default draw has delistings
    assert set(full.meta["delisted"]).isdisjoint(alive.tokens)
    assert survivors(alive).tokens == alive.tokens
    with pytest.raises(DataError, match="survivors"):
        load_universe("no-such-universe:survivors")


@pytest.mark.slow
def test_deletion_experiment_writes_a_consistent_report(tmp_path):
    assert main(["deletion", "--universe", "synthetic-small", "--budget", "30", "--seeds", "1", "--searchers", "random",
                 "--out", str(tmp_path), "--name", "del"]) == 0
    folder = tmp_path / "del"
    report = (folder / "report.md").read_text()
    for part in ("**Question.**", "**Set-up.**", "| component |", "**Answer.**"):
        assert part in report
    results = json.loads((folder / "results.json").read_text())
    rows = (folder / "search" / "trials.tsv").read_text().splitlines()
    assert len(rows) == 1 + 30
    header = rows[0].split("\t")
    scores = [float(r.split("\t")[header.index("score")]) for r in rows[1:]]
    best = max(float(results["best_intact"]), float(results["best_deleted"]))
    assert best == max(scores)
    scaled, raw = results["size_matched_scaled"], results["size_matched_difference"]["per_instance"]
    assert scaled["n_unscaled"] == 1 - len(scaled["scales"]) and scaled["per_instance"]  # 30 trials: both sides
    for instance, scale in scaled["scales"].items():  # the raw size-matched difference over the in-sample range
        expected = None if raw[instance] is None else pytest.approx(raw[instance] / scale)
        assert scaled["per_instance"].get(instance) == expected
    assert "Size-matched, in in-sample ranges (the answer's)" in report
    # the components the best deleting trial switches off, read back from its row of trials.tsv
    switches = ("switches.use_bull", "switches.use_bear", "switches.use_ranging", "switches.use_hmm")
    trials = [dict(zip(header, r.split("\t"))) for r in rows[1:]]
    deleting = [t for t in trials if any(t[f"p.{c}"] == "False" for c in switches) and math.isfinite(float(t["score"]))]
    best_deleting = max(deleting, key=lambda t: float(t["score"]))
    (dropped,) = results["dropped_by_best_deleting"].values()
    assert dropped == [c for c in switches if best_deleting[f"p.{c}"] == "False"] and dropped
    assert "| it drops |" in report


@pytest.mark.slow
def test_interactions_experiment_reports_the_lift_over_the_phased_sweep_from_its_trials(tmp_path):
    assert main(["interactions", "--universe", "synthetic-small", "--budget", "16", "--seeds", "1", "--searchers",
                 "phased", "random", "--out", str(tmp_path), "--name", "int", "--jobs", "1"]) == 0
    folder = tmp_path / "int"
    report = (folder / "report.md").read_text()
    assert "| Holm p |" in report and "the data cannot tell" in report  # one instance: never a verdict
    results = json.loads((folder / "results.json").read_text())
    rows = (folder / "search" / "trials.tsv").read_text().splitlines()
    header = rows[0].split("\t")
    best: dict[str, float] = {}
    for row in rows[1:]:
        cells = dict(zip(header, row.split("\t")))
        score = float(cells["score"])
        if math.isfinite(score):
            best[cells["searcher"]] = max(best.get(cells["searcher"], -math.inf), score)
    (lift,) = results["lifts"]["random"].values()
    # the phased sweep's first 16 points are rejected on this draw (its defaults are): the lift is +inf, not n/a
    assert float(lift) == best["random"] - best.get("phased", -math.inf) == math.inf
    lifts = results["summary"]["random"]["normalised_lift"]
    assert lifts["n_instances"] == 1 and lifts["wilcoxon_holm_p"] is None  # Wilcoxon needs 2 instances at least


@pytest.mark.slow
def test_an_experiment_on_an_existing_comparison_is_named_after_it(tmp_path):
    """``--source FOLDER`` analyses a finished comparison without searching; its report folder is named after the
    source (not after the default universe) and finds the same best configuration."""
    assert main(["deletion", "--universe", "synthetic-small", "--budget", "6", "--seeds", "1", "--searchers", "random",
                 "--out", str(tmp_path), "--name", "del"]) == 0
    source = tmp_path / "del" / "search"
    rows_before = (source / "trials.tsv").read_text()
    assert main(["deletion", "--source", str(source), "--out", str(tmp_path)]) == 0
    assert not (tmp_path / "deletion-synthetic").exists()
    again = json.loads((tmp_path / "deletion-search" / "results.json").read_text())
    first = json.loads((tmp_path / "del" / "results.json").read_text())
    assert (again["best_intact"], again["best_deleted"]) == (first["best_intact"], first["best_deleted"])
    assert (source / "trials.tsv").read_text() == rows_before  # nothing searched, nothing appended


def test_rejection_excess_pairs_each_searchers_holdout_rejections_with_the_defaults_on_the_instance():
    from runs.experiments import rejection_excess

    holdout = {
        "a": {"defaults": {"score": "-inf"}, "winners": {"x": {0: {"in_sample": 1.0, "score": "-inf"},
                                                              1: {"in_sample": 1.0, "score": 2.0}}}},
        "b": {"defaults": {"score": 0.5}, "winners": {"x": {0: {"in_sample": 1.0, "score": "-inf"},
                                                           1: {"in_sample": 1.0, "score": None}},
                                                     "y": {0: {"in_sample": 1.0, "score": 0.7}}}},
        "c": {"defaults": {"score": None}, "winners": {"x": {0: {"in_sample": 1.0, "score": "-inf"}}}},
    }
    assert rejection_excess(holdout) == {"x": {"a": -0.5, "b": 1.0}, "y": {"b": 0.0}}


@pytest.mark.slow
def test_generalization_experiment_reports_holdout_rejections_against_the_defaults(tmp_path):
    assert main(["generalization", "--suite", "synthetic-v1", "--instances", "synthetic-v1-03", "--budget", "6",
                 "--seeds", "2", "--searchers", "random", "--out", str(tmp_path), "--name", "gen"]) == 0
    report = (tmp_path / "gen" / "report.md").read_text()
    assert "rejected - defaults rejected: mean [95% CI]" in report and "Rejected on the holdout, against the" in report
    # the suite has a holdout pool: the winners are ranked among its random configurations, and judged by that
    assert "holdout rank - defaults' holdout rank" in report and "(holdout rank among random configurations" in report
    assert "the winners' holdout rank against their in-sample rank: random: the data cannot tell" in report
    results = json.loads((tmp_path / "gen" / "results.json").read_text())
    excess = results["rejection_excess"]["random"]
    assert excess["n_instances"] == 1 and -1.0 <= float(excess["mean"]) <= 1.0
    assert "the data cannot tell (1 instance(s)" in report  # one instance: no claim


def test_size_matched_deletion_difference_removes_the_larger_sets_selection_advantage():
    """Two samples of one distribution: the raw best-minus-best favours the bigger set, the size-matched one not."""
    from runs.experiments import size_matched_difference

    rng = np.random.default_rng(0)
    raw, matched = [], []
    for _ in range(200):
        deleting, intact = rng.normal(size=150), rng.normal(size=10)
        raw.append(deleting.max() - intact.max())
        matched.append(size_matched_difference(deleting, intact)[0])
    assert np.mean(raw) > 0.5  # the selection effect: about E[max of 150] - E[max of 10] = 2.5 - 1.5
    assert abs(np.mean(matched)) < 0.1
    assert size_matched_difference([1.0, 2.0], [0.5]) == (1.5 - 0.5, 1)  # m = 1: the means
    assert size_matched_difference([3.0, 1.0, 2.0], [0.0, 5.0, 4.0]) == (3.0 - 5.0, 3)  # m = n: the maxima
    from stats import expected_best_of_subset
    assert expected_best_of_subset([1.0, 2.0, 3.0], 2) == pytest.approx((2 + 3 + 3) / 3)
    assert size_matched_difference([], [1.0])[1] == 0


def test_the_interaction_gp_is_fitted_to_at_most_the_capped_number_of_trials(monkeypatch):
    """Beyond ``MAX_TRIALS_FOR_SURROGATE`` finite trials the GP sees a seeded subset (the same one every time)."""
    import runs.experiments as experiments
    from env.records import TrialRecord
    from strategy.space import SearchSpace

    space = SearchSpace("joint")
    rng = np.random.default_rng(1)
    records = [TrialRecord(eval_index=i, searcher="random", seed=0, params=space.values(space.sample(rng)),
                           score=float(i) if i % 5 else -math.inf) for i in range(60)]
    fitted: list[np.ndarray] = []

    class Stop(Exception):
        pass

    def fit(self, x, y, like=None):
        fitted.append(np.asarray(y))
        raise Stop

    monkeypatch.setattr(experiments.GPSurrogate, "fit", fit)
    monkeypatch.setattr(experiments, "MAX_TRIALS_FOR_SURROGATE", 20)
    for _ in range(2):
        with pytest.raises(Stop):
            experiments._pair_strengths(space, records)
    assert len(fitted[0]) == 20 and np.array_equal(fitted[0], fitted[1]) and np.all(np.isfinite(fitted[0]))
    monkeypatch.setattr(experiments, "MAX_TRIALS_FOR_SURROGATE", 600)
    with pytest.raises(Stop):
        experiments._pair_strengths(space, records)
    assert len(fitted[2]) == 48  # all the finite trials below the cap


@pytest.mark.slow
def test_survivorship_experiment_rescores_the_survivors_winners_point_in_time(tmp_path):
    """synthetic-small delists 9 of its 39 tokens: the experiment searches both universes and re-scores each
    survivors-only winner on the point-in-time universe (its inflation: in-sample minus that score)."""
    assert main(["survivorship", "--universe", "synthetic-small", "--budget", "4", "--seeds", "1", "--searchers",
                 "random", "--out", str(tmp_path), "--name", "surv"]) == 0
    report = (tmp_path / "surv" / "report.md").read_text()
    assert "| synthetic-small | 39 / 30 |" in report
    assert "on 1 instance(s) and on the 1 survivors-only universe(s)" in report
    results = json.loads((tmp_path / "surv" / "results.json").read_text())
    inflation = results["inflation"]["per_instance"]["synthetic-small"]
    assert inflation == "inf" or math.isfinite(float(inflation))
    assert "the data cannot tell" in report  # one instance: no claim


def test_interaction_strengths_are_the_same_on_one_process_and_on_two_and_after_a_resume(tmp_path, monkeypatch):
    """``--jobs 2`` fits the instances' interaction GPs in parallel, each on one BLAS thread: same H^2 values; the
    fits already made are read back from the experiment folder."""
    import runs.experiments as experiments
    from env.records import TrialRecord
    from strategy.space import SearchSpace

    space = SearchSpace("core")
    records = {}
    for k, name in enumerate(("a", "b")):
        rng = np.random.default_rng(k)
        points = [space.sample(rng) for _ in range(30)]
        records[name] = [TrialRecord(eval_index=i, searcher="random", seed=0, params=space.values(p),
                                     score=float(np.sin(3 * u[0]) * u[1] + u[2]) if i % 6 else -math.inf)
                         for i, (p, u) in enumerate((p, space.encode(p)) for p in points)]
    serial = experiments.pair_strengths_by_instance(space, records, jobs=1)
    parallel = experiments.pair_strengths_by_instance(space, records, jobs=2, cache=tmp_path)
    assert set(serial) == {"a", "b"} and serial["a"] and serial == parallel
    assert serial["a"] != serial["b"]  # each instance its own fit

    # a stopped experiment resumes: finished instances come from the cache, an instance whose trials changed is refit
    fitted = []
    real = experiments._pair_strengths_one_thread
    monkeypatch.setattr(experiments, "_pair_strengths_one_thread", lambda sp, recs: fitted.append(recs) or real(sp, recs))
    assert experiments.pair_strengths_by_instance(space, records, jobs=1, cache=tmp_path) == serial and not fitted
    records["b"][1] = replace(records["b"][1], score=records["b"][1].score + 1.0)
    again = experiments.pair_strengths_by_instance(space, records, jobs=1, cache=tmp_path)
    assert fitted == [records["b"]] and again["a"] == serial["a"] and again["b"] != serial["b"]
    (tmp_path / "a.json").write_text('{"key": "truncated')  # a file cut short: refit, not a crash
    assert experiments.pair_strengths_by_instance(space, records, jobs=1, cache=tmp_path)["a"] == serial["a"]
    assert len(fitted) == 2


def test_a_generalization_verdict_needs_the_family_wise_p_as_well_as_the_ci():
    from runs.experiments import _answer_holm

    agg = {"n_instances": 8}
    assert _answer_holm(agg, [0.1, 0.5], 0.01, "better", "worse") == "better"
    assert _answer_holm(agg, [-0.5, -0.1], 0.01, "better", "worse") == "worse"
    assert _answer_holm(agg, [0.1, 0.5], 0.09, "better", "worse").startswith("the data cannot tell (the CI excludes zero")
    assert _answer_holm(agg, [-0.1, 0.5], 0.001, "better", "worse") == "the data cannot tell (the 95% CI includes zero)"
    assert _answer_holm({"n_instances": 3}, [0.1, 0.5], 0.001, "better", "worse").startswith("the data cannot tell (3")
