"""The full GEM ensemble: three specialists, a regime detector, a meta-allocator.

Each day the regime detector gives filtered probabilities ``p = (bull, bear,
ranging)``. Meta-allocator: if ``max(p) >= hard_switch_threshold`` the ensemble
holds that regime's specialist portfolio (hard switch); otherwise it blends the
three specialist portfolios with weights ``p`` (soft blend). Days without regime
information (before the detector's first fit) blend the specialists equally.

How the specialists' settings combine into the one plan the harness runs:

* **weights**: the hard-switched specialist's, or the probability blend.
* **momentum** (the rebalance trigger): the same mixture of the specialists' raw
  momentum (NaN-aware: a specialist without a fit for a token does not vote).
* **cooldown**: the cooldown of the dominant regime's specialist (argmax of ``p``)
  on that day, so a bear regime trades at the bear specialist's pace.
* **priority** (buy order when cash runs short): the blended momentum.

Component switches (for "deletion" experiments): a disabled specialist gets no
probability mass (the rest is renormalised; with none enabled the ensemble holds
cash, a valid if useless point of the joint space); ``use_hmm=False`` blends the enabled
specialists equally every day; ``risk_off_gate=True`` moves to cash (or to the
bear specialist, ``risk_off_action="bear"``) on days when the market index closes
below its ``risk_off_ma_days`` moving average. On all-cash days every token's
momentum is set to -1 so that held positions trigger the sale (subject to the
cooldown, which on those days is the bull specialist's).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np
from numba import njit

from data.candles import REGIME_NAMES, Candles
from harness.backtest import readonly
from harness.plan import Plan
from strategy.fits import _LRU
from strategy.gem import SIGNAL_KEYS, select_row, selection_rule, specialist_signals
from strategy.params import GemParams, ParamError, _check, bounded, from_mapping
from strategy.regime import HmmParams, market_index, regime_probabilities

SPECIALISTS: tuple[str, ...] = REGIME_NAMES  # ("bull", "bear", "ranging"), the regime each specialist serves
_JIT = dict(cache=True, error_model="numpy", nogil=True)


@dataclass(frozen=True)
class SwitchParams:
    """Ensemble-level switches: which components exist, and the risk-off gate."""

    use_bull: bool = bounded(True, doc="bull specialist present")
    use_bear: bool = bounded(True, doc="bear specialist present")
    use_ranging: bool = bounded(True, doc="ranging specialist present")
    use_hmm: bool = bounded(True, doc="regime gating; off = equal blend of the enabled specialists")
    risk_off_gate: bool = bounded(False, doc="leave the market when its index is below its moving average")
    risk_off_ma_days: int = bounded(100, 20, 365, doc="moving-average length of the risk-off trend filter (days)")
    risk_off_action: str = bounded("cash", choices=("cash", "bear"), doc="what risk-off holds: cash or the bear specialist")

    def __post_init__(self) -> None:
        _check(self)


def _gem(top_n: int, r2: float, cooldown: int) -> GemParams:
    return GemParams(top_n=top_n, r2_threshold=r2, rebalance_cooldown=cooldown, min_history=90)


@dataclass(frozen=True)
class EnsembleParams:
    """Every tunable of the ensemble, grouped in blocks (defaults: the users' Loop 3 starting point)."""

    bull: GemParams = field(default_factory=lambda: _gem(15, 0.3, 4))
    bear: GemParams = field(default_factory=lambda: _gem(3, 0.7, 10))
    ranging: GemParams = field(default_factory=lambda: _gem(8, 0.5, 7))
    hmm: HmmParams = field(default_factory=HmmParams)
    switches: SwitchParams = field(default_factory=SwitchParams)

    def __post_init__(self) -> None:
        for name, kind in (("bull", GemParams), ("bear", GemParams), ("ranging", GemParams),
                           ("hmm", HmmParams), ("switches", SwitchParams)):
            if not isinstance(getattr(self, name), kind):
                raise ParamError(f"EnsembleParams.{name} must be a {kind.__name__}")

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested ``{block: {field: value}}``."""
        return {f.name: asdict(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "EnsembleParams | None" = None) -> "EnsembleParams":
        """From nested ``{block: {field: value}}`` or flat ``{"block.field": value}``; missing = ``base``/defaults."""
        base = base or cls()
        if not isinstance(values, Mapping):
            raise ParamError(f"ensemble parameters must be a mapping, got {type(values).__name__}")
        nested: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            if not isinstance(key, str):
                raise ParamError(f"ensemble parameter {key!r} must be a 'block.field' or block name (a str)")
            if isinstance(value, Mapping):
                nested.setdefault(key, {}).update(value)
            elif "." in key:
                block, name = key.split(".", 1)
                nested.setdefault(block, {})[name] = value
            else:
                raise ParamError(f"ensemble parameter {key!r} must be 'block.field' or a block mapping")
        blocks = {f.name for f in fields(cls)}
        unknown = sorted(set(nested) - blocks)
        if unknown:
            raise ParamError(f"unknown ensemble block(s) {unknown}; known: {sorted(blocks)}")
        updates = {
            block: from_mapping(type(getattr(base, block)), changes, base=getattr(base, block))
            for block, changes in nested.items()
        }
        return replace(base, **updates)


PRESETS: dict[str, EnsembleParams] = {
    "loop3-defaults": EnsembleParams(),
    "loop3-winners": EnsembleParams(
        bull=_gem(15, 0.2, 5),
        bear=_gem(1, 0.5, 10),
        ranging=_gem(8, 0.3, 5),
        hmm=replace(HmmParams(), hard_switch_threshold=0.9),
    ),
}
"""The users' Loop 3 defaults before tuning, and Loop 3's phased-sweep winners."""


# --------------------------------------------------------------------------- fit_fn
_RISK = _LRU(16)


def _risk_off(candles: Candles, ma_days: int) -> np.ndarray:
    """``(days,)`` 1.0 where the market index closes below its trailing ``ma_days`` mean (NaN before)."""

    def compute() -> np.ndarray:
        index = market_index(candles)
        csum = np.concatenate([[0.0], np.cumsum(index)])
        days = np.arange(index.size)
        mean = (csum[days + 1] - csum[np.maximum(days + 1 - ma_days, 0)]) / ma_days
        out = np.where(days + 1 >= ma_days, (index < mean).astype(float), np.nan)
        out.setflags(write=False)
        return out

    return _RISK.get((candles.fingerprint, ma_days), compute)


def ensemble_fit(candles: Candles, params: EnsembleParams) -> dict[str, np.ndarray]:
    """``fit_fn``: each enabled specialist's tables (``"bull.momentum"``, ...), regime probabilities, risk-off."""
    signals: dict[str, np.ndarray] = {"listed": candles.listed}
    for name in SPECIALISTS:
        if getattr(params.switches, f"use_{name}"):
            for key, table in specialist_signals(candles, getattr(params, name)).items():
                signals[f"{name}.{key}"] = table
    if params.switches.use_hmm:
        signals["regime"] = regime_probabilities(candles, params.hmm)
    if params.switches.risk_off_gate:
        signals["risk_off"] = _risk_off(candles, params.switches.risk_off_ma_days)
    return signals


# --------------------------------------------------------------------------- portfolio_fn
def _enabled(params: EnsembleParams) -> np.ndarray:
    """``(3,)`` 1.0 for each specialist the switches keep, in :data:`SPECIALISTS` order."""
    return np.array([getattr(params.switches, f"use_{name}") for name in SPECIALISTS], dtype=float)


def _mixture(signals: Mapping[str, np.ndarray], params: EnsembleParams, days: int) -> np.ndarray:
    """``(days, 3)`` specialist mixing weights after gating, hard switch and switches."""
    enabled = _enabled(params)
    if params.switches.use_hmm:
        probs = np.asarray(signals["regime"], dtype=float)
        probs = np.where(np.isnan(probs).any(axis=1, keepdims=True), 1.0, probs) * enabled
    else:
        probs = np.ones((days, len(SPECIALISTS))) * enabled
    total = probs.sum(axis=1, keepdims=True)
    fallback = enabled / max(enabled.sum(), 1.0)  # no specialist enabled: all cash
    probs = np.where(total > 0, probs / np.where(total > 0, total, 1.0), fallback)
    top = probs.argmax(axis=1)
    hard = probs[np.arange(days), top] >= params.hmm.hard_switch_threshold
    mix = np.where(hard[:, None], np.eye(len(SPECIALISTS))[top], probs)
    if params.switches.risk_off_gate:
        off = np.nan_to_num(np.asarray(signals["risk_off"], dtype=float)) > 0.5
        to = np.zeros(len(SPECIALISTS))
        if params.switches.risk_off_action == "bear" and params.switches.use_bear:
            to[SPECIALISTS.index("bear")] = 1.0
        mix = np.where(off[:, None], to, mix)
    return mix


@njit(**_JIT)
def _blend(mix, enabled, tables, rules, tokens):
    """Blended ``(weights, momentum, priority)`` (``days x tokens``) of the enabled specialists.

    ``tables[k]`` = specialist ``k``'s ``(a1, r2, momentum, vol)``, ``rules[k]`` its
    :func:`~strategy.gem.selection_rule`. A specialist's portfolio is only built on
    days it has a share (adding a zero share of it changes nothing).
    """
    days = mix.shape[0]
    weights, momentum, priority = np.zeros((days, tokens)), np.empty((days, tokens)), np.empty((days, tokens))
    raw = np.zeros(tokens)
    voted, votes = np.empty(tokens), np.empty(tokens)
    top_n = max(rules[0][0], rules[1][0], rules[2][0])
    best_key, best_col, late = np.empty(top_n), np.empty(top_n, dtype=np.int64), np.empty(2 * top_n, np.int64)
    for t in range(days):
        for k in range(len(SPECIALISTS)):
            share = mix[t, k]
            if not enabled[k] or share == 0.0:
                continue
            a1, r2, m, vol = tables[k]
            total, count = select_row(a1, r2, m, vol, t, rules[k], raw, best_key, best_col, late)
            if total > 0:
                for j in best_col[:count]:
                    weights[t, j] += share * (raw[j] / total)
        # momentum of the specialists with a fit, weighted by their share (added in specialist order)
        voted[:] = 0.0
        votes[:] = 0.0
        for k in range(len(SPECIALISTS)):
            if enabled[k]:
                share, m = mix[t, k], tables[k][2]
                for j in range(tokens):
                    if not np.isnan(m[t, j]):
                        voted[j] += share * m[t, j]
                        votes[j] += share
        all_cash = mix[t, 0] + mix[t, 1] + mix[t, 2] == 0
        for j in range(tokens):
            blended = -1.0 if all_cash else (voted[j] / votes[j] if votes[j] > 0 else np.nan)
            momentum[t, j] = blended
            priority[t, j] = np.nan_to_num(blended) if weights[t, j] > 0 else 0.0
            weights[t, j] = min(weights[t, j], 1.0)
    return weights, momentum, priority


def ensemble_portfolio(signals: Mapping[str, np.ndarray], params: EnsembleParams) -> Plan:
    """``portfolio_fn``: blend or hard-switch the specialist portfolios (see the module docstring).

    On all-cash days (risk-off to cash, or no specialist enabled) every token's
    momentum is -1, so held positions trigger the rebalance that sells them.
    """
    enabled = _enabled(params)
    days, tokens = signals["listed"].shape
    mix = _mixture(signals, params, days)
    unused = (readonly(np.empty((0, 0))),) * len(SIGNAL_KEYS)
    tables = tuple(tuple(readonly(signals[f"{name}.{key}"]) for key in SIGNAL_KEYS) if enabled[k] else unused
                   for k, name in enumerate(SPECIALISTS))
    rules = tuple(selection_rule(getattr(params, name)) for name in SPECIALISTS)
    weights, momentum, priority = _blend(mix, enabled.astype(np.bool_), tables, rules, tokens)
    cooldowns = np.array([getattr(params, name).rebalance_cooldown if enabled[k] else 0
                          for k, name in enumerate(SPECIALISTS)], dtype=np.int64)
    return Plan(weights=weights, momentum=momentum, priority=priority, cooldown=cooldowns[mix.argmax(axis=1)])
