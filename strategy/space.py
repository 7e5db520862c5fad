"""The search space is data: one ``Axis`` per tunable, derived from the parameter dataclasses.

Each axis has a flat name ``"<block>.<field>"`` (blocks: ``hmm``, ``bull``,
``bear``, ``ranging``, ``switches``), a type (int, float, categorical, bool),
bounds or choices, a log flag, the default, and — where the users' phased sweep
has one — its grid. Types, defaults and validity come from the dataclass fields
(``strategy.params.bounded`` metadata); the only hand-written data here is which
fields each named space searches, the search domain where it is narrower than
validity (e.g. ``fit_window`` on a few values, because each new value costs a
cold refit of every token and day), and the phased-sweep grids of the seed.

``encode``/``decode`` map parameters to and from the unit hypercube
``[0, 1]^d`` that the GP, PPO and random search work in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any, Mapping, Sequence

import numpy as np

from strategy.ensemble import EnsembleParams, SwitchParams
from strategy.params import GemParams, ParamError
from strategy.regime import HmmParams

SPECIALIST_CORE = ("top_n", "r2_threshold", "rebalance_cooldown")
SPECIALIST_SECONDARY = ("fit_window", "atr_window", "momentum_cap", "r2_exponent", "min_history")
HMM_CORE = ("hmm_refit_interval", "hard_switch_threshold", "hmm_min_observations")
SWITCHES = ("use_bull", "use_bear", "use_ranging", "use_hmm", "risk_off_gate", "risk_off_ma_days", "risk_off_action")

SEARCH_DOMAINS: dict[str, dict[str, Any]] = {
    # ints/floats searched on a narrower range than they validate on
    "top_n": {"low": 1, "high": 30},
    "r2_threshold": {"low": 0.0, "high": 0.95},
    "rebalance_cooldown": {"low": 0, "high": 21},
    "momentum_cap": {"low": 0.0, "high": 1.0},
    "r2_exponent": {"low": 0.5, "high": 4.0},
    "min_history": {"low": 10, "high": 180},
    "hard_switch_threshold": {"low": 0.5, "high": 1.0},
    # each distinct value is a cold refit: searched on a few values (ordinal choices)
    "fit_window": {"choices": (10, 20, 30, 45, 60, 90)},
    "atr_window": {"choices": (7, 10, 15, 21, 30)},
    "hmm_refit_interval": {"choices": (3, 5, 7, 10, 14, 21)},
    "hmm_min_observations": {"choices": (30, 60, 90, 120, 180)},
    "risk_off_ma_days": {"choices": (50, 100, 150, 200)},
}

PHASED_GRIDS: dict[str, tuple] = {
    # the seed's Phase 1 (HMM) and Phase 2 (per specialist) grids
    "hmm.hmm_refit_interval": (3, 7, 14),
    "hmm.hard_switch_threshold": (0.60, 0.70, 0.80, 0.90),
    "hmm.hmm_min_observations": (30, 60, 90, 120),
    "bull.top_n": (10, 15, 20, 25),
    "bull.r2_threshold": (0.2, 0.3, 0.5),
    "bull.rebalance_cooldown": (3, 5, 7),
    "bear.top_n": (1, 3, 5, 8),
    "bear.r2_threshold": (0.5, 0.7, 0.8),
    "bear.rebalance_cooldown": (7, 10, 14),
    "ranging.top_n": (5, 8, 12, 15),
    "ranging.r2_threshold": (0.3, 0.5, 0.7),
    "ranging.rebalance_cooldown": (5, 7, 10),
}

BLOCK_TYPES = {"bull": GemParams, "bear": GemParams, "ranging": GemParams, "hmm": HmmParams, "switches": SwitchParams}


@dataclass(frozen=True)
class Axis:
    """One searchable parameter.

    ``kind`` is ``"int"``, ``"float"``, ``"categorical"`` (ordered ``choices``) or
    ``"bool"``. Unit encoding: int/float linear (or log) in ``[low, high]``;
    categorical by choice index ``i / (n - 1)``; bool 0/1.
    """

    name: str
    block: str
    field: str
    kind: str
    default: Any
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple | None = None
    grid: tuple | None = None
    doc: str = ""

    def encode(self, value: Any) -> float:
        if self.kind == "bool":
            return 1.0 if value else 0.0
        if self.kind == "categorical":
            if value not in self.choices:
                raise ParamError(f"{self.name}={value!r} is not one of the searched choices {self.choices}")
            return self.choices.index(value) / max(1, len(self.choices) - 1)
        lo, hi, v = float(self.low), float(self.high), float(value)
        if self.log:
            lo, hi, v = math.log(lo), math.log(hi), math.log(v)
        return min(max((v - lo) / (hi - lo), 0.0), 1.0) if hi > lo else 0.0

    def decode(self, unit: float) -> Any:
        u = min(max(float(unit), 0.0), 1.0)  # NaN stays NaN, as with np.clip (the space's decode refuses it first)
        if self.kind == "bool":
            return bool(u >= 0.5)
        if self.kind == "categorical":
            return self.choices[int(round(u * (len(self.choices) - 1)))]
        lo, hi = float(self.low), float(self.high)
        value = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))) if self.log else lo + u * (hi - lo)
        # floats to 10 decimals, so that grid values and defaults survive encode -> decode exactly
        return int(round(value)) if self.kind == "int" else round(float(value), 10)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not a searchable value of this axis (``"must be an int"``, ...); None if it is.

        Never raises, whatever ``value`` is: bools are not numbers, NaN and infinities are not in any
        range, an int axis takes integral floats (``5.0``) but not ``5.5``.
        """
        if self.kind == "bool":
            return None if isinstance(value, bool) else "must be a bool (True or False)"
        plain = isinstance(value, (str, int, float)) and not isinstance(value, bool)
        if self.kind == "categorical":
            return None if plain and value in self.choices else f"is not one of the searched choices {self.choices}"
        if not plain or isinstance(value, str):
            return "must be an int" if self.kind == "int" else "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        if self.kind == "int" and isinstance(value, float) and not value.is_integer():
            return "must be an int"
        if not self.low <= value <= self.high:
            return f"is outside the searched domain {(self.low, self.high)}"
        return None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a searchable value of this axis (see :meth:`problem`)."""
        return self.problem(value) is None


def _axis(block: str, field_name: str, base: EnsembleParams) -> Axis:
    cls = BLOCK_TYPES[block]
    f = {f.name: f for f in fields(cls)}[field_name]
    default = getattr(getattr(base, block), field_name)
    meta = dict(f.metadata)
    domain = SEARCH_DOMAINS.get(field_name, {})
    name = f"{block}.{field_name}"
    common = dict(name=name, block=block, field=field_name, default=default, grid=PHASED_GRIDS.get(name),
                  doc=meta.get("doc", ""))
    if isinstance(default, bool):
        return Axis(kind="bool", **common)
    choices = domain.get("choices", meta.get("choices"))
    if choices is not None:
        return Axis(kind="categorical", choices=tuple(choices), **common)
    kind = "int" if isinstance(default, int) else "float"
    return Axis(kind=kind, low=domain.get("low", meta["lo"]), high=domain.get("high", meta["hi"]),
                log=meta.get("log", False), **common)


def _names(blocks: Sequence[str], names: Sequence[str]) -> list[tuple[str, str]]:
    return [(b, n) for b in blocks for n in names]


SPACES: dict[str, list[tuple[str, str]]] = {
    # the seed's 12 phased-sweep parameters: 3 HMM + 3 x (top_n, r2_threshold, rebalance_cooldown)
    "core": _names(["hmm"], HMM_CORE) + _names(["bull", "bear", "ranging"], SPECIALIST_CORE),
    # core + the secondary specialist knobs (27 axes), architecture fixed
    "specialists": _names(["hmm"], HMM_CORE)
    + _names(["bull", "bear", "ranging"], SPECIALIST_CORE + SPECIALIST_SECONDARY),
    # everything: specialists + the detector choice + component switches and the risk-off gate
    # (a "does deleting a component win?" search is a search of this space)
    "joint": _names(["hmm"], HMM_CORE + ("detector",))
    + _names(["bull", "bear", "ranging"], SPECIALIST_CORE + SPECIALIST_SECONDARY)
    + _names(["switches"], SWITCHES),
}


class SearchSpace:
    """An ordered set of axes over :class:`EnsembleParams`; everything else stays at ``base``."""

    def __init__(self, name: str = "joint", base: EnsembleParams | None = None) -> None:
        if name not in SPACES:
            raise ParamError(f"unknown search space {name!r}; known: {sorted(SPACES)}")
        self.name = name
        self.base = base or EnsembleParams()
        self.axes: tuple[Axis, ...] = tuple(_axis(b, f, self.base) for b, f in SPACES[name])
        self._by_name = {a.name: a for a in self.axes}

    def __len__(self) -> int:
        return len(self.axes)

    def __getitem__(self, name: str) -> Axis:
        try:
            return self._by_name[name]
        except KeyError:
            raise ParamError(f"{name!r} is not an axis of the {self.name!r} space") from None

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.axes]

    def values(self, params: EnsembleParams) -> dict[str, Any]:
        """Flat ``{"block.field": value}`` of the searched axes."""
        return {a.name: getattr(getattr(params, a.block), a.field) for a in self.axes}

    def params(self, values: Mapping[str, Any]) -> EnsembleParams:
        """Validated :class:`EnsembleParams` from flat values (missing axes take ``base``).

        Raises:
            ParamError: ``values`` is not a mapping, a key is not an axis of this space, or a value is of
                the wrong type or outside the searched domain (the message names the axis).
        """
        if not isinstance(values, Mapping):
            raise ParamError(f"expected a mapping of 'block.field' to value, got {type(values).__name__}")
        for key, value in values.items():
            problem = self[key].problem(value)
            if problem is not None:
                raise ParamError(f"{key}={value!r} {problem}")
        return EnsembleParams.from_dict(dict(values), base=self.base)

    def encode(self, params: EnsembleParams) -> np.ndarray:
        """``(d,)`` unit vector of ``params`` on the searched axes."""
        return self.encode_values(self.values(params))

    def encode_values(self, values: Mapping[str, Any]) -> np.ndarray:
        """``(d,)`` unit vector of flat values that hold every axis (a stored record's ``params``), unvalidated:
        ``encode(params(values))`` without building the parameters."""
        return np.array([a.encode(values[a.name]) for a in self.axes])

    def decode(self, unit: Sequence[float]) -> EnsembleParams:
        """Parameters at a point of ``[0, 1]^d`` (values outside, infinities included, are clipped).

        Raises:
            ParamError: not a vector of ``d`` real numbers, or NaN coordinates (the message names their axes).
        """
        return EnsembleParams.from_dict(self.decode_values(unit), base=self.base)

    def decode_values(self, unit: Sequence[float]) -> dict[str, Any]:
        """Flat ``{"block.field": value}`` at a point of ``[0, 1]^d``: ``values(decode(unit))`` without building
        the parameters (the cheap path of "already evaluated?" checks). Raises as :meth:`decode`."""
        try:
            unit = np.asarray(unit, dtype=float)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ParamError(f"expected a vector of {len(self.axes)} unit coordinates (real numbers): {exc}") from None
        if unit.shape != (len(self.axes),):
            raise ParamError(f"expected a vector of {len(self.axes)} unit coordinates, got shape {unit.shape}")
        if np.isnan(unit).any():
            raise ParamError(f"unit coordinates are NaN for {[a.name for a, u in zip(self.axes, unit) if np.isnan(u)]}")
        return {a.name: a.decode(u) for a, u in zip(self.axes, unit)}

    def snap(self, unit: np.ndarray) -> np.ndarray:
        """``(n, d)`` unit points moved onto what decoding can represent (ints, choices, bools): ``encode(decode(u))``."""
        unit = np.clip(np.asarray(unit, dtype=float), 0.0, 1.0)
        out = unit.copy()
        for j, axis in enumerate(self.axes):
            u = unit[..., j]
            if axis.kind == "bool":
                out[..., j] = (u >= 0.5).astype(float)
            elif axis.kind == "categorical":
                steps = max(1, len(axis.choices) - 1)
                out[..., j] = np.round(u * steps) / steps
            elif axis.kind == "int" and not axis.log:
                span = axis.high - axis.low
                out[..., j] = np.round(u * span) / span if span else 0.0
            elif axis.kind == "int":
                lo, hi = np.log(axis.low), np.log(axis.high)
                value = np.round(np.exp(lo + u * (hi - lo)))
                out[..., j] = (np.log(value) - lo) / (hi - lo)
        return out

    def sample(self, rng: np.random.Generator) -> EnsembleParams:
        """A uniform random point of the space."""
        return self.decode(rng.random(len(self.axes)))

    def describe(self) -> list[dict[str, Any]]:
        """One row per axis: name, block, kind, domain, default, grid (for docs and ``--help``)."""
        return [
            {"name": a.name, "block": a.block, "kind": a.kind,
             "domain": a.choices if a.kind == "categorical" else ((0, 1) if a.kind == "bool" else (a.low, a.high)),
             "default": a.default, "grid": a.grid, "doc": a.doc}
            for a in self.axes
        ]
