"""A walk-forward split: the search window a searcher may score, and the holdout only the drivers score.

Contract 2.0: the split is an argument of the harness (a problem instance carries its own), no
longer one global date. :func:`harness.evaluate` cuts the candles at ``search_end`` before the
strategy sees them; :func:`harness.evaluate_holdout` scores only ``holdout_start..holdout_end``
and cuts at ``holdout_end``. :data:`DEFAULT_SPLIT` is the seed's protocol (search 2021-01-01 to
2025-12-31, holdout every later day), the default instance on any universe.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from harness.contract import SEARCH_END, SEARCH_START, WARMUP_DAYS


class WindowError(ValueError):
    """A window or split that is out of order, overlaps the holdout, is empty, or has no data."""


def as_date(value: object) -> dt.date:
    """A ``datetime.date`` from a date or an ISO string (``"2021-01-01"``); ``WindowError`` otherwise."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise WindowError(f"not an ISO date (YYYY-MM-DD): {value!r}") from None


@dataclass(frozen=True)
class Split:
    """Search window, holdout window and warm-up, as inclusive UTC days.

    Attributes:
        search_start, search_end: the days :func:`harness.evaluate` scores.
        holdout_start: first holdout day (default: the day after ``search_end``); must be later than it.
        holdout_end: last holdout day (None: the last day of the data).
        warmup_days: calendar days of history before a window's first scored day that fits may use.
    """

    search_start: dt.date
    search_end: dt.date
    holdout_start: dt.date | None = None
    holdout_end: dt.date | None = None
    warmup_days: int = WARMUP_DAYS

    def __post_init__(self) -> None:
        for name in ("search_start", "search_end", "holdout_start", "holdout_end"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, as_date(value))
        if self.holdout_start is None:
            object.__setattr__(self, "holdout_start", self.search_end + dt.timedelta(days=1))
        if isinstance(self.warmup_days, bool) or not isinstance(self.warmup_days, int) or self.warmup_days < 0:
            raise WindowError(f"warmup_days must be an int >= 0, got {self.warmup_days!r}")
        if self.search_end < self.search_start:
            raise WindowError(f"search window ends ({self.search_end}) before it starts ({self.search_start})")
        if self.holdout_start <= self.search_end:
            raise WindowError(f"holdout starts ({self.holdout_start}) before the search window ends ({self.search_end}): "
                             "they would overlap")
        if self.holdout_end is not None and self.holdout_end < self.holdout_start:
            raise WindowError(f"holdout ends ({self.holdout_end}) before it starts ({self.holdout_start})")

    def to_json(self) -> dict[str, object]:
        return {"search": [str(self.search_start), str(self.search_end)],
                "holdout": [str(self.holdout_start), None if self.holdout_end is None else str(self.holdout_end)],
                "warmup_days": self.warmup_days}


DEFAULT_SPLIT = Split(SEARCH_START, SEARCH_END)
"""The seed's protocol: search 2021-01-01..2025-12-31 (250 days of warm-up), holdout every day after it."""
