"""A finished comparison kept as its derived tables, not as its Optuna journal.

A comparison's journal holds every trial, every run's study and the run queue; everything its report and the
follow-up experiments read is much smaller. This module writes and reads that: a *tables folder*,

* ``trials.parquet`` (:data:`TRIALS`): one row per trial (real evaluation), in run order (instance, searcher and
  seed as the experiment set them up, then ``trial`` ascending). Columns: ``instance``, ``searcher``, ``seed``,
  ``trial`` (the record's ``eval_index``, 0-based, budget units), ``score`` (``ensemble_score``, fraction units;
  ``-inf`` kept for a hard rejection), ``rejected`` (``score == -inf``), ``reason`` (which hard gate rejected it,
  ``instances.pool.rejection_reason``: ``"annualised return below -50%"`` / ``"stress Calmar below 0"``; empty when
  not rejected), ``wall_time_s`` (seconds the evaluation took, as the run's TSV kept it: 4 decimals), ``contract``
  (harness contract id), ``real`` (a harness evaluation, not a prediction), ``machine`` (the CPU of the run's
  completing worker, from its run info; null where the run predates that record), then one typed column per
  parameter ``p.<block.field>`` and per metric ``base.<metric>`` / ``stress.<metric>`` (units: ``harness.metrics``,
  percent for ``*_pct``). zstd-compressed.
* ``runs.parquet`` (:data:`RUNS`): one row per run info (``runs.worker.ExperimentQueue.infos()``: one per completed
  run claim, in the queue's order), one column per key; nested values (``searcher_stats``) as JSON text.
* ``config.json``: the experiment's set-up, ``storage`` replaced by ``"tables"`` (the source storage is in
  ``tables.json``) and ``"tables": TABLES_VERSION`` added;
* the report's own files, copied: ``holdout.json`` (the holdout scores of the defaults and each run's winner, keyed by
  instance fingerprint and parameters), ``warm.json`` where there is one, ``summary.json``, ``report.md``, ``*.png``;
* ``tables.json`` (:data:`MANIFEST`): version, files with their rows / bytes / SHA-256, counts, the source (storage,
  and the archived journal's SHA-256 where one was given) and the command that wrote it.

Both Parquet files carry :data:`TABLES_VERSION` and how to decode each column in their schema metadata
(``gemsearch.tables``), so that :func:`read_runs` and :func:`read_infos` give back exactly what was written:
``TrialRecord`` objects equal to the ones read from the per-run TSVs (ints stay ints, bools bools, floats
bit-identical, each record's keys in their own order) and run infos JSON-equal to the queue's.

``python -m runs.export`` writes a tables folder from a finished comparison; :mod:`runs.results` reads one like a
live comparison folder, so ``python -m runs.report`` and ``python -m runs.experiments --source`` work on it.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from env.records import TrialRecord
from instances.pool import rejection_reason

TABLES_VERSION = 1
"""The layout of a tables folder; a reader refuses any other."""
TRIALS = "trials.parquet"
RUNS = "runs.parquet"
MANIFEST = "tables.json"
CONFIG = "config.json"
COPIED = ("holdout.json", "warm.json", "summary.json", "report.md")
"""The report's files copied as they are (``warm.json`` only where present), with every ``*.png``."""
REQUIRED = ("summary.json", "report.md")
"""Files that make a comparison folder a finished one (its report was written)."""
META_KEY = b"gemsearch.tables"
COMPRESSION = "zstd"
COMPRESSION_LEVEL = 19
PAGE_BYTES = 1 << 28
"""Data page size limit (bytes): large enough for one page per column."""
SECTIONS = (("p.", "params"), ("base.", "base"), ("stress.", "stress"))
"""Prefix of a record's parameter / metric columns and the ``TrialRecord`` field it fills."""
TRIAL_COLUMNS = ("instance", "searcher", "seed", "trial", "score", "rejected", "reason", "wall_time_s", "contract",
                 "real", "machine")
"""The fixed leading columns of ``trials.parquet``."""
UNKNOWN_REASON = "rejected (metrics name no gate)"
"""``reason`` of a ``-inf`` trial whose metrics pass both gates (none in a harness-made record)."""

Runs = dict[str, dict[str, dict[int, list[TrialRecord]]]]
"""``{instance: {searcher: {seed: records in evaluation order}}}`` (as ``runs.results.load_runs``)."""


class TablesError(ValueError):
    """A folder that is not a tables folder, or a table that is missing, damaged or of another version."""


# --------------------------------------------------------------------------- typed columns
def _kind(values: Iterable[Any]) -> str:
    """How a column of Python values is stored: ``bool``, ``int``, ``float``, ``str`` (Arrow types, nulls for
    None), or ``json`` (text; mixed types, dicts, lists, ints beyond 64 bits: exact through ``json``)."""
    kinds = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, (bool, np.bool_)):
            kinds.add("bool")
        elif isinstance(value, numbers.Integral):
            kinds.add("int" if -2**63 <= value < 2**63 else "json")
        elif isinstance(value, float):
            kinds.add("float")
        elif isinstance(value, str):
            kinds.add("str")
        else:
            kinds.add("json")
    return kinds.pop() if len(kinds) == 1 else ("json" if kinds else "str")


ARROW = {"bool": pa.bool_(), "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "json": pa.string()}


def _encode(values: list[Any], kind: str) -> pa.Array:
    if kind == "json":
        values = [None if v is None else json.dumps(v) for v in values]
    elif kind == "int":
        values = [None if v is None else int(v) for v in values]
    elif kind == "bool":
        values = [None if v is None else bool(v) for v in values]
    return pa.array(values, type=ARROW[kind], from_pandas=False)  # from_pandas=False: NaN stays NaN, not null


def _decode(column: pa.ChunkedArray, kind: str) -> list[Any]:
    if column.null_count == 0 and kind in ("bool", "int", "float"):
        values = column.to_numpy().tolist()  # Python bool / int / float, bit for bit
    else:
        values = column.to_pylist()
    if kind == "json":
        values = [None if v is None else json.loads(v) for v in values]
    return values


def _keyed_table(rows: Sequence[Mapping[str, Any]], fixed: Mapping[str, pa.Array], meta: dict[str, Any]) -> pa.Table:
    """``fixed`` columns, then one typed column per key of ``rows`` (first-seen order) and a ``layout`` column:
    the index into ``meta["layouts"]`` of the row's own keys in their order (a null cell of a key the row has is a
    None; of a key it lacks, nothing)."""
    columns: dict[str, list[Any]] = {}
    layouts: dict[tuple[str, ...], int] = {}
    layout = []
    for i, row in enumerate(rows):
        layout.append(layouts.setdefault(tuple(row), len(layouts)))
        for key, value in row.items():
            if key not in columns:
                columns[key] = [None] * len(rows)
            columns[key][i] = value
    kinds = {key: _kind(values) for key, values in columns.items()}
    arrays = dict(fixed)
    clash = (set(arrays) | {"layout"}) & set(columns)
    if clash:
        raise ValueError(f"keys {sorted(clash)} clash with the table's fixed columns")
    arrays.update({key: _encode(values, kinds[key]) for key, values in columns.items()})
    arrays["layout"] = pa.array(layout, type=pa.int32())
    meta = {**meta, "version": TABLES_VERSION, "kinds": kinds, "layouts": [list(k) for k in layouts]}
    return pa.table(arrays).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})


def _write(table: pa.Table, path: Path) -> None:
    """zstd at :data:`COMPRESSION_LEVEL`, one page per column (the compressor then sees the whole column: the same
    configuration's metrics repeat across seeds and searchers), dictionaries for all but the float columns (their
    values are mostly distinct)."""
    floats = {f.name for f in table.schema if pa.types.is_floating(f.type)}
    pq.write_table(table, path, compression=COMPRESSION, compression_level=COMPRESSION_LEVEL, data_page_size=PAGE_BYTES,
                   use_dictionary=[name for name in table.column_names if name not in floats])


def _read(folder: Path, name: str, table_name: str) -> tuple[pa.Table, dict[str, Any]]:
    """A table of a tables folder and its metadata; ``TablesError`` for a missing, unreadable or foreign file."""
    path = Path(folder) / name
    if not path.exists():
        raise TablesError(f"{folder}: no {name} (not a comparison kept as tables; write one with "
                          "`python -m runs.export RUN_FOLDER OUT_FOLDER`)")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TablesError(f"{path}: not a readable Parquet table ({exc})") from exc
    raw = (table.schema.metadata or {}).get(META_KEY)
    try:
        meta = json.loads(raw) if raw is not None else None
    except ValueError:
        meta = None
    if not isinstance(meta, dict) or "table" not in meta:
        raise TablesError(f"{path}: not a gemsearch {table_name} table (no {META_KEY.decode()} metadata)")
    if meta["table"] != table_name:
        raise TablesError(f"{path}: not a gemsearch {table_name} table (a {meta['table']} table)")
    if meta.get("version") != TABLES_VERSION:
        raise TablesError(f"{path}: tables version {meta.get('version')!r}, this code reads {TABLES_VERSION}")
    missing = [c for c in [*meta.get("fixed", []), *meta["kinds"], "layout"] if c not in table.column_names]
    if missing:
        raise TablesError(f"{path}: damaged, columns {missing} missing")
    return table, meta


def _rows(table: pa.Table, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """The keyed rows of :func:`_keyed_table`, each with its own keys in their order."""
    kinds = meta["kinds"]
    values = {key: _decode(table.column(key), kind) for key, kind in kinds.items()}
    layouts = [[(key, values[key]) for key in keys] for keys in meta["layouts"]]
    return [{key: column[i] for key, column in layouts[k]} for i, k in enumerate(table.column("layout").to_pylist())]


# --------------------------------------------------------------------------- writing
def _machines(infos: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int], str | None]:
    """``{(instance, searcher, seed): machine}`` from the run infos (several lanes or machines: ``"A | B"``)."""
    seen: dict[tuple[str, str, int], list[str]] = {}
    for info in infos:
        names = seen.setdefault((info["instance"], info["searcher"], int(info["seed"])), [])
        if info.get("machine") and info["machine"] not in names:
            names.append(info["machine"])
    return {run: " | ".join(sorted(names)) or None for run, names in seen.items()}


def reason_of(record: TrialRecord) -> str:
    """Which hard gate rejected ``record`` (``instances.pool.rejection_reason`` of its base and stress metrics), or
    ``""`` when its score is finite."""
    if not record.rejected:
        return ""
    return rejection_reason(dict(record.base), dict(record.stress)) or UNKNOWN_REASON


def trials_table(runs: Runs, infos: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The ``trials.parquet`` table of ``runs`` (``T`` rows, one per record; machine from ``infos``)."""
    machines = _machines(infos)
    fixed: dict[str, list[Any]] = {c: [] for c in TRIAL_COLUMNS}
    keyed: list[dict[str, Any]] = []
    run_keys = []
    for instance, by_searcher in runs.items():
        for searcher, by_seed in by_searcher.items():
            for seed, records in by_seed.items():
                run_keys.append([instance, searcher, int(seed)])
                for record in sorted(records, key=lambda r: r.eval_index):
                    if record.searcher != searcher or record.seed != seed:
                        raise ValueError(f"a record of {record.searcher} seed {record.seed} filed under run "
                                         f"{instance}/{searcher}/seed{seed}")
                    for column, value in zip(TRIAL_COLUMNS, (
                            instance, searcher, int(seed), record.eval_index, float(record.score), record.rejected,
                            reason_of(record), float(record.wall_time_s), record.contract, bool(record.real),
                            machines.get((instance, searcher, int(seed))))):
                        fixed[column].append(value)
                    keyed.append({f"{prefix}{k}": v for prefix, field in SECTIONS
                                  for k, v in getattr(record, field).items()})
    types = {"instance": pa.string(), "searcher": pa.string(), "seed": pa.int64(), "trial": pa.int64(),
             "score": pa.float64(), "rejected": pa.bool_(), "reason": pa.string(), "wall_time_s": pa.float64(),
             "contract": pa.string(), "real": pa.bool_(), "machine": pa.string()}
    arrays = {c: pa.array(fixed[c], type=types[c], from_pandas=False) for c in TRIAL_COLUMNS}
    return _keyed_table(keyed, arrays, {"table": "trials", "fixed": list(TRIAL_COLUMNS), "runs": run_keys})


def runs_table(infos: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The ``runs.parquet`` table: ``R`` rows, one per run info in the given order."""
    return _keyed_table([dict(info) for info in infos], {}, {"table": "runs", "fixed": []})


def _file_entry(path: Path, rows: int | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"file": path.name, "bytes": path.stat().st_size,
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {**entry, "rows": rows} if rows is not None else entry


def write_tables(folder: Path, out: Path, runs: Runs, infos: list[dict], *, source: Mapping[str, Any] | None = None,
                 command: str | None = None) -> Path:
    """Write the tables folder ``out`` of the finished comparison in ``folder``; returns ``out / "tables.json"``.

    ``runs``: every run's records (``{instance: {searcher: {seed: [TrialRecord]}}}``, as read from the per-run TSVs),
    ``infos``: the run infos (``ExperimentQueue.infos()``, one dict per completed run claim). ``folder`` gives
    ``config.json`` and the report's files (:data:`COPIED`, ``*.png``). ``source``: what the tables were made from
    (e.g. ``{"storage": ..., "journal_sha256": ..., "journal_bytes": ...}``), kept in ``tables.json`` with
    ``command``. Existing files of ``out`` with these names are replaced; nothing else there is touched.
    """
    folder, out = Path(folder), Path(out)
    config = json.loads((folder / CONFIG).read_text())
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_table(runs, infos)
    _write(trials, out / TRIALS)
    _write(runs_table(infos), out / RUNS)
    storage = config.get("storage")
    config = {**config, "storage": "tables", "tables": TABLES_VERSION}
    (out / CONFIG).write_text(json.dumps(config, indent=1))
    copied = []
    for path in [*(folder / name for name in COPIED), *sorted(folder.glob("*.png"))]:
        if path.is_file():
            if path.resolve() != (out / path.name).resolve():
                shutil.copyfile(path, out / path.name)
            copied.append(path.name)
    manifest = {
        "tables": TABLES_VERSION,
        "trials": _file_entry(out / TRIALS, trials.num_rows),
        "runs": _file_entry(out / RUNS, len(infos)),
        "files": [CONFIG, *copied],
        "counts": {"instances": len(runs), "searchers": len({s for by in runs.values() for s in by}),
                   "runs": sum(len(by_seed) for by in runs.values() for by_seed in by.values()),
                   "trials": trials.num_rows, "run_infos": len(infos)},
        "source": {"experiment": config.get("name"), "storage": storage, **(dict(source) if source else {})},
        "command": command,
        "read": "runs.tables.read_runs / read_infos (trials.parquet, runs.parquet); config.json's storage is \"tables\"",
    }
    path = out / MANIFEST
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


# --------------------------------------------------------------------------- reading
def is_tables(folder: Path) -> bool:
    """Whether ``folder`` holds a comparison kept as tables: ``trials.parquet`` and a ``config.json`` with ``"tables"``."""
    folder = Path(folder)
    if not (folder / TRIALS).is_file() or not (folder / CONFIG).is_file():
        return False
    try:
        return "tables" in json.loads((folder / CONFIG).read_text())
    except (ValueError, OSError):
        return False


def read_runs(folder: Path) -> Runs:
    """Every run's records from ``folder/trials.parquet``: ``{instance: {searcher: {seed: [TrialRecord]}}}``, each
    list sorted by ``eval_index``, in the written order of runs (a run with no trials is an empty list).

    The records equal the ones written (``write_tables``; from the TSVs: ``TrialRecord.from_row``'s types). The
    derived columns (``rejected``, ``reason``, ``machine``) are not part of a record. ``TablesError`` for a missing,
    damaged or foreign table."""
    table, meta = _read(Path(folder), TRIALS, "trials")
    values = {key: _decode(table.column(key), kind) for key, kind in meta["kinds"].items()}
    layouts = []  # per layout: for params, base and stress, the record's keys and their columns, in order
    for keys in meta["layouts"]:
        layouts.append([[(key[len(prefix):], values[key]) for key in keys if key.startswith(prefix)]
                        for prefix, _ in SECTIONS])
        if sum(map(len, layouts[-1])) != len(keys):
            raise TablesError(f"{Path(folder) / TRIALS}: damaged, a column outside {[p for p, _ in SECTIONS]}")
    fixed = {c: _decode(table.column(c), kind) for c, kind in (
        ("instance", "str"), ("searcher", "str"), ("seed", "int"), ("trial", "int"), ("score", "float"),
        ("wall_time_s", "float"), ("contract", "str"), ("real", "bool"))}
    runs: Runs = {}
    for instance, searcher, seed in meta.get("runs", []):
        runs.setdefault(instance, {}).setdefault(searcher, {})[int(seed)] = []
    for i, k in enumerate(table.column("layout").to_pylist()):
        params, base, stress = ({key: column[i] for key, column in section} for section in layouts[k])
        instance, searcher, seed = fixed["instance"][i], fixed["searcher"][i], fixed["seed"][i]
        record = TrialRecord(eval_index=fixed["trial"][i], searcher=searcher, seed=seed, params=params,
                             score=fixed["score"][i], base=base, stress=stress, wall_time_s=fixed["wall_time_s"][i],
                             contract=fixed["contract"][i], real=fixed["real"][i])
        runs.setdefault(instance, {}).setdefault(searcher, {}).setdefault(seed, []).append(record)
    for by_searcher in runs.values():
        for by_seed in by_searcher.values():
            for records in by_seed.values():
                records.sort(key=lambda r: r.eval_index)
    return runs


def read_infos(folder: Path) -> list[dict]:
    """The run infos from ``folder/runs.parquet``, in the written order, each JSON-equal to the one written (its
    keys in their order). ``TablesError`` for a missing, damaged or foreign table."""
    table, meta = _read(Path(folder), RUNS, "runs")
    return _rows(table, meta)


def read_config(folder: Path) -> dict[str, Any]:
    """``folder/config.json`` of a tables folder (``TablesError`` when it is not one)."""
    folder = Path(folder)
    if not is_tables(folder):
        raise TablesError(f"{folder}: not a comparison kept as tables (needs {TRIALS} and a {CONFIG} with \"tables\")")
    config = json.loads((folder / CONFIG).read_text())
    if config["tables"] != TABLES_VERSION:
        raise TablesError(f"{folder / CONFIG}: tables version {config['tables']!r}, this code reads {TABLES_VERSION}")
    return config
