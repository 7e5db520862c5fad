"""Strategy parameters: frozen, validated dataclasses.

``GemParams`` keeps the trader-research field names and defaults so results and
parameter files stay comparable with the users' harness. Bounds live in the
field metadata (``lo``/``hi``) so the search space can be derived from them.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, Mapping

from strategy.fits import FIT_KINDS


class ParamError(ValueError):
    """A parameter is unknown, of the wrong type, or out of range."""


def bounded(default: Any, lo: float | None = None, hi: float | None = None, *, log: bool = False,
            choices: tuple | None = None, doc: str = "") -> Any:
    """A dataclass field with its valid range (inclusive) or choices stored as metadata."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "log": log, "choices": choices, "doc": doc})


def _check(obj: Any) -> None:
    """Type- and range-check every field of a parameter dataclass; raise :class:`ParamError`."""
    name = type(obj).__name__
    for f in fields(obj):
        value = getattr(obj, f.name)
        expected = f.type if isinstance(f.type, type) else {"int": int, "float": float, "bool": bool, "str": str}.get(str(f.type))
        if expected is bool:
            if not isinstance(value, bool):
                raise ParamError(f"{name}.{f.name} must be a bool, got {value!r}")
            continue
        if expected is str and not isinstance(value, str):
            raise ParamError(f"{name}.{f.name} must be a str, got {value!r}")
        if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise ParamError(f"{name}.{f.name} must be an int, got {value!r}")
        if expected is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ParamError(f"{name}.{f.name} must be a number, got {value!r}")
            if value != value or value in (float("inf"), float("-inf")):
                raise ParamError(f"{name}.{f.name} must be finite, got {value!r}")
        meta = f.metadata
        if meta.get("choices") is not None and value not in meta["choices"]:
            raise ParamError(f"{name}.{f.name} must be one of {meta['choices']}, got {value!r}")
        lo, hi = meta.get("lo"), meta.get("hi")
        if lo is not None and value < lo or hi is not None and value > hi:
            raise ParamError(f"{name}.{f.name}={value!r} is outside [{lo}, {hi}]")


def from_mapping(cls: type, values: Mapping[str, Any], *, base: Any = None) -> Any:
    """Build ``cls`` from a mapping, starting from ``base`` (or the defaults); unknown keys are errors.

    Integral floats (``5.0``) are accepted for int fields; ints for float fields.
    """
    if not isinstance(values, Mapping):
        raise ParamError(f"{cls.__name__} values must be a mapping of field name to value, got {type(values).__name__}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known), key=repr)  # keys of any type: never a TypeError from sorting
    if unknown:
        raise ParamError(f"unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}")
    start = asdict(base) if base is not None else {
        f.name: f.default for f in fields(cls) if f.default is not MISSING
    }
    merged = {**start, **values}
    for key, value in list(merged.items()):
        kind = known[key].type
        if kind in (int, "int") and isinstance(value, float) and value.is_integer():
            merged[key] = int(value)
        elif kind in (float, "float") and isinstance(value, int) and not isinstance(value, bool):
            merged[key] = float(value)
    return cls(**merged)


@dataclass(frozen=True)
class GemParams:
    """One GEM momentum specialist (the users' ``GemParams``, plus ``min_history`` and ``fit_kind``).

    Units: windows and cooldowns in days; ``momentum_cap`` in percent per day
    (momentum = ``r2 ** r2_exponent * (a1 - 1) * 100``); thresholds are fractions.
    """

    r2_threshold: float = bounded(0.5, 0.0, 1.0, doc="minimum R^2 of the fit to hold a token")
    top_n: int = bounded(5, 1, 50, doc="tokens held at most")
    atr_window: int = bounded(15, 2, 120, doc="candles in the ATR volatility estimate")
    fit_window: int = bounded(30, 5, 180, doc="candles in the regression window")
    momentum_cap: float = bounded(0.14, 0.0, 5.0, doc="skip tokens whose momentum is at or above this (%/day); 0 = off")
    r2_exponent: float = bounded(2.0, 0.0, 5.0, doc="momentum = r2**r2_exponent * (a1 - 1) * 100")
    rebalance_cooldown: int = bounded(7, 0, 60, doc="days after a rebalance during which no other may happen")
    min_history: int = bounded(2, 2, 365, doc="candles a token must have before it is fitted")
    use_r2_filter: bool = bounded(True)
    use_growth_filter: bool = bounded(True)
    use_momentum_cap: bool = bounded(True)
    use_inverse_vol_weighting: bool = bounded(True)
    pick_lowest_momentum: bool = bounded(False)
    fit_kind: str = bounded("exponential", choices=FIT_KINDS, doc="regression model of the price trend")

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "GemParams | None" = None) -> "GemParams":
        return from_mapping(cls, values, base=base)
