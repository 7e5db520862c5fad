"""The frozen harness: faithful to the users' harness, causal, sealed, and fingerprinted."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest

import reference
from conftest import random_universe
from data.candles import Candles
from harness import (
    FEE_RATE,
    INITIAL_CAPITAL,
    SEARCH_END,
    LookaheadError,
    Plan,
    PlanError,
    WindowError,
    ensemble_score,
    evaluate,
    evaluate_holdout,
)
from harness.backtest import run_backtest
from harness.baseline import buy_and_hold_strategy
from harness.contract import CONTRACT_VERSION
from harness.integrity import recorded_fingerprints, source_fingerprint
from harness.metrics import ORIGINAL_KEYS
from strategy.gem import gem_fit, gem_portfolio
from strategy.params import GemParams

GOLDEN_CUTOFF_MS = 1664150400000


def _tidy_candles(path, cutoff_ms=None) -> Candles:
    frame = pd.read_csv(path)
    if cutoff_ms is not None:
        frame = frame[frame["timestamp"] <= cutoff_ms]
    frame["date"] = pd.to_datetime(frame["timestamp"], unit="ms").dt.date
    return Candles.from_frame(frame, name=path.name)


@pytest.fixture(scope="module")
def golden(shared_data):
    return json.loads((shared_data / "trader_research_golden.json").read_text())["configs"]


@pytest.fixture(scope="module")
def golden_candles(shared_data) -> Candles:
    return _tidy_candles(shared_data / "bear_portfolio_candles.csv", GOLDEN_CUTOFF_MS)


@pytest.fixture(scope="module")
def full_basket(shared_data) -> Candles:
    return _tidy_candles(shared_data / "bear_portfolio_candles.csv")


def _assert_metrics_close(got: dict, want: dict, rel: float = 1e-6) -> None:
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=rel, abs=1e-9), key


@pytest.mark.parametrize("index", range(8))
def test_reproduces_trader_research_golden_outputs(golden, golden_candles, index):
    config = golden[index]
    result = evaluate(GemParams.from_dict(config["params"]), golden_candles, gem_fit, gem_portfolio)
    expected_score = float(config["score"])
    assert (result.score == expected_score) if math.isinf(expected_score) else result.score == pytest.approx(expected_score, rel=1e-6, abs=1e-12)
    _assert_metrics_close(result.base, config["base"])
    _assert_metrics_close(result.stress, config["stress"])


def test_reference_oracle_reproduces_golden_too(golden, golden_candles):
    """The slow oracle is itself faithful, so agreeing with it means agreeing with the users' harness."""
    for config in golden[:3]:
        score, base, stress = reference.evaluate(GemParams.from_dict(config["params"]), golden_candles)
        _assert_metrics_close(base, config["base"])
        _assert_metrics_close(stress, config["stress"])


ORACLE_PARAMS = [
    GemParams(),
    GemParams(top_n=2, r2_threshold=0.2, rebalance_cooldown=0, fit_window=10, atr_window=5),
    GemParams(top_n=3, pick_lowest_momentum=True, use_inverse_vol_weighting=False, rebalance_cooldown=3),
    GemParams(fit_kind="linear", top_n=4, r2_threshold=0.1, momentum_cap=0.0, rebalance_cooldown=2),
    GemParams(min_history=40, top_n=2, use_growth_filter=False, use_r2_filter=False, rebalance_cooldown=1),
]


@pytest.mark.parametrize("params", ORACLE_PARAMS, ids=lambda p: f"top{p.top_n}-{p.fit_kind}-cd{p.rebalance_cooldown}")
def test_fast_engine_matches_reference_on_random_universe_with_listings_and_gaps(params):
    candles = random_universe(seed=3)
    fast = evaluate(params, candles, gem_fit, gem_portfolio)
    score, base, stress = reference.evaluate(params, candles)
    _assert_metrics_close({k: fast.base[k] for k in ORIGINAL_KEYS}, base, rel=1e-8)
    _assert_metrics_close({k: fast.stress[k] for k in ORIGINAL_KEYS}, stress, rel=1e-8)
    assert fast.score == score or fast.score == pytest.approx(score, rel=1e-8)


def test_fast_engine_matches_reference_through_a_real_delisting(full_basket):
    """USDCUSDT and TUSDUSDT stop on 2022-09-26 in the real basket: held positions are sold at the last close."""
    params = GemParams(top_n=4, r2_threshold=0.0, use_growth_filter=False, momentum_cap=0.0, rebalance_cooldown=30)
    fast = evaluate(params, full_basket, gem_fit, gem_portfolio)
    _, base, stress = reference.evaluate(params, full_basket)
    _assert_metrics_close({k: fast.base[k] for k in ORIGINAL_KEYS}, base, rel=1e-8)
    _assert_metrics_close({k: fast.stress[k] for k in ORIGINAL_KEYS}, stress, rel=1e-8)


def _one_token(prices: list[float]) -> Candles:
    close = np.array(prices, dtype=float)[:, None]
    return Candles(dates=np.datetime64("2022-01-01") + np.arange(close.shape[0]), tokens=("XUSDT",), open=close,
                   high=close, low=close, close=close, volume=np.ones_like(close))


def _plan(weights: np.ndarray, momentum: np.ndarray | None = None, cooldown: int = 0) -> Plan:
    momentum = np.full(weights.shape, np.nan) if momentum is None else momentum
    return Plan(weights=weights, momentum=momentum, priority=weights.copy(),
                cooldown=np.full(weights.shape[0], cooldown, dtype=np.int64))


def test_fee_is_charged_per_trade_leg_on_the_traded_amount():
    candles = _one_token([100.0, 110.0, 121.0])
    weights = np.array([[1.0], [0.0], [0.0]])
    momentum = np.array([[np.nan], [-1.0], [np.nan]])  # a held token turning negative triggers a sale on day 1
    trace = run_backtest(_plan(weights, momentum), candles.close, FEE_RATE, INITIAL_CAPITAL)
    units = (INITIAL_CAPITAL - INITIAL_CAPITAL * FEE_RATE) / 100.0
    assert trace.values[0] == pytest.approx(units * 100.0, rel=1e-12)
    cash = units * 110.0 * (1 - FEE_RATE)
    assert trace.values[1] == pytest.approx(cash, rel=1e-12)
    assert trace.values[2] == pytest.approx(cash, rel=1e-12)
    assert trace.rebalance_count == 2
    assert trace.traded_notional == pytest.approx(INITIAL_CAPITAL + units * 110.0)


def test_small_trades_are_skipped_and_buys_are_capped_at_cash():
    close = np.array([[10.0, 20.0], [10.0, 20.0]])
    # day 1 asks to move 0.05% of value: below the 0.1% minimum trade, so nothing happens
    weights = np.array([[0.5, 0.5], [0.4995, 0.5005]])
    momentum = np.array([[np.nan, np.nan], [1.0, 1.0]])
    trace = run_backtest(_plan(weights, momentum), close, FEE_RATE, INITIAL_CAPITAL)
    assert trace.rebalance_count == 1  # both held with positive momentum: no trigger
    assert trace.traded_notional == pytest.approx(INITIAL_CAPITAL)  # day 0 bought 2 x 5000, capped at cash


def test_held_token_without_a_candle_is_sold_at_its_last_close():
    candles = _one_token([100.0, 120.0, np.nan, np.nan])
    weights = np.array([[1.0], [1.0], [1.0], [1.0]])
    trace = run_backtest(_plan(weights), candles.close, FEE_RATE, INITIAL_CAPITAL)
    units = (INITIAL_CAPITAL * (1 - FEE_RATE)) / 100.0
    assert trace.values[2] == pytest.approx(units * 120.0 * (1 - FEE_RATE))
    assert trace.values[3] == trace.values[2]
    assert trace.rebalance_count == 1  # the forced sale is not a rebalance


def test_ensemble_score_formula_and_hard_rejections():
    base = {"annualized_return_pct": 40.0, "max_drawdown_pct": -25.0, "hhi": 0.5, "calmar_ratio": 1.6}
    stress = {"calmar_ratio": 1.2}
    assert ensemble_score(base, stress) == pytest.approx(0.40 / 1.1**2 * 1.05)
    assert ensemble_score({**base, "max_drawdown_pct": -10.0}, stress) == pytest.approx(0.40 * 1.05)
    assert ensemble_score({**base, "annualized_return_pct": -50.1}, stress) == float("-inf")
    assert ensemble_score(base, {"calmar_ratio": -0.01}) == float("-inf")
    assert ensemble_score({**base, "annualized_return_pct": -49.0}, {"calmar_ratio": 0.0}) < 0


def test_decisions_up_to_day_t_ignore_prices_after_t():
    candles = random_universe(seed=5, gaps=False)
    params = GemParams(top_n=2, rebalance_cooldown=2, fit_window=20)
    t = 90
    shocked_close = candles.close.copy()
    shocked_close[t + 1 :] *= np.random.default_rng(1).uniform(0.3, 3.0, size=shocked_close[t + 1 :].shape)
    shocked = dataclasses.replace(candles, close=shocked_close, high=np.fmax(candles.high, shocked_close),
                                  low=np.fmin(candles.low, shocked_close), name="shocked")
    plans = [gem_portfolio(gem_fit(c, params), params) for c in (candles, shocked)]
    for name in ("weights", "momentum", "priority", "cooldown"):
        np.testing.assert_array_equal(getattr(plans[0], name)[: t + 1], getattr(plans[1], name)[: t + 1])
    traces = [run_backtest(p, c.close, FEE_RATE, INITIAL_CAPITAL) for p, c in zip(plans, (candles, shocked))]
    np.testing.assert_array_equal(traces[0].values[: t + 1], traces[1].values[: t + 1])
    assert not np.array_equal(traces[0].values[t + 1 :], traces[1].values[t + 1 :])


def test_a_fit_that_looks_ahead_is_rejected():
    candles = random_universe(seed=1, gaps=False)

    def peeking_fit(c: Candles, params: GemParams) -> dict:
        signals = dict(gem_fit(c, params))
        future = np.vstack([c.close[1:], c.close[-1:]])  # tomorrow's close
        signals["momentum"] = np.where(np.isnan(signals["momentum"]), np.nan, future / c.close - 1.0)
        return signals

    with pytest.raises(LookaheadError, match="fit_fn looks ahead"):
        evaluate(GemParams(), candles, peeking_fit, gem_portfolio)


def test_malformed_plans_are_rejected_with_a_clear_error():
    candles = random_universe(seed=2)

    def overweight(signals, params):
        plan = gem_portfolio(signals, params)
        return dataclasses.replace(plan, weights=plan.weights * 2 + 0.6)

    with pytest.raises(PlanError, match="sum to at most 1"):
        evaluate(GemParams(), candles, gem_fit, overweight)
    with pytest.raises(PlanError, match="first axis"):
        evaluate(GemParams(), candles, lambda c, p: {"x": np.zeros(3)}, gem_portfolio)


def _long_universe() -> Candles:
    days = (dt.date(2026, 6, 30) - dt.date(2025, 1, 1)).days + 1
    base = random_universe(seed=7, days=days, tokens=3, gaps=False)
    return dataclasses.replace(base, dates=np.datetime64("2025-01-01") + np.arange(days), name="long")


def test_evaluate_never_shows_the_strategy_the_holdout():
    candles = _long_universe()
    seen: list[np.datetime64] = []

    def spying_fit(c: Candles, params):
        seen.append(c.dates[-1])
        return gem_fit(c, params)

    result = evaluate(GemParams(), candles, spying_fit, gem_portfolio)
    assert max(seen) <= np.datetime64(SEARCH_END)
    assert result.last_day == str(SEARCH_END) and not result.holdout
    with pytest.raises(WindowError, match="sealed holdout"):
        evaluate(GemParams(), candles, gem_fit, gem_portfolio, end="2026-03-01")


def test_holdout_scores_only_days_after_the_search_window():
    candles = _long_universe()
    result = evaluate_holdout(GemParams(), candles, gem_fit, gem_portfolio)
    assert result.holdout and result.first_day == "2026-01-01" and result.last_day == "2026-06-30"
    assert result.base["days"] == 181
    with pytest.raises(WindowError, match="no data after"):
        evaluate_holdout(GemParams(), candles.between(None, "2025-06-30"), gem_fit, gem_portfolio)


def test_bluechip_buy_and_hold_baseline_is_scored_by_the_same_function():
    candles = random_universe(seed=4, gaps=False)
    candles = dataclasses.replace(candles, tokens=("BTCUSDT", "ETHUSDT", "A", "B", "C", "D"))
    fit_fn, portfolio_fn = buy_and_hold_strategy()
    result = evaluate(None, candles, fit_fn, portfolio_fn)
    assert result.base["rebalance_count"] == 1
    assert result.base["tokens_held"] == 2
    units = INITIAL_CAPITAL / 2 * (1 - FEE_RATE) / candles.close[0, :2]
    assert result.base["final_value"] == pytest.approx(float(units @ candles.close[-1, :2]))
    assert result.score == ensemble_score(result.base, result.stress)


def test_contract_fingerprint_is_recorded_for_the_current_version():
    """Fails when harness/ changes without a deliberate version bump (python -m harness --record)."""
    assert recorded_fingerprints().get(CONTRACT_VERSION) == source_fingerprint(), (
        "harness/ source changed: bump CONTRACT_VERSION in harness/contract.py, run `python -m harness --record`, "
        "and describe the change in docs/reference/contract.md"
    )


def test_results_carry_the_contract_and_never_nan(golden_candles):
    result = evaluate(GemParams(), golden_candles, gem_fit, gem_portfolio)
    assert result.contract.startswith(CONTRACT_VERSION + "+")
    assert not any(isinstance(v, float) and math.isnan(v) for v in [*result.base.values(), *result.stress.values()])
    assert result.rejected and result.to_json()["score"] == "-inf"  # the golden file's default config is rejected
    assert json.loads(json.dumps(result.to_json()))["base"]["rebalance_count"] == 16
