"""The emulator datasets: real harness evaluations per instance, as one compact Parquet file per suite.

Rows come from (in this order; the first occurrence of a configuration wins, later repeats are dropped):

1. the **design**: the ``sobol`` runs of the experiment ``emulator-data-<suite>`` (``runs.compare``);
2. the suite's **random pool** (``instances.pool``, ``<suite>.pool.parquet`` beside the suite file), if built;
3. the **trajectories** of every run of the comparison folders given with ``--from`` (source = the searcher).

Only real evaluations of the instance's current definition (space aside: rows of another space are
mapped onto the dataset's space when they can be represented there, dropped otherwise) by the current
contract enter. Columns: ``instance``, ``fingerprint`` (the instance's), ``contract``, ``source``, ``seed``,
``eval_index``, ``p.<axis>`` (the dataset space's axes, exact values), ``score`` (float64, ``-inf`` kept),
``reason`` (``instances.pool.rejection_reason``, empty when feasible), ``base.<metric>`` and
``stress.<metric>`` (float32: 7 significant digits, far below what any metric means). zstd-compressed,
no wall times, no pandas metadata: the same evaluations give the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from env.records import TrialRecord, params_key
from harness.integrity import contract_id
from instances import Instance
from instances.pool import DEFAULTS_INDEX, current_rows, pool_path, read_pool, rejection_reason
from strategy.params import ParamError
from strategy.space import SearchSpace

DATA_DIR = Path(__file__).resolve().parents[1] / "emulators"
"""Where the shipped datasets and emulators live (``<stem>.parquet``, ``<stem>.emulator``)."""

FIXED = ("instance", "fingerprint", "contract", "source", "seed", "eval_index")
DESIGN = "design"
POOL = "pool"


class EmulatorError(ValueError):
    """A dataset or emulator that cannot be used: the one-line message names the file and the field."""


def stem(suite: str, space: str | None = None) -> str:
    """File stem of a suite's dataset and emulator: ``<suite>`` or, for a ``--space`` override, ``<suite>-<space>``."""
    return f"{suite}-{space}" if space else suite


def dataset_path(suite: str, space: str | None = None, folder: Path = DATA_DIR) -> Path:
    return Path(folder) / f"{stem(suite, space)}.parquet"


def design_name(suite: str, space: str | None = None) -> str:
    """The ``runs.compare`` experiment that holds a suite's design runs."""
    return f"emulator-data-{stem(suite, space)}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def in_space(values: Mapping[str, Any], space: SearchSpace) -> dict[str, Any] | None:
    """``values`` (flat, of any space over the same base) as ``space``'s flat values; None when an axis
    ``space`` does not search differs from its base value (the configuration is not in ``space``)."""
    inside = {}
    for key, value in values.items():
        if key in space.names:
            inside[key] = value
            continue
        block, name = key.split(".", 1)
        if getattr(getattr(space.base, block), name) != value:
            return None
    try:
        return space.values(space.params(inside))
    except ParamError:
        return None


@dataclass
class Collected:
    """Rows gathered for one instance, first occurrence of each configuration kept."""

    instance: Instance
    fingerprint: str
    space: SearchSpace
    rows: list[dict[str, Any]] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n

    def add(self, values: Mapping[str, Any], score: float, contract: str, source: str, seed: int, index: int,
            base: Mapping[str, float], stress: Mapping[str, float]) -> None:
        if contract != contract_id():
            return self.skip(f"contract {contract} (not {contract_id()})")
        mapped = in_space(values, self.space)
        if mapped is None:
            return self.skip(f"outside the {self.space.name} space")
        key = params_key(mapped)
        if key in self.keys:
            return self.skip("repeats of a configuration already in the dataset")
        self.keys.add(key)
        rejected = score == -math.inf
        self.rows.append({
            "instance": self.instance.id, "fingerprint": self.fingerprint, "contract": contract, "source": source,
            "seed": int(seed), "eval_index": int(index), **{f"p.{k}": v for k, v in mapped.items()},
            "score": float(score), "reason": rejection_reason(dict(base), dict(stress)) if rejected else "",
            **{f"base.{k}": float(v) for k, v in base.items()}, **{f"stress.{k}": float(v) for k, v in stress.items()},
        })

    def add_records(self, records: Iterable[TrialRecord], source: str) -> None:
        for record in records:
            if not record.real:
                self.skip("emulated or surrogate records (never data)")
                continue
            self.add(record.params, record.score, record.contract, source, record.seed, record.eval_index,
                     record.base, record.stress)


def _definition_sans_space(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k != "space"}


def collect(instances: Sequence[Instance], design: tuple[Mapping[str, Any], Mapping[str, Any]] | None,
            others: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]] = (),
            suite_path: Path | None = None) -> list[Collected]:
    """Gather every instance's rows from the design comparison, the suite's pool and the ``others`` (module doc).

    ``design`` and each of ``others`` is a loaded comparison ``(config, runs)``: its ``config.json`` set-up and its
    records ``{instance: {searcher: {seed: [TrialRecord, ...]}}}`` (``runs.results.load_experiment``)."""
    pool = read_pool(pool_path(Path(suite_path))) if suite_path is not None else pd.DataFrame()
    out = []
    for instance in instances:
        collected = Collected(instance, instance.fingerprint, SearchSpace(instance.space))
        if design is not None:
            _add_runs(collected, *design, source=DESIGN)
        if not pool.empty:
            _add_pool(collected, pool)
        for config, runs in others:
            _add_runs(collected, config, runs, source=None)
        out.append(collected)
    return out


def _add_runs(collected: Collected, config: Mapping[str, Any], runs: Mapping[str, Any], source: str | None) -> None:
    """The runs of one comparison folder on ``collected``'s instance (same definition, any space), if real."""
    if config.get("objective", "real") != "real":
        return  # an emulated comparison: never data
    mine = _definition_sans_space(collected.instance.definition())
    if not any(d["id"] == collected.instance.id and _definition_sans_space(d) == mine for d in config["instances"]):
        return
    for searcher, seeds in sorted(runs.get(collected.instance.id, {}).items()):
        for _, records in sorted(seeds.items()):
            collected.add_records(records, source or searcher)


def _add_pool(collected: Collected, pool: pd.DataFrame) -> None:
    rows = current_rows(pool, collected.instance)
    params = [c for c in rows.columns if c.startswith("p.")]
    for _, row in rows.iterrows():
        values = {c[2:]: _plain(row[c]) for c in params}
        base = {c[5:]: row[c] for c in rows.columns if c.startswith("base.") and not pd.isna(row[c])}
        stress = {c[7:]: row[c] for c in rows.columns if c.startswith("stress.") and not pd.isna(row[c])}
        collected.add(values, float(row["score"]), row["contract"], POOL, 0, int(row["index"]) - DEFAULTS_INDEX,
                      base, stress)


def _plain(value: Any) -> Any:
    """A Parquet cell as the Python value the space expects (numpy scalars to int / float / bool / str)."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


# --------------------------------------------------------------------------- Parquet
def to_table(collected: Sequence[Collected]) -> pa.Table:
    """The rows of every instance as one Arrow table with the dataset's fixed column order and types."""
    rows = [row for c in collected for row in c.rows]
    if not rows:
        raise EmulatorError("no rows to write: no real evaluation of these instances was found")
    names = collected[0].space.names
    metrics = sorted({k for row in rows for k in row if k.startswith(("base.", "stress."))},
                     key=lambda k: (not k.startswith("base."), k))
    columns: dict[str, pa.Array] = {
        "instance": pa.array([r["instance"] for r in rows], pa.string()),
        "fingerprint": pa.array([r["fingerprint"] for r in rows], pa.string()),
        "contract": pa.array([r["contract"] for r in rows], pa.string()),
        "source": pa.array([r["source"] for r in rows], pa.string()),
        "seed": pa.array([r["seed"] for r in rows], pa.int32()),
        "eval_index": pa.array([r["eval_index"] for r in rows], pa.int32()),
    }
    space = collected[0].space
    for name in names:
        axis = space[name]
        kind = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64()}.get(axis.kind)
        if kind is None:  # categorical: the choices' own type
            kind = pa.string() if isinstance(axis.choices[0], str) else (
                pa.float64() if isinstance(axis.choices[0], float) else pa.int64())
        columns[f"p.{name}"] = pa.array([r[f"p.{name}"] for r in rows], kind)
    columns["score"] = pa.array([r["score"] for r in rows], pa.float64())
    columns["reason"] = pa.array([r["reason"] for r in rows], pa.string())
    for metric in metrics:
        columns[metric] = pa.array([r.get(metric, math.nan) for r in rows], pa.float32())
    return pa.table(columns)


def write_dataset(collected: Sequence[Collected], path: Path) -> Path:
    """Write the dataset atomically (a temporary file, then a rename); same rows give the same bytes."""
    table = to_table(collected)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd", compression_level=15, write_statistics=False,
                   store_schema=False, use_dictionary=True)
    os.replace(tmp, path)
    return path


def read_dataset(path: Path) -> pd.DataFrame:
    """A dataset file as a DataFrame (``EmulatorError`` naming the file when it is missing or not one)."""
    path = Path(path)
    if not path.exists():
        raise EmulatorError(f"{path}: no dataset; build it with `python -m runs.emulator build --suite SUITE`")
    try:
        frame = pq.read_table(path).to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise EmulatorError(f"{path}: not a readable Parquet dataset ({str(exc).splitlines()[0]})") from None
    missing = [c for c in (*FIXED, "score", "reason") if c not in frame.columns]
    if missing:
        raise EmulatorError(f"{path}: not an emulator dataset (missing columns {missing})")
    return frame


def instance_rows(frame: pd.DataFrame, instance: str) -> pd.DataFrame:
    return frame[frame["instance"] == instance].reset_index(drop=True)


def encode_rows(frame: pd.DataFrame, space: SearchSpace) -> np.ndarray:
    """``(n, d)`` unit encodings of the rows' parameters: exactly ``space.encode`` of each configuration."""
    columns = [f"p.{name}" for name in space.names]
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise EmulatorError(f"dataset rows lack the {space.name!r} space's axes {missing[:3]}...")
    out = np.empty((len(frame), len(space)))
    for j, (axis, column) in enumerate(zip(space.axes, columns)):
        out[:, j] = [axis.encode(_plain(v)) for v in frame[column].to_numpy()]
    return out


def rows_sha256(frame: pd.DataFrame, space: SearchSpace) -> str:
    """Hash of what a model is fitted on: each row's configuration and score, in order."""
    digest = hashlib.sha256()
    for values, score in zip(frame[[f"p.{n}" for n in space.names]].itertuples(index=False), frame["score"]):
        digest.update(json.dumps([_plain(v) for v in values]).encode())
        digest.update(repr(float(score)).encode())
    return digest.hexdigest()
