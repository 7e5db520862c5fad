"""The compiled portfolio rules are bit-identical to the numpy formulations they replaced.

``_reference_weights`` (one specialist: filters, a stable argsort of every row, inverse-volatility
weights) and ``_reference_portfolio`` (the ensemble's blend) below are those formulations, verbatim.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pytest

from data import load_universe
from harness.plan import Plan
from strategy.ensemble import SPECIALISTS, EnsembleParams, _enabled, _mixture, ensemble_fit, ensemble_portfolio
from strategy.gem import specialist_signals, specialist_weights
from strategy.params import GemParams


# --------------------------------------------------------------------------- the numpy references
def _reference_weights(signals: dict[str, np.ndarray], p: GemParams) -> tuple[np.ndarray, np.ndarray]:
    """Target weights and buy priority (``days x tokens``) of the users' ``build_portfolio``.

    Keep ``a1 > 1`` (growth filter), ``r2 > r2_threshold``, ``momentum < momentum_cap``
    (when the cap is > 0); rank by momentum (descending, or ascending with
    ``pick_lowest_momentum``; ties by column); take ``top_n``; drop zero-volatility
    tokens; weight by inverse volatility (or equally). Nothing left: all cash.
    """
    a1, r2, momentum, vol = signals["a1"], signals["r2"], signals["momentum"], signals["vol"]
    keep = ~np.isnan(momentum)
    with np.errstate(invalid="ignore"):
        if p.use_growth_filter:
            keep &= a1 > 1.0
        if p.use_r2_filter:
            keep &= r2 > p.r2_threshold
        if p.use_momentum_cap and p.momentum_cap > 0.0:
            keep &= momentum < p.momentum_cap
    priority = -momentum if p.pick_lowest_momentum else momentum
    key = np.where(keep, -priority, np.inf)
    order = np.argsort(key, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(order.shape[1])[None, :].repeat(order.shape[0], 0), axis=1)
    chosen = keep & (rank < p.top_n) & (vol > 0.0)
    if p.use_inverse_vol_weighting:
        with np.errstate(divide="ignore"):
            raw = np.where(chosen, 1.0 / np.where(chosen, vol, 1.0), 0.0)
    else:
        raw = chosen.astype(np.float64)
    total = raw.sum(axis=1, keepdims=True)
    weights = np.divide(raw, total, out=np.zeros_like(raw), where=total > 0)
    return weights, np.where(chosen, priority, 0.0)



def _reference_portfolio(signals: Mapping[str, np.ndarray], params: EnsembleParams) -> Plan:
    """``portfolio_fn``: blend or hard-switch the specialist portfolios (see the module docstring)."""
    enabled = _enabled(params)
    days, tokens = signals["listed"].shape
    mix = _mixture(signals, params, days)
    weights = np.zeros((days, tokens))
    momentum_sum = np.zeros((days, tokens))
    momentum_weight = np.zeros((days, tokens))
    cooldowns = np.zeros((days, len(SPECIALISTS)), dtype=np.int64)
    for k, name in enumerate(SPECIALISTS):
        if not enabled[k]:
            continue
        spec = getattr(params, name)
        block = {key: signals[f"{name}.{key}"] for key in ("a1", "r2", "momentum", "vol")}
        w, _ = _reference_weights(block, spec)
        share = mix[:, k : k + 1]
        weights += share * w
        has = ~np.isnan(block["momentum"])
        vote = np.where(has, share, 0.0)
        momentum_sum += vote * np.where(has, block["momentum"], 0.0)
        momentum_weight += vote
        cooldowns[:, k] = spec.rebalance_cooldown
    with np.errstate(invalid="ignore", divide="ignore"):
        momentum = np.where(momentum_weight > 0, momentum_sum / momentum_weight, np.nan)
    # all-cash days (risk-off to cash, or no specialist enabled): every token votes
    # "sell" so held positions trigger the rebalance that sells them
    momentum = np.where((mix.sum(axis=1) == 0)[:, None], -1.0, momentum)
    dominant = mix.argmax(axis=1)
    return Plan(
        weights=np.minimum(weights, 1.0),
        momentum=momentum,
        priority=np.where(weights > 0, np.nan_to_num(momentum), 0.0),
        cooldown=cooldowns[np.arange(days), dominant],
    )


# --------------------------------------------------------------------------- equivalence
@pytest.fixture(scope="module")
def universe():
    return load_universe("synthetic-small")


def _tied(signals: dict[str, np.ndarray], decimals: int) -> dict[str, np.ndarray]:
    """Momentum rounded so that many tokens tie (the rank's column tie-break decides)."""
    return dict(signals, momentum=np.round(signals["momentum"], decimals))


GEMS = [
    GemParams(),
    GemParams(top_n=1, r2_threshold=0.0, momentum_cap=0.0),
    GemParams(top_n=30, r2_threshold=0.2, use_inverse_vol_weighting=False),
    GemParams(top_n=50, pick_lowest_momentum=True, use_growth_filter=False),
    GemParams(top_n=7, use_r2_filter=False, use_momentum_cap=False, fit_window=10, atr_window=7, min_history=40),
    GemParams(top_n=4, fit_kind="linear", r2_exponent=0.7, momentum_cap=1.0),
]


@pytest.mark.parametrize("params", GEMS, ids=lambda p: f"top{p.top_n}-r2{p.r2_threshold}")
def test_specialist_weights_are_bit_identical(universe, params):
    signals = specialist_signals(universe, params)
    for table in (signals, _tied(signals, 1), _tied(signals, 0)):
        weights, priority = specialist_weights(table, params)
        with np.errstate(all="ignore"):
            ref_weights, ref_priority = _reference_weights(table, params)
        np.testing.assert_array_equal(weights, ref_weights)
        np.testing.assert_array_equal(priority, ref_priority)


ENSEMBLES = [
    {},
    {"hmm.hard_switch_threshold": 1.0},
    {"hmm.hard_switch_threshold": 0.5, "bull.top_n": 30, "bear.top_n": 1},
    {"switches.use_hmm": False},
    {"switches.use_bull": False, "hmm.detector": "ma200"},
    {"switches.use_bull": False, "switches.use_bear": False, "switches.use_ranging": False},
    {"switches.risk_off_gate": True, "switches.risk_off_action": "bear", "bear.fit_window": 60},
    {"switches.risk_off_gate": True, "switches.use_ranging": False, "ranging.top_n": 2},
]


@pytest.mark.parametrize("overrides", ENSEMBLES, ids=str)
def test_ensemble_portfolio_is_bit_identical(universe, overrides):
    params = EnsembleParams.from_dict(overrides)
    signals = ensemble_fit(universe, params)
    fast = ensemble_portfolio(signals, params)
    with np.errstate(all="ignore"):
        ref = _reference_portfolio(signals, params)
    for name in ("weights", "momentum", "priority", "cooldown"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)


@pytest.mark.parametrize("lowest", [False, True])
def test_infinite_momentum_ranks_like_the_stable_argsort(universe, lowest):
    """A kept token of infinite key ties with every dropped token: its column decides its rank."""
    params = GemParams(top_n=3, pick_lowest_momentum=lowest, use_growth_filter=False, use_momentum_cap=False,
                       r2_threshold=0.0)
    signals = specialist_signals(universe, params)
    rng = np.random.default_rng(4)
    momentum = signals["momentum"].copy()
    momentum[rng.uniform(0, 1, momentum.shape) < 0.2] = np.inf if lowest else -np.inf
    table = dict(signals, momentum=momentum)
    weights, priority = specialist_weights(table, params)
    with np.errstate(all="ignore"):
        ref_weights, ref_priority = _reference_weights(table, params)
    np.testing.assert_array_equal(weights, ref_weights)
    np.testing.assert_array_equal(priority, ref_priority)
