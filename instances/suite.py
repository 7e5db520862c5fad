"""Suites as data: a TOML file listing problem instances.

The shipped suites live in ``instances/suites/`` (``real-v1``, ``synthetic-v1``); a user's own suite is
passed by path. Format::

    name = "my-suite"                 # optional; default: the file name without .toml
    description = "..."               # optional

    [defaults]                        # optional: any instance field, applied where an instance omits it
    space = "joint"
    holdout_days = 182                # holdout = the holdout_days days right after the search window

    [[instance]]
    id = "binance-spot-2021-07"       # unique; letters, digits, '.', '_', '-'
    universe = "data:binance_top50_daily.csv.gz"   # or a synthetic name with seed = N, or a path
    venue = "binance-spot"
    search = ["2021-07-01", "2023-06-30"]           # inclusive days
    holdout = ["2023-07-01", "2023-12-31"]          # or holdout_days = N

Instance fields: ``id``, ``universe``, ``seed``, ``venue``, ``search``, ``holdout`` or ``holdout_days``,
``warmup_days``, ``space``, ``strategy``, ``liquid_top``, ``liquid_lookback_days``, ``tokens``, ``note``
(see :class:`instances.instance.Instance`). Every problem is an :class:`~instances.instance.InstanceError`
naming the suite, the instance and the field; a typo in a field name is an unknown field, never ignored.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from harness import WARMUP_DAYS, Split, WindowError
from harness.split import as_date
from instances.instance import Instance, InstanceError

SUITES_DIR = Path(__file__).resolve().parent / "suites"
"""The shipped suite files (``<name>.toml``)."""

FIELDS: dict[str, type | tuple[type, ...]] = {
    "id": str, "universe": str, "seed": int, "venue": str, "search": list, "holdout": list, "holdout_days": int,
    "warmup_days": int, "space": str, "strategy": str, "liquid_top": int, "liquid_lookback_days": int,
    "tokens": list, "note": str,
}
REQUIRED = ("id", "universe", "search")
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class Suite:
    """A named, ordered set of instances read from one file."""

    name: str
    description: str
    path: Path
    instances: tuple[Instance, ...]

    @property
    def ids(self) -> list[str]:
        return [i.id for i in self.instances]

    def get(self, instance_id: str) -> Instance:
        """The instance ``instance_id``; :class:`InstanceError` listing the known ids otherwise."""
        for instance in self.instances:
            if instance.id == instance_id:
                return instance
        raise InstanceError(f"suite {self.name}: unknown instance {instance_id!r}; known: {', '.join(self.ids)}")

    def select(self, ids: Iterable[str] | None) -> tuple[Instance, ...]:
        """The instances ``ids`` in the given order (all of them for None)."""
        return self.instances if ids is None else tuple(self.get(i) for i in ids)


def shipped() -> list[str]:
    """Names of the suites in ``instances/suites/``."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_path(name_or_path: str | Path) -> Path:
    """A shipped suite's file by name, or the given path; :class:`InstanceError` when neither exists."""
    text = str(name_or_path)
    if text in shipped():
        return SUITES_DIR / f"{text}.toml"
    path = Path(text)
    if path.is_file():
        return path
    raise InstanceError(f"{text!r} is neither a shipped suite ({', '.join(shipped())}) nor a suite file")


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and check a suite file (names, windows, holdout lengths; not the data: see ``Instance.check``)."""
    path = suite_path(name_or_path)
    try:
        document = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InstanceError(f"suite {path}: not valid TOML: {exc}") from None
    name = document.get("name", path.stem)
    unknown = sorted(set(document) - {"name", "description", "defaults", "instance"})
    if unknown:
        raise InstanceError(f"suite {name}: unknown top-level key(s) {unknown}; known: name, description, defaults, "
                            "[[instance]]")
    defaults = document.get("defaults", {})
    entries = document.get("instance", [])
    if not isinstance(defaults, dict) or not isinstance(entries, list) or not entries:
        raise InstanceError(f"suite {name}: needs [[instance]] entries (and [defaults] must be a table)")
    instances = [parse_instance({**defaults, **entry}, name, k) for k, entry in enumerate(entries, 1)]
    seen: set[str] = set()
    for instance in instances:
        if instance.id in seen:
            raise InstanceError(f"suite {name}: instance {instance.id!r}: id: used twice")
        seen.add(instance.id)
        instance.check(data=False)
    return Suite(name=name, description=str(document.get("description", "")), path=path, instances=tuple(instances))


def parse_instance(entry: Mapping[str, Any], suite: str, position: int) -> Instance:
    """One ``[[instance]]`` table (defaults merged in) -> :class:`Instance`."""
    label = repr(entry["id"]) if isinstance(entry.get("id"), str) else f"#{position}"

    def fail(field_name: str, problem: str) -> InstanceError:
        return InstanceError(f"suite {suite}: instance {label}: {field_name}: {problem}")

    for key, value in entry.items():
        if key not in FIELDS:
            raise fail(key, f"unknown field; known: {', '.join(FIELDS)}")
        expected = FIELDS[key]
        if not isinstance(value, expected) or isinstance(value, bool):
            raise fail(key, f"must be a {expected.__name__}, got {value!r}")
    for key in REQUIRED:
        if key not in entry:
            raise fail(key, "missing")
    if not ID_PATTERN.fullmatch(entry["id"]):
        raise fail("id", "use letters, digits, '.', '_' or '-' (it names folders and studies)")
    if ("holdout" in entry) == ("holdout_days" in entry):
        raise fail("holdout", "give exactly one of holdout = [start, end] or holdout_days = N")
    try:
        start, end = _window(entry["search"])
    except WindowError as exc:
        raise fail("search", str(exc)) from None
    try:
        if "holdout" in entry:
            holdout_start, holdout_end = _window(entry["holdout"])
        else:
            holdout_start = end + dt.timedelta(days=1)
            holdout_end = holdout_start + dt.timedelta(days=entry["holdout_days"] - 1)
    except WindowError as exc:
        raise fail("holdout", str(exc)) from None
    try:
        split = Split(start, end, holdout_start, holdout_end, entry.get("warmup_days", WARMUP_DAYS))
    except WindowError as exc:
        raise fail("holdout" if "holdout" in str(exc) else "search", str(exc)) from None
    tokens = entry.get("tokens")
    if tokens is not None and not all(isinstance(t, str) for t in tokens):
        raise fail("tokens", "must be a list of token names")
    return Instance(
        id=entry["id"], universe=entry["universe"], split=split, seed=entry.get("seed", 0),
        space=entry.get("space", "joint"), strategy=entry.get("strategy", "ensemble"), venue=entry.get("venue", ""),
        liquid_top=entry.get("liquid_top"), liquid_lookback_days=entry.get("liquid_lookback_days", 90),
        tokens=None if tokens is None else tuple(tokens), suite=suite, note=entry.get("note", ""),
    )


def _window(value: Any) -> tuple[dt.date, dt.date]:
    if not isinstance(value, list) or len(value) != 2:
        raise WindowError(f"must be [start, end] ISO dates, got {value!r}")
    return as_date(value[0]), as_date(value[1])


def find_instance(instance_id: str, suite: str | Path | None = None) -> Instance:
    """The instance ``instance_id`` of ``suite`` (a name or path), or of whichever shipped suite holds it."""
    if suite is not None:
        return load_suite(suite).get(instance_id)
    for name in shipped():
        loaded = load_suite(name)
        if instance_id in loaded.ids:
            return loaded.get(instance_id)
    raise InstanceError(f"unknown instance {instance_id!r}: not in the shipped suites ({', '.join(shipped())}); "
                        "pass --suite PATH for your own")

