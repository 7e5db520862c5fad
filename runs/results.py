"""A comparison's results: its records (from the per-run TSVs of a live folder, or from the derived tables of a
finished one: ``runs.tables``), the holdout scores of its winners, the random pools and the statistics' inputs.

``Runs`` is ``{instance: {searcher: {seed: [TrialRecord, ...] in evaluation order}}}``.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

import stats
from env import TrialRecord
from env.records import params_key
from harness import WindowError
from instances import Instance
from instances.pool import (
    DEFAULTS_INDEX,
    current_rows,
    evaluate_on_holdout,
    pool_path,
    pool_points,
    read_pool,
)
from runs import analysis, tables
from runs.execution import (
    RunSpec,
    canonical,
    config_instances,
    emulator_of,
    instance_of,
    problem_of,
    specs_of,
)
from runs.tables import Runs
from strategy.space import SearchSpace


def load_runs(specs: Sequence[RunSpec]) -> Runs:
    """The records of every run, from the per-run TSVs (written after the Optuna study)."""
    runs: Runs = {}
    for spec in specs:
        records = []
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                records = [TrialRecord.from_row(row) for row in csv.DictReader(handle, delimiter="\t")]
        runs.setdefault(spec.instance_id, {}).setdefault(spec.searcher, {})[spec.seed] = sorted(
            records, key=lambda r: r.eval_index)
    return runs


def merge_tsv(specs: Sequence[RunSpec], path: Path) -> int:
    """Concatenate the per-run TSVs into one ``trials.tsv`` (an ``instance`` column first, union of columns)."""
    rows, header = [], ["instance"]
    for spec in specs:
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t")
                header += [c for c in reader.fieldnames or [] if c not in header]
                rows.extend({"instance": spec.instance_id, **row} for row in reader)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def holdout_score(instance: Instance, values: dict[str, Any], cache: dict[str, Any]) -> dict[str, Any]:
    """The holdout score of ``values`` on ``instance`` (memoised in ``cache`` by instance fingerprint and params)."""
    key = f"{instance.fingerprint[:16]}|{params_key(values)}"
    if key not in cache:
        try:
            result = evaluate_on_holdout(instance, values, problem_of(canonical(instance)))
            cache[key] = {"score": result.score if math.isfinite(result.score) else "-inf",
                          "window": f"{result.first_day}..{result.last_day}"}
        except WindowError as exc:
            cache[key] = {"score": None, "window": str(exc)}
    return cache[key]


def holdout_scores(specs: Sequence[RunSpec], runs: Runs, cache_path: Path) -> dict[str, dict[str, Any]]:
    """Per instance: the defaults' holdout score and each run's winner's (in-sample, holdout); memoised in ``holdout.json``.

    Scored after every search has ended, by the driver, on the instance's own holdout window.
    """
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    out: dict[str, dict[str, Any]] = {}
    for definition in dict.fromkeys(spec.instance for spec in specs):
        instance = instance_of(definition)
        space = SearchSpace(instance.space)  # the instance's own space, as its Problem's (no data loaded)
        defaults = holdout_score(instance, space.values(space.base), cache)
        entry = out.setdefault(instance.id, {"defaults": defaults, "winners": {}})
        for searcher, seeds in runs.get(instance.id, {}).items():
            for seed, records in seeds.items():
                finite = [r for r in records if math.isfinite(r.score)]
                if not finite:
                    entry["winners"].setdefault(searcher, {})[seed] = {"in_sample": "-inf", "holdout": None}
                    continue
                winner = max(finite, key=lambda r: r.score)
                held = holdout_score(instance, dict(winner.params), cache)
                entry["winners"].setdefault(searcher, {})[seed] = {"in_sample": winner.score, **held,
                                                                    "params": dict(winner.params)}
        cache_path.write_text(json.dumps(cache, indent=1))
    return out


def score_value(value: Any) -> float:
    return -math.inf if value == "-inf" else (math.nan if value is None else float(value))


def random_pool(instance: Instance, config: dict[str, Any], runs: Runs) -> tuple[np.ndarray, str]:
    """The instance's pool of uniform random scores, and where it comes from.

    The suite's stored pool (``instances.pool``: 200 seeded configurations, this contract and fingerprint)
    when there is one; else the ``random`` searcher's evaluations in this experiment (independent uniform
    draws too); else empty (normalised scores then exclude the instance, saying why). An emulated experiment's
    pool is the emulator's scores at the suite pool's configurations (never a real score).
    """
    if config.get("objective") == "emulated":
        problem = problem_of(canonical(instance), emulator_of(config))
        units = [problem.space.encode(problem.space.params(v)) for k, v in pool_points(instance) if k != DEFAULTS_INDEX]
        return problem.evaluate_unit(np.array(units)), f"emulated pool ({len(units)} configurations, scored by the emulator)"
    pool = suite_pool(instance, config, "search")
    if pool.size:
        return pool, f"suite pool ({pool.size} configurations)"
    records = [r.score for recs in runs.get(instance.id, {}).get("random", {}).values() for r in recs]
    if records:
        return np.asarray(records, dtype=float), f"random searcher's {len(records)} evaluations"
    return np.empty(0), "no pool (run the random searcher, or describe the suite)"


def suite_pool(instance: Instance, config: dict[str, Any], window: str) -> np.ndarray:
    """The real scores ``(P,)`` of the suite's random configurations (the defaults left out) on ``instance``'s search
    window or holdout (``instances.pool``: this contract and fingerprint; ``python -m runs.instances --suite S
    --describe | --holdout-pool``); empty without a suite or a stored pool."""
    if not config.get("suite_path"):
        return np.empty(0)
    rows = current_rows(read_pool(pool_path(Path(config["suite_path"]), window)), instance)
    return rows[rows["index"] >= 0]["score"].to_numpy(dtype=float) if len(rows) else np.empty(0)


def holdout_pool(instance: Instance, config: dict[str, Any]) -> np.ndarray | None:
    """:func:`suite_pool` on the holdout, or None without one (and for an emulated experiment)."""
    pool = suite_pool(instance, config, "holdout") if config.get("objective") != "emulated" else np.empty(0)
    return pool if pool.size else None


def instance_results(config: dict[str, Any], runs: Runs, budget: int) -> tuple[list[stats.InstanceResults], dict]:
    """The statistics' inputs per instance: best-so-far curves, random pool, optimum and floor."""
    results, sources = [], {}
    for definition in config_instances(config).values():
        instance = instance_of(definition)
        seeds_by = runs.get(instance.id, {})
        pool, source = random_pool(instance, config, runs)
        scores = np.concatenate([pool] + [np.array([r.score for r in recs], dtype=float)
                                          for seeds in seeds_by.values() for recs in seeds.values()])
        finite = scores[np.isfinite(scores)]
        curves = {s: {seed: analysis.best_so_far(recs, budget) for seed, recs in seeds.items() if recs}
                  for s, seeds in seeds_by.items()}
        results.append(stats.InstanceResults(instance.id, curves, pool,
                                             optimum=float(finite.max()) if finite.size else None,
                                             floor=float(finite.min()) if finite.size else None))
        sources[instance.id] = source
    return results, sources


def whole_seeds(done: Collection[tuple[str, str, int]], config: dict[str, Any]) -> list[int]:
    """The seeds of ``config`` whose runs are done on every instance x searcher (``done``: ``(instance, searcher,
    seed)`` of the finished runs). Runs are queued in seed rounds (:func:`queue_order`), so a long experiment
    stopped part-way holds its first seeds whole: a report on them replicates over every instance."""
    return [seed for seed in config["seeds"]
            if all((instance, searcher, seed) in done
                   for instance in config_instances(config) for searcher in config["searchers"])]


def restrict_to_seeds(config: dict[str, Any], seeds: Sequence[int], queued: int) -> dict[str, Any]:
    """``config`` limited to ``seeds`` and marked ``partial`` (the seeds it was set up with, runs still queued)."""
    return {**config, "seeds": list(seeds), "partial": {"whole_seeds": list(seeds), "of_seeds": list(config["seeds"]),
                                                        "runs_not_done": queued}}


def load_experiment(folder: Path) -> tuple[dict[str, Any], list[RunSpec], Runs]:
    """A comparison folder's config, run specs and records (for the experiments and re-reporting).

    An experiment still running (or stopped part-way) is read on its whole seeds only (:func:`whole_seeds`, a run
    being done when its TSV, which grows as the run evaluates, holds the whole budget), with ``config["partial"]``
    saying so; a ``ValueError`` when no seed is whole. A finished comparison kept as tables (:mod:`runs.tables`) is
    read from its tables: every run, no storage needed."""
    if tables.is_tables(Path(folder)):
        config = tables.read_config(Path(folder))
        return config, specs_of(config, config["storage"], Path(folder)), tables.read_runs(Path(folder))
    config_path = Path(folder) / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{folder} is not a runs.compare experiment folder (no config.json)")
    config = json.loads(config_path.read_text())
    specs = specs_of(config, config["storage"], Path(folder))
    runs = load_runs(specs)
    done = {(spec.instance_id, spec.searcher, spec.seed) for spec in specs
            if len(runs[spec.instance_id][spec.searcher][spec.seed]) >= spec.budget}
    if len(done) < len(specs):
        seeds = whole_seeds(done, config)
        if not seeds:
            raise ValueError(f"{folder}: {len(specs) - len(done)} of {len(specs)} runs not done and no seed done on "
                             "every instance x searcher yet")
        config = restrict_to_seeds(config, seeds, len(specs) - len(done))
        specs = [spec for spec in specs if spec.seed in seeds]
        runs = {i: {s: {seed: recs for seed, recs in by_seed.items() if seed in seeds} for s, by_seed in by_s.items()}
                for i, by_s in runs.items()}
    return config, specs, runs
