"""The ensemble stack: regime detector, meta-allocator, component switches, search space."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from data.candles import Candles
from harness import evaluate
from strategy import PRESETS, STRATEGIES, EnsembleParams, GemParams, ParamError
from strategy.ensemble import SPECIALISTS, _mixture, ensemble_fit, ensemble_portfolio
from strategy.gem import gem_fit, gem_portfolio
from strategy.regime import (
    DETECTORS,
    TREND_DAYS,
    HmmParams,
    StudentTHMM,
    market_index,
    regime_accuracy,
    regime_probabilities,
)
from strategy.space import PHASED_GRIDS, SPACES, SearchSpace

REGIME_ORDER = (2, 0, 1, 2, 0, 1, 2, 0, 1)  # ranging, bull, bear, ...
DRIFT = {0: 0.008, 1: -0.008, 2: 0.0}  # daily log drift per true regime
VOL = {0: 0.025, 1: 0.035, 2: 0.012}


def regime_universe(seed: int = 0, segment: int = 150, tokens: int = 5) -> Candles:
    """Tokens driven by a market factor whose drift and volatility follow known regime blocks."""
    rng = np.random.default_rng(seed)
    regimes = np.repeat(REGIME_ORDER, segment)
    market = np.array([rng.normal(DRIFT[r], VOL[r]) for r in regimes])
    log_returns = market[:, None] + rng.normal(0, 0.01, (regimes.size, tokens))
    close = 100 * np.exp(np.cumsum(log_returns, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    start = np.datetime64("2020-01-01")
    return Candles(dates=np.arange(start, start + regimes.size), tokens=tuple(f"T{i}USDT" for i in range(tokens)),
                   open=open_, high=np.maximum(open_, close) * 1.01, low=np.minimum(open_, close) * 0.99,
                   close=close, volume=np.ones_like(close), regimes=regimes, name="regime-blocks")


@pytest.fixture(scope="module")
def blocks() -> Candles:
    return regime_universe()


# --------------------------------------------------------------------------- regime detector
def test_market_index_is_equal_weight_and_ignores_unlisted(blocks):
    index = market_index(blocks)
    simple = blocks.close[1:] / blocks.close[:-1] - 1.0
    np.testing.assert_allclose(index[1:] / index[:-1] - 1.0, simple.mean(axis=1), atol=1e-12)
    close = blocks.close.copy()
    close[:100, 0] = np.nan  # a late listing must not create a jump
    late = Candles(blocks.dates, blocks.tokens, blocks.open, blocks.high, blocks.low, close, blocks.volume)
    step = np.diff(np.log(market_index(late)))
    assert np.all(np.isfinite(step)) and abs(step[99]) < 0.2


@pytest.mark.parametrize("detector", ["gaussian", "student_t"])
def test_hmm_probabilities_are_filtered_and_causal(blocks, detector):
    params = HmmParams(detector=detector, hmm_refit_interval=10, hmm_min_observations=60)
    full = regime_probabilities(blocks, params)
    first = TREND_DAYS + params.hmm_min_observations - 1
    assert np.isnan(full[:first]).all() and not np.isnan(full[first:]).any()
    np.testing.assert_allclose(full[first:].sum(axis=1), 1.0, atol=1e-9)
    # truncating the data never changes an earlier day: on a refit day, inside an interval, at the end
    for cut in (first + 1, first + 10, first + 37, blocks.n_days - 200):
        early = regime_probabilities(blocks.head(cut), params)
        np.testing.assert_array_equal(early, full[:cut])


def test_hmm_detects_known_regimes(blocks):
    result = regime_accuracy(blocks, HmmParams())
    assert result.accuracy > 0.65
    assert result.accuracy > result.majority_baseline + 0.25
    assert min(result.recall().values()) > 0.5
    assert result.confusion.sum() == result.days


def test_ma200_detector_on_real_btc(shared_data):
    from data.loaders import load_path

    btc = load_path(shared_data / "binance_top50_daily.csv.gz").select(["BTCUSDT", "ETHUSDT"])
    probs = regime_probabilities(btc, HmmParams(detector="ma200"))
    assert set(np.unique(probs[~np.isnan(probs).any(axis=1)])) == {0.0, 1.0}
    on = {str(d): probs[btc.day_index(d)] for d in ("2021-02-15", "2022-06-20")}
    assert on["2021-02-15"].argmax() == 0  # bull
    assert on["2022-06-20"].argmax() == 1  # bear


def test_student_t_emission_density_matches_scipy():
    rng = np.random.default_rng(1)
    model = StudentTHMM(dof=4.0, n_components=3)
    model.means_ = rng.normal(size=(3, 2))
    model.covars_ = rng.uniform(0.5, 2.0, size=(3, 2))
    X = rng.normal(size=(7, 2)) * 3
    ours = model._compute_log_likelihood(X)
    for k in range(3):
        ref = stats.multivariate_t(loc=model.means_[k], shape=np.diag(model._covars_[k]), df=4.0).logpdf(X)
        np.testing.assert_allclose(ours[:, k], ref, rtol=1e-10)


def test_student_t_em_is_monotone_and_robust_to_outliers():
    rng = np.random.default_rng(2)
    X = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal(5, 1, (300, 2))])
    X[::50] += 40.0  # crash/pump days
    model = StudentTHMM(dof=3.0, n_components=3, n_iter=40, tol=1e-9, init_params="", params="stmc")
    model.startprob_ = np.full(3, 1 / 3)
    model.transmat_ = np.full((3, 3), 0.05) + np.eye(3) * 0.85
    model.means_ = np.array([[-1.0, -1.0], [2.5, 2.5], [6.0, 6.0]])
    model.covars_ = np.ones((3, 2))
    model.fit(X)
    history = np.array(model.monitor_.history)
    assert np.all(np.diff(history) > -1e-6 * np.abs(history[1:]))  # ECM never lowers the likelihood
    # the two real clusters keep their centres despite 40-sigma outliers
    centres = np.sort(model.means_[:, 0])
    assert np.min(np.abs(centres - 0.0)) < 0.5 and np.min(np.abs(centres - 5.0)) < 0.5


def test_threshold_is_not_part_of_the_regime_cache(blocks):
    a = regime_probabilities(blocks, HmmParams(hard_switch_threshold=0.6))
    b = regime_probabilities(blocks, HmmParams(hard_switch_threshold=0.95))
    assert a is b
    assert regime_probabilities(blocks, HmmParams(hmm_refit_interval=3)) is not a


def test_disk_cache_serves_identical_probabilities_and_survives_corruption(blocks, monkeypatch, tmp_path):
    from strategy import regime

    monkeypatch.setenv("GEMSEARCH_CACHE", str(tmp_path))
    params = HmmParams(hmm_refit_interval=9)
    fresh = regime_probabilities(blocks, params)
    files = list(tmp_path.glob("regime-*.npy"))
    assert len(files) == 1
    regime._PROBS.items.clear()  # a new process: memory empty, disk warm
    np.testing.assert_array_equal(regime_probabilities(blocks, params), fresh)
    files[0].write_bytes(b"truncated by a crash")
    regime._PROBS.items.clear()
    np.testing.assert_array_equal(regime_probabilities(blocks, params), fresh)
    monkeypatch.setenv("GEMSEARCH_CACHE", "off")
    regime._PROBS.items.clear()
    np.testing.assert_array_equal(regime_probabilities(blocks, params), fresh)


def test_hmm_params_validation():
    with pytest.raises(ParamError, match="detector"):
        HmmParams(detector="lstm")
    with pytest.raises(ParamError, match="hmm_refit_interval"):
        HmmParams(hmm_refit_interval=0)
    with pytest.raises(ParamError, match="hard_switch_threshold"):
        HmmParams(hard_switch_threshold=1.5)


# --------------------------------------------------------------------------- ensemble
def test_params_from_flat_and_nested_dicts():
    flat = EnsembleParams.from_dict({"bear.top_n": 1, "hmm.hard_switch_threshold": 0.9})
    nested = EnsembleParams.from_dict({"bear": {"top_n": 1}, "hmm": {"hard_switch_threshold": 0.9}})
    assert flat == nested and flat.bear.top_n == 1 and flat.bull == EnsembleParams().bull
    assert EnsembleParams.from_dict(flat.to_dict()) == flat
    with pytest.raises(ParamError, match="unknown ensemble block"):
        EnsembleParams.from_dict({"crab.top_n": 3})
    with pytest.raises(ParamError, match="unknown GemParams field"):
        EnsembleParams.from_dict({"bull.topn": 3})
    with pytest.raises(ParamError, match="top_n"):
        EnsembleParams.from_dict({"bull.top_n": 0})


def test_presets_hold_the_users_loop3_values():
    defaults, winners = PRESETS["loop3-defaults"], PRESETS["loop3-winners"]
    assert [(getattr(defaults, n).top_n, getattr(defaults, n).r2_threshold, getattr(defaults, n).rebalance_cooldown)
            for n in SPECIALISTS] == [(15, 0.3, 4), (3, 0.7, 10), (8, 0.5, 7)]
    assert [(getattr(winners, n).top_n, getattr(winners, n).r2_threshold, getattr(winners, n).rebalance_cooldown)
            for n in SPECIALISTS] == [(15, 0.2, 5), (1, 0.5, 10), (8, 0.3, 5)]
    assert defaults.hmm.hard_switch_threshold == 0.8 and defaults.bull.min_history == 90


def test_hard_switch_versus_blend(blocks):
    params = EnsembleParams()
    signals = ensemble_fit(blocks, params)
    probs = signals["regime"]
    known = ~np.isnan(probs).any(axis=1)
    always = _mixture(signals, EnsembleParams.from_dict({"hmm.hard_switch_threshold": 0.0}), blocks.n_days)
    never = _mixture(signals, EnsembleParams.from_dict({"hmm.hard_switch_threshold": 1.0}), blocks.n_days)
    assert set(np.unique(always)) <= {0.0, 1.0}
    np.testing.assert_array_equal(always[known].argmax(axis=1), probs[known].argmax(axis=1))
    confident = probs[known].max(axis=1) == 1.0
    np.testing.assert_allclose(never[known][~confident], probs[known][~confident])
    np.testing.assert_allclose(never[~known], 1 / 3)  # no regime information yet: equal blend
    plan = ensemble_portfolio(signals, params)
    assert np.all(plan.weights.sum(axis=1) <= 1 + 1e-12) and np.all(plan.weights >= 0)


def test_single_specialist_mode_is_that_specialist(blocks):
    bear = GemParams(top_n=2, r2_threshold=0.3, rebalance_cooldown=5, min_history=90)
    params = EnsembleParams.from_dict({"bear": bear.__dict__, "switches.use_bull": False,
                                       "switches.use_ranging": False, "switches.use_hmm": False})
    ours = ensemble_portfolio(ensemble_fit(blocks, params), params)
    theirs = gem_portfolio(gem_fit(blocks, bear), bear)
    np.testing.assert_allclose(ours.weights, theirs.weights)
    np.testing.assert_array_equal(ours.momentum, theirs.momentum)
    np.testing.assert_array_equal(ours.cooldown, theirs.cooldown)


def test_risk_off_gate_goes_to_cash_and_sells(blocks):
    params = EnsembleParams.from_dict({"switches.risk_off_gate": True, "switches.risk_off_ma_days": 50})
    signals = ensemble_fit(blocks, params)
    plan = ensemble_portfolio(signals, params)
    off = signals["risk_off"] == 1.0
    assert 100 < off.sum() < blocks.n_days - 100
    assert np.all(plan.weights[off] == 0) and np.all(plan.momentum[off] == -1.0)
    assert plan.weights[~off].sum() > 0
    to_bear = EnsembleParams.from_dict({"switches.risk_off_gate": True, "switches.risk_off_ma_days": 50,
                                        "switches.risk_off_action": "bear"})
    mix = _mixture(ensemble_fit(blocks, to_bear), to_bear, blocks.n_days)
    np.testing.assert_array_equal(mix[off], np.tile([0.0, 1.0, 0.0], (off.sum(), 1)))


def test_no_specialist_is_a_valid_all_cash_point(blocks):
    params = EnsembleParams.from_dict({"switches.use_bull": False, "switches.use_bear": False,
                                       "switches.use_ranging": False})
    plan = ensemble_portfolio(ensemble_fit(blocks, params), params)
    assert np.all(plan.weights == 0)


@pytest.mark.parametrize("overrides", [{}, {"hmm.detector": "ma200", "switches.risk_off_gate": True}])
def test_ensemble_passes_the_harness_causality_audit_on_real_data(shared_data, overrides):
    from data.loaders import load_path

    candles = load_path(shared_data / "binance_top50_daily.csv.gz")
    candles = candles.select(candles.tokens[:20])
    strategy = STRATEGIES["ensemble"]
    params = EnsembleParams.from_dict(overrides, base=PRESETS["loop3-winners"])
    result = evaluate(params, candles, strategy.fit_fn, strategy.portfolio_fn)  # raises LookaheadError if not causal
    assert result.base["days"] > 1500
    assert np.isfinite(result.base["total_return_pct"])


# --------------------------------------------------------------------------- search space
def test_spaces_cover_the_seed_and_the_secondary_knobs():
    core, joint = SearchSpace("core"), SearchSpace("joint")
    assert len(core) == 12 and set(PHASED_GRIDS) == set(core.names)
    for block in SPECIALISTS:
        for knob in ("fit_window", "atr_window", "momentum_cap", "r2_exponent", "min_history"):
            assert f"{block}.{knob}" in joint.names
    assert {"switches.use_hmm", "switches.risk_off_gate", "hmm.detector"} <= set(joint.names)
    assert set(SPACES["core"]) <= set(SPACES["specialists"]) <= set(SPACES["joint"])
    for name, grid in PHASED_GRIDS.items():
        assert all(core[name].contains(v) for v in grid), name


@pytest.mark.parametrize("name", sorted(SPACES))
def test_encode_decode_round_trip(name):
    space = SearchSpace(name)
    rng = np.random.default_rng(0)
    for _ in range(50):
        params = space.sample(rng)
        unit = space.encode(params)
        assert unit.shape == (len(space),) and np.all((unit >= 0) & (unit <= 1))
        assert space.decode(unit) == params
        np.testing.assert_allclose(space.snap(unit[None])[0], unit, atol=1e-12)
    assert space.decode(space.encode(space.base)) == space.base
    for axis in space.axes:  # every phased-sweep grid value survives the unit cube
        for value in axis.grid or ():
            assert axis.decode(axis.encode(value)) == value


@pytest.mark.parametrize("name", sorted(SPACES))
def test_flat_value_paths_agree_with_the_parameter_paths(name):
    """decode_values / encode_values (the fast paths of cache checks and environments) give exactly what
    values(decode(u)) / encode(params(v)) give, bit for bit, on any point (outside the cube: clipped)."""
    space = SearchSpace(name)
    rng = np.random.default_rng(1)
    for _ in range(300):
        unit = rng.uniform(-0.2, 1.2, len(space))
        values = space.decode_values(unit)
        assert values == space.values(space.decode(unit))
        assert [type(v) for v in values.values()] == [type(v) for v in space.values(space.decode(unit)).values()]
        assert space.encode_values(values).tobytes() == space.encode(space.params(values)).tobytes()
    with pytest.raises(ParamError, match="NaN"):
        space.decode_values(np.full(len(space), np.nan))


def test_space_errors_are_clear():
    space = SearchSpace("core")
    with pytest.raises(ParamError, match="outside the searched domain"):
        space.params({"bull.top_n": 99})
    with pytest.raises(ParamError, match="not an axis"):
        space.params({"bull.fit_window": 30})
    with pytest.raises(ParamError, match="12 unit coordinates"):
        space.decode(np.zeros(3))
    with pytest.raises(ParamError, match="unknown search space"):
        SearchSpace("everything")


def test_describe_lists_every_axis_with_domain_and_default():
    rows = SearchSpace("joint").describe()
    by_name = {r["name"]: r for r in rows}
    assert by_name["hmm.detector"]["domain"] == DETECTORS
    assert by_name["bear.top_n"]["default"] == 3 and by_name["bear.top_n"]["grid"] == (1, 3, 5, 8)
    assert all(r["doc"] for r in rows)
