"""A problem instance: a named, immutable, fingerprinted (universe, split, space, strategy).

An instance is what a searcher comparison replicates over: one market universe (a real data file
or a synthetic draw), optionally a point-in-time token subset, a search window with its warm-up,
its own holdout (the period right after the search window), the search space and the strategy.
Searchers only ever see :meth:`Instance.search_candles` (sealed at the search window's end, see
:meth:`data.candles.Candles.sealed`); only the drivers score :meth:`Instance.holdout_candles`.

Universes are named by a *spec*:

* ``data:FILE``: a file in the real-data folder (``$GEMSEARCH_DATA``, default ``../shared/data``
  beside the repository), e.g. ``data:binance_top50_daily.csv.gz``;
* a synthetic universe name (``synthetic``, ``synthetic-small``, ...) drawn with ``seed``;
* a path to a data file or folder (any format :func:`data.load_universe` reads).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from data import Candles, DataError, load_universe
from data import synthetic
from data.synthetic import UNIVERSES
from harness import DEFAULT_SPLIT, Split
from strategy import STRATEGIES
from strategy.space import SPACES

MIN_HOLDOUT_DAYS = 180
"""A suite instance's holdout must span at least this many days (the default instance is exempt)."""

DATA_PREFIX = "data:"
REPO = Path(__file__).resolve().parents[1]
FETCH_HINT = {
    "binance_top50_daily.csv.gz": "python -m data.fetch binance --symbols BTCUSDT ETHUSDT ... --start 2018-01-01 "
                                  "--end 2026-01-02 --out {path}",
    "bybit_perp_daily.csv.gz": "python -m data.fetch bybit --all-linear-usdt --start 2020-11-01 --end 2025-11-13 "
                               "--out {path}",
}
"""How to rebuild each shipped suite's real data file with the package's own fetchers."""


class InstanceError(ValueError):
    """A bad instance or suite: the message names the suite, the instance and the field."""


def data_dir() -> Path:
    """The real-data folder: ``$GEMSEARCH_DATA``, default ``../shared/data`` beside the repository."""
    return Path(os.environ.get("GEMSEARCH_DATA", REPO.parent / "shared" / "data"))


def resolve(spec: str) -> str:
    """The :func:`data.load_universe` argument of a universe spec (``data:FILE`` -> a path)."""
    if not spec.startswith(DATA_PREFIX):
        return spec
    name = spec[len(DATA_PREFIX):]
    path = data_dir() / name
    if not path.exists():
        hint = FETCH_HINT.get(name, "python -m data.fetch ... --out {path}").format(path=path)
        raise InstanceError(f"{spec}: {path} is missing; fetch it with `{hint}` (or set GEMSEARCH_DATA to the folder "
                            "that holds it)")
    return str(path)


@lru_cache(maxsize=4)
def _universe(source: str, seed: int) -> Candles:
    """The whole universe of a resolved spec (read or generated once per process)."""
    return load_universe(source, seed=seed)


@lru_cache(maxsize=8)
def _search_candles(instance: "Instance") -> Candles:
    return instance.universe_candles().sealed(instance.split.search_end, name=instance.id)


@dataclass(frozen=True)
class Instance:
    """One problem instance (see the module docstring).

    Attributes:
        id: unique name, letters, digits, ``.``, ``_``, ``-`` (e.g. ``binance-spot-2021-07``).
        universe: universe spec; ``seed`` the synthetic draw (ignored for data files).
        split: search window, holdout window (both inclusive days) and warm-up.
        space: search space name (:data:`strategy.space.SPACES`); ``strategy``: :data:`strategy.STRATEGIES`.
        venue: where the candles come from (``binance-spot``, ``bybit-perp``, ``synthetic``): the unit of
            leave-one-venue-out splits.
        liquid_top: keep the ``liquid_top`` tokens with the highest mean daily dollar volume
            (close x volume) over the ``liquid_lookback_days`` before the search window starts, among
            those with a candle the day before it (point-in-time: decided with data known at the start).
        tokens: keep exactly these tokens (mutually exclusive with ``liquid_top``).
        suite: the suite the instance was read from (empty for an ad-hoc default instance).
        note: free text for tables.
    """

    id: str
    universe: str
    split: Split
    seed: int = 0
    space: str = "joint"
    strategy: str = "ensemble"
    venue: str = ""
    liquid_top: int | None = None
    liquid_lookback_days: int = 90
    tokens: tuple[str, ...] | None = None
    suite: str = field(default="", compare=False)
    note: str = field(default="", compare=False)

    # ------------------------------------------------------------------ identity
    def definition(self) -> dict[str, Any]:
        """The canonical, JSON-ready definition (everything a result depends on; not ``suite`` or ``note``)."""
        return {"id": self.id, "universe": self.universe, "seed": self.seed, "split": self.split.to_json(),
                "space": self.space, "strategy": self.strategy, "venue": self.venue, "liquid_top": self.liquid_top,
                "liquid_lookback_days": self.liquid_lookback_days,
                "tokens": None if self.tokens is None else list(self.tokens)}

    @classmethod
    def from_definition(cls, data: dict[str, Any], suite: str = "") -> "Instance":
        """The inverse of :meth:`definition` (e.g. from an experiment's stored configuration)."""
        split = data["split"]
        return cls(id=data["id"], universe=data["universe"], seed=int(data.get("seed", 0)),
                   split=Split(*split["search"], holdout_start=split["holdout"][0], holdout_end=split["holdout"][1],
                               warmup_days=int(split["warmup_days"])),
                   space=data["space"], strategy=data["strategy"], venue=data.get("venue", ""),
                   liquid_top=data.get("liquid_top"), liquid_lookback_days=int(data.get("liquid_lookback_days", 90)),
                   tokens=None if data.get("tokens") is None else tuple(data["tokens"]), suite=suite)

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 of the definition and of the search-window data (stored evaluations of the instance, its random
        pools and emulators, are reused only while it holds).

        The data: a file's search-window candles, byte for byte (loads them once). A generated universe
        (``data.synthetic``): the generator's identity (:data:`data.synthetic.GENERATOR_ID`) instead, because its floating-point output differs in the last
        bits between CPUs (numpy's AVX-512 and AVX2 kernels for exp and log: ``docs/RESULTS.md``, reproducibility
        across CPUs), while the same definition and generator give the same universe, up to that rounding,
        everywhere."""
        digest = hashlib.sha256(json.dumps(self.definition(), sort_keys=True).encode())
        if self.universe.split(":")[0] in UNIVERSES:
            digest.update(synthetic.GENERATOR_ID.encode())
        else:
            digest.update(self.search_candles().fingerprint.encode())
        return digest.hexdigest()

    @classmethod
    def default(cls, universe: str, seed: int = 0, space: str = "joint", strategy: str = "ensemble") -> "Instance":
        """The seed's protocol on any universe: search 2021-01-01..2025-12-31, holdout every later day."""
        label = Path(universe).name if os.sep in universe else universe.replace(DATA_PREFIX, "")
        name = "".join(c if c.isalnum() or c in "._-" else "-" for c in label) + (f"-draw{seed}" if seed else "")
        venue = "synthetic" if universe.split(":")[0] in UNIVERSES else ""
        return cls(id=name, universe=universe, split=DEFAULT_SPLIT, seed=seed, space=space, strategy=strategy,
                   venue=venue)

    # ------------------------------------------------------------------ data
    def universe_candles(self) -> Candles:
        """The whole universe after the token rule (every day of the data: for drivers, never searchers)."""
        candles = _universe(resolve(self.universe), self.seed)
        if self.tokens is not None:
            try:
                return candles.select(self.tokens)
            except KeyError as exc:
                raise InstanceError(f"instance {self.id!r}: tokens: {exc}") from None
        if self.liquid_top is not None:
            return candles.select(self.liquid_tokens(candles))
        return candles

    def liquid_tokens(self, candles: Candles) -> list[str]:
        """The ``liquid_top`` tokens by mean dollar volume before the search window (see the class docstring)."""
        start = np.datetime64(self.split.search_start, "D")
        lo = np.searchsorted(candles.dates, start - self.liquid_lookback_days)
        hi = np.searchsorted(candles.dates, start)
        if hi == 0:
            raise InstanceError(f"instance {self.id!r}: liquid_top: no data before the search window starts")
        dollars = candles.close[lo:hi] * candles.volume[lo:hi]
        have = np.isfinite(dollars)
        mean = np.where(have, dollars, 0.0).sum(axis=0) / np.maximum(have.sum(axis=0), 1)
        score = np.where(candles.listed[hi - 1] & have.any(axis=0), mean, -np.inf)
        order = np.argsort(-score, kind="stable")
        chosen = [candles.tokens[i] for i in order[: self.liquid_top] if np.isfinite(score[i])]
        return sorted(chosen)

    def search_candles(self) -> Candles:
        """What a searcher may see: the universe sealed at the search window's end, named by the instance id."""
        return _search_candles(self)

    def holdout_candles(self) -> Candles:
        """The universe through the holdout's last day (for :func:`harness.evaluate_holdout`, drivers only)."""
        candles = self.universe_candles()
        end = self.split.holdout_end
        return candles if end is None else candles.between(None, end)

    # ------------------------------------------------------------------ checks
    def check(self, *, min_holdout_days: int = MIN_HOLDOUT_DAYS, data: bool = True) -> None:
        """Raise :class:`InstanceError` naming the field unless the instance is well-formed.

        Checks the names (space, strategy, universe), the holdout length (``min_holdout_days``, inclusive
        days; needs ``holdout_end``) and, with ``data``, that both windows lie inside the data and the search
        window has tokens.
        """
        def fail(field_name: str, problem: str) -> InstanceError:
            where = f"suite {self.suite}: " if self.suite else ""
            return InstanceError(f"{where}instance {self.id!r}: {field_name}: {problem}")

        if self.space not in SPACES:
            raise fail("space", f"unknown space {self.space!r}; known: {', '.join(sorted(SPACES))}")
        if self.strategy not in STRATEGIES:
            raise fail("strategy", f"unknown strategy {self.strategy!r}; known: {', '.join(sorted(STRATEGIES))}")
        if self.liquid_top is not None and self.tokens is not None:
            raise fail("liquid_top", "give either liquid_top or tokens, not both")
        if self.liquid_top is not None and self.liquid_top < 1:
            raise fail("liquid_top", f"must be at least 1, got {self.liquid_top}")
        split = self.split
        if min_holdout_days:
            if split.holdout_end is None:
                raise fail("holdout", "needs an end date")
            days = (split.holdout_end - split.holdout_start).days + 1
            if days < min_holdout_days:
                raise fail("holdout", f"{split.holdout_start}..{split.holdout_end} is {days} days; at least "
                                      f"{min_holdout_days} are required")
        if not data:
            return
        try:
            candles = self.universe_candles()
        except (DataError, OSError, ValueError) as exc:
            raise fail("universe", str(exc)) from None
        first, last = (dt.date.fromisoformat(str(d)) for d in (candles.dates[0], candles.dates[-1]))
        if split.search_start < first or split.search_start > last:
            raise fail("search", f"starts {split.search_start}, outside the data ({first}..{last})")
        end = split.holdout_end or last
        if end > last:
            raise fail("holdout", f"ends {end}, after the data's last day {last}")
        if self.search_candles().between(split.search_start, split.search_end).listed.sum() == 0:
            raise fail("search", f"no token has a candle in {split.search_start}..{split.search_end}")
