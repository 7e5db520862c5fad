"""One trial record everywhere: the TSV row, the Optuna trial's user attributes, the searcher's history."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping

TSV_FIXED = ("eval_index", "searcher", "seed", "real", "score", "wall_time_s", "contract")
"""Leading TSV columns; then ``p.<axis>`` parameters, ``base.<metric>`` and ``stress.<metric>``."""


def _number(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return "-inf" if value == float("-inf") else repr(value)
    return str(value)


def _parse(text: str) -> Any:
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


class ReadOnlyDict(dict):
    """A ``dict`` that refuses changes: a record's parameters and metrics cannot be edited by whoever holds it
    (a searcher editing a returned record would otherwise edit the run's history and its cache)."""

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError("a TrialRecord is read-only; copy it with dict(...) to change it")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]

    def __reduce__(self) -> tuple:
        return (ReadOnlyDict, (dict(self),))


@dataclass(frozen=True)
class TrialRecord:
    """One evaluation of one configuration.

    Attributes:
        eval_index: 0-based position among the run's real evaluations (budget units).
        searcher, seed: who proposed it, and the run's seed.
        params: flat ``{"block.field": value}`` of the searched axes.
        score: ``ensemble_score`` (``-inf`` for a hard rejection, never NaN).
        base, stress: the harness's metric dicts of the two backtests.
        wall_time_s: seconds the evaluation took.
        contract: the harness contract id that produced it.
        real: True for a harness evaluation, False for a surrogate prediction.
    """

    eval_index: int
    searcher: str
    seed: int
    params: dict[str, Any]
    score: float
    base: dict[str, float] = field(default_factory=dict)
    stress: dict[str, float] = field(default_factory=dict)
    wall_time_s: float = 0.0
    contract: str = ""
    real: bool = True

    def __post_init__(self) -> None:
        for name in ("params", "base", "stress"):
            object.__setattr__(self, name, ReadOnlyDict(getattr(self, name)))

    @property
    def rejected(self) -> bool:
        return self.score == float("-inf")

    def to_json(self) -> dict[str, Any]:
        """JSON-safe dict (``-inf`` as the string ``"-inf"``)."""
        data = asdict(self)
        data["score"] = _number(self.score) if math.isinf(self.score) else self.score
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "TrialRecord":
        values = dict(data)
        values["score"] = float(values["score"])
        return cls(**values)

    def to_row(self) -> dict[str, str]:
        """The TSV row (all strings)."""
        row = {
            "eval_index": str(self.eval_index), "searcher": self.searcher, "seed": str(self.seed),
            "real": str(self.real), "score": _number(self.score), "wall_time_s": f"{self.wall_time_s:.4f}",
            "contract": self.contract,
        }
        row.update({f"p.{k}": _number(v) for k, v in self.params.items()})
        row.update({f"base.{k}": _number(v) for k, v in self.base.items()})
        row.update({f"stress.{k}": _number(v) for k, v in self.stress.items()})
        return row

    @classmethod
    def from_row(cls, row: Mapping[str, str]) -> "TrialRecord":
        def section(prefix: str) -> dict[str, Any]:
            return {k[len(prefix):]: _parse(v) for k, v in row.items() if k.startswith(prefix)}

        return cls(
            eval_index=int(row["eval_index"]), searcher=row["searcher"], seed=int(row["seed"]),
            params=section("p."), score=float(row["score"]), base=section("base."), stress=section("stress."),
            wall_time_s=float(row["wall_time_s"]), contract=row["contract"], real=row["real"] == "True",
        )


def params_key(params: Mapping[str, Any]) -> str:
    """Canonical cache key of a flat parameter dict (floats rounded to 12 significant digits)."""
    canon = {k: (float(f"{v:.12g}") if isinstance(v, float) else v) for k, v in params.items()}
    return json.dumps(canon, sort_keys=True)
