"""Joint-space experiments: the seed's open questions, answered over problem instances.

    python -m runs.experiments interactions --suite real-v1    # does joint search lift the phased sweep's result?
    python -m runs.experiments deletion --suite real-v1        # with component switches searchable, is deleting preferred?
    python -m runs.experiments generalization --suite real-v1  # do winners hold up on their instances' holdouts?
    python -m runs.experiments survivorship --suite synthetic-v1   # point-in-time universe vs survivors only
    python -m runs.experiments interactions --source runs/out/NAME  # analyse an existing comparison instead

Each experiment runs its searches through ``runs.compare`` (in ``runs/out/<name>/search/``, resumable)
or reads an existing comparison folder (``--source``; ``interactions`` keeps each instance's finished GP fit in
``runs/out/<name>/interaction_fits/``, so it resumes too), then answers per instance and over instances:
every aggregate carries a 95% bootstrap CI over instances (``stats``), and an answer says "yes" or
"no" only where that CI excludes zero; otherwise it says that the data cannot tell. Without ``--suite``
the search is one instance (``--universe``, default split): then no answer is possible and the report
says so. ``--quick``: with ``--suite``, its quick instances, 2 seeds, budget 40; without, synthetic-small,
3 seeds, budget 60.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import itertools
import json
import math
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

import stats
from data import survivors
from env.records import TrialRecord
from instances import Instance
from runs import compare
from runs.execution import (
    canonical,
    config_instances,
    instance_of,
    problem_of,
    specs_of,
)
from runs.report import fmt, holdout_rank_table, holdout_results_of
from runs.results import (
    Runs,
    holdout_scores,
    instance_results,
    load_experiment,
    score_value,
)
from strategy.space import SearchSpace
from surrogate.gp import GPSurrogate

EXPERIMENTS = ("interactions", "deletion", "generalization", "survivorship")
COMPONENTS = ("switches.use_bull", "switches.use_bear", "switches.use_ranging", "switches.use_hmm")
GATE = "switches.risk_off_gate"
KEY_PAIR = ("bull.r2_threshold", "bear.r2_threshold")
MIN_FINITE_FOR_SURROGATE = 12
MAX_TRIALS_FOR_SURROGATE = 600
"""The interaction GP is fitted to at most this many finite trials of an instance (a seeded uniform subset beyond).
An exact GP with 35 ARD length scales costs O(n^3) per optimiser step and O(n^2 d) memory for its gradient: on a
comparison of 11 searchers x 2 seeds x 100 evaluations (about 1,500 finite trials per instance) the fits had not
finished one instance in 14 minutes; the quick comparisons (at most 560 trials) are below the cap and unchanged."""
INTERACTION_FIT_VERSION = 1
"""Part of the key of the stored interaction fits (``interaction_fits/``): raise it whenever :func:`_pair_strengths`,
:func:`h_statistic` or the GP surrogate change what they return, so no stored fit of the old code is reused."""


# --------------------------------------------------------------------------- searches and shared helpers
def _search(args: argparse.Namespace, folder: Path, searchers: Sequence[str], space: str,
            extra: Sequence[Instance] = ()) -> tuple[dict[str, Any], Runs]:
    """Run (or resume) the experiment's comparison in ``folder/search``, or read ``--source``; config and runs.

    ``extra``: more instances to search beside the suite's (written to a suite file in ``folder``).
    """
    if args.source:
        config, _, runs = load_experiment(Path(args.source))
        return config, runs
    argv = ["--budget", str(args.budget), "--seeds", str(args.seeds), "--searcher", *searchers, "--space", space,
            "--out", str(folder), "--name", "search", "--jobs", str(args.jobs)]
    if extra:
        argv += ["--suite", str(_suite_file(folder, [*_suite_instances(args), *extra]))]
    elif args.suite:
        argv += ["--suite", args.suite] + (["--instances", *args.instances] if args.instances else [])
    else:
        argv += ["--universe", args.universe]
    if (folder / "search" / "config.json").exists():
        argv.append("--resume")
    code = compare.main(argv)
    if code != 0:
        raise SystemExit(code)
    config, _, runs = load_experiment(folder / "search")
    return config, runs


def _suite_instances(args: argparse.Namespace) -> list[Instance]:
    if not args.suite:
        return [Instance.default(args.universe, space=args.space)]
    from instances import load_suite

    return list(load_suite(args.suite).select(args.instances))


def _suite_file(folder: Path, instances: Sequence[Instance]) -> Path:
    """A suite file holding ``instances`` (so that one comparison searches them all)."""
    lines = [f'name = "{folder.name}"', ""]
    for instance in instances:
        d = instance.definition()
        if d["split"]["holdout"][1] is None:  # the default split's open holdout: to the data's last day
            d["split"]["holdout"][1] = str(instance.universe_candles().dates[-1])
        lines += ["[[instance]]", f'id = "{d["id"]}"', f'universe = "{d["universe"]}"', f"seed = {d['seed']}",
                  f'venue = "{d["venue"]}"', f'space = "{d["space"]}"', f'strategy = "{d["strategy"]}"',
                  f'search = {json.dumps(d["split"]["search"])}', f'holdout = {json.dumps(d["split"]["holdout"])}',
                  f"warmup_days = {d['split']['warmup_days']}"]
        if d["tokens"] is not None:
            lines.append(f"tokens = {json.dumps(d['tokens'])}")
        if d["liquid_top"] is not None:
            lines += [f"liquid_top = {d['liquid_top']}", f"liquid_lookback_days = {d['liquid_lookback_days']}"]
        lines.append("")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "instances.toml"
    path.write_text("\n".join(lines))
    return path


def _winners(runs: dict[str, dict[int, list[TrialRecord]]]) -> dict[str, dict[int, TrialRecord]]:
    """The best finite record of every run of one instance."""
    out: dict[str, dict[int, TrialRecord]] = {}
    for name, seeds in runs.items():
        for seed, records in seeds.items():
            finite = [r for r in records if math.isfinite(r.score)]
            if finite:
                out.setdefault(name, {})[seed] = max(finite, key=lambda r: r.score)
    return out


def _aggregate(values: dict[str, float], seed: int) -> dict[str, Any]:
    """IQM and mean over instances of one value per instance, with bootstrap CIs (instances resampled)."""
    finite = {k: v for k, v in values.items() if v is not None and math.isfinite(v)}
    if not finite:
        return {"iqm": math.nan, "iqm_ci": [math.nan, math.nan], "mean": math.nan, "mean_ci": [math.nan, math.nan],
                "n_instances": 0}
    agg = stats.bootstrap_aggregates([np.array([v]) for _, v in sorted(finite.items())], seed=seed)
    return {"iqm": float(agg["iqm"]), "iqm_ci": [float(c) for c in agg["iqm_ci"]], "mean": float(agg["mean"]),
            "mean_ci": [float(c) for c in agg["mean_ci"]], "n_instances": len(finite)}


def _answer(agg: dict[str, Any], yes: str, no: str, min_instances: int = 5) -> str:
    """``yes`` when the CI of the IQM lies above zero, ``no`` below it, else "the data cannot tell"."""
    lo, hi = agg["iqm_ci"]
    if agg["n_instances"] < min_instances or not (math.isfinite(lo) and math.isfinite(hi)):
        return f"the data cannot tell ({agg['n_instances']} instance(s); at least {min_instances} are needed)"
    if lo > 0:
        return yes
    if hi < 0:
        return no
    return "the data cannot tell (the 95% CI includes zero)"


def _add_wilcoxon_holm(aggregates: dict[str, dict[str, Any]], per_instance: dict[str, dict[str, float]]) -> None:
    """Add ``wilcoxon_p`` (signed-rank test of each searcher's finite per-instance values against zero) and
    ``wilcoxon_holm_p`` (Holm-corrected over the searchers of ``aggregates``) to each searcher's aggregate."""
    for s, agg in aggregates.items():
        agg["wilcoxon_p"] = stats.wilcoxon_p([v for v in per_instance[s].values() if math.isfinite(v)])
    for agg, adjusted in zip(aggregates.values(), stats.holm([a["wilcoxon_p"] for a in aggregates.values()])):
        agg["wilcoxon_holm_p"] = adjusted


def _answer_holm(agg: dict[str, Any], ci: Sequence[float], holm_p: float | None, yes: str, no: str) -> str:
    """:func:`_answer` on ``ci``, and a yes or no only where the family-wise (Holm-corrected) p is below 0.05 too."""
    said = _answer({"iqm_ci": ci, "n_instances": agg["n_instances"]}, yes, no)
    if said in (yes, no) and not (holm_p is not None and holm_p < 0.05):
        return f"the data cannot tell (the CI excludes zero, but Holm p {fmt(holm_p)} over the searchers)"
    return said


def _ci(agg: dict[str, Any]) -> str:
    return f"{fmt(agg['iqm'])} [{fmt(agg['iqm_ci'][0])}, {fmt(agg['iqm_ci'][1])}] (n={agg['n_instances']})"


def _write(folder: Path, title: str, question: str, setup: str, tables: Sequence[str], answer: str,
           data: dict[str, Any]) -> None:
    report = [f"# {title}", "", f"**Question.** {question}", "", f"**Set-up.** {setup}", "", *tables, "",
              f"**Answer.** {answer}", ""]
    (folder / "report.md").write_text("\n".join(report))
    (folder / "results.json").write_text(json.dumps(stats.json_safe(data), indent=1, allow_nan=False) + "\n")
    print("\n".join(report))
    print(f"report: {folder / 'report.md'}")


def _setup(config: dict[str, Any], space: SearchSpace) -> str:
    n = len(config["instances"])
    where = f"suite `{config['suite']}`, {n} instance(s)" if config.get("suite") else f"one instance ({config['instances'][0]['id']})"
    return (f"{where}, space {space.name} ({len(space)} axes), budget {config['budget']}, seeds {config['seeds']}, "
            f"searchers {config['searchers']}; aggregates: IQM over instances [95% bootstrap CI] (docs/reference/statistics.md).")


# --------------------------------------------------------------------------- interactions
def h_statistic(surrogate: Any, i: int, j: int, background: np.ndarray, grid: int = 7) -> float:
    """Interaction share of axes ``i`` and ``j`` in the surrogate mean: 0 = additive, 1 = pure interaction.

    The two-axis partial dependence ``PD_ij(a, b)`` (the surrogate mean with axes
    ``i, j`` set to ``a, b``, averaged over ``background`` ``(n, d)`` unit points) is
    computed on a ``grid x grid`` lattice and split by a two-way ANOVA into row and
    column main effects and a residual; the statistic is the residual's share of
    the variance of ``PD_ij`` (Friedman's H^2 with the main effects taken from the
    same lattice, so it lies in ``[0, 1]``).
    """
    values = np.linspace(0, 1, grid)
    pd_ij = np.empty((grid, grid))
    for row, a in enumerate(values):
        x = np.repeat(background[None], grid, axis=0)  # (grid, n, d)
        x[:, :, i] = a
        x[:, :, j] = values[:, None]
        mean = surrogate.predict(surrogate.space.snap(x.reshape(-1, background.shape[1]))).mean
        pd_ij[row] = mean.reshape(grid, -1).mean(axis=1)
    centred = pd_ij - pd_ij.mean()
    residual = centred - centred.mean(axis=1, keepdims=True) - centred.mean(axis=0, keepdims=True)
    total = float((centred**2).sum())
    return float((residual**2).sum() / total) if total > 1e-18 else 0.0


def _pair_strengths(space: SearchSpace, records: Sequence[TrialRecord]) -> dict[tuple[str, str], float] | None:
    """H^2 of every pair of core axes on a GP fitted to the instance's finite trials (None: too few; at most
    ``MAX_TRIALS_FOR_SURROGATE`` of them)."""
    finite = [r for r in records if math.isfinite(r.score)]
    if len(finite) < MIN_FINITE_FOR_SURROGATE:
        return None
    if len(finite) > MAX_TRIALS_FOR_SURROGATE:
        keep = np.sort(np.random.default_rng(0).choice(len(finite), MAX_TRIALS_FOR_SURROGATE, replace=False))
        finite = [finite[i] for i in keep]
    x = np.array([space.encode(space.params(dict(r.params))) for r in finite])
    surrogate = GPSurrogate(space, seed=0).fit(x, np.array([r.score for r in finite]))
    background = space.snap(x[np.random.default_rng(0).choice(len(x), min(48, len(x)), replace=False)])
    core = [n for n in SearchSpace("core").names if n in space.names]
    return {(a, b): h_statistic(surrogate, space.names.index(a), space.names.index(b), background)
            for a, b in itertools.combinations(core, 2)}


def _pair_strengths_one_thread(space: SearchSpace, records: Sequence[TrialRecord]) -> dict[tuple[str, str], float] | None:
    with threadpool_limits(limits=1):  # the same floating-point results in the serial and the parallel path
        return _pair_strengths(space, records)


def pair_strengths_by_instance(space: SearchSpace, records: dict[str, list[TrialRecord]], jobs: int = 1,
                               cache: Path | None = None) -> dict[str, dict[tuple[str, str], float] | None]:
    """:func:`_pair_strengths` of every instance's trials, one BLAS thread each, on ``jobs`` processes (the GP fits
    take minutes per instance on a full comparison; the result does not depend on ``jobs``).

    ``cache``: a folder holding one JSON file per finished instance, written as each fit ends and reused when the
    instance's trials, space and fit settings are the same, so a stopped experiment resumes where it was."""
    done = {instance: _cached_strengths(cache, instance, space, recs) for instance, recs in records.items()}
    todo = [instance for instance, value in done.items() if value is _MISSING]
    if jobs <= 1 or len(todo) <= 1:
        for instance in todo:
            done[instance] = _store_strengths(cache, instance, space, records[instance],
                                              _pair_strengths_one_thread(space, records[instance]))
        return done
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {pool.submit(_pair_strengths_one_thread, space, records[instance]): instance for instance in todo}
        for future in as_completed(futures):
            instance = futures[future]
            done[instance] = _store_strengths(cache, instance, space, records[instance], future.result())
    return done


_MISSING = object()


def _strengths_key(space: SearchSpace, records: Sequence[TrialRecord]) -> str:
    """Fingerprint of one instance's interaction fit: its trials in order (configuration, score; the subset and the
    background are drawn by position), the space's axes and the fit's settings and version."""
    text = json.dumps([INTERACTION_FIT_VERSION, space.name, space.names, MIN_FINITE_FOR_SURROGATE,
                       MAX_TRIALS_FOR_SURROGATE, [[r.params, repr(r.score)] for r in records]], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _cached_strengths(cache: Path | None, instance: str, space: SearchSpace, records: Sequence[TrialRecord]) -> Any:
    """The stored fit of ``instance`` when its key matches; ``_MISSING`` when absent, stale or unreadable (refit)."""
    path = cache / f"{instance}.json" if cache is not None else None
    if path is None or not path.exists():
        return _MISSING
    try:
        stored = json.loads(path.read_text())
        if stored["key"] != _strengths_key(space, records):
            return _MISSING
        pairs = stored["pairs"]
        return None if pairs is None else {(a, b): float(h) for a, b, h in pairs}
    except (ValueError, KeyError, TypeError):
        return _MISSING


def _store_strengths(cache: Path | None, instance: str, space: SearchSpace, records: Sequence[TrialRecord],
                     strengths: dict[tuple[str, str], float] | None) -> dict[tuple[str, str], float] | None:
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        pairs = None if strengths is None else [[a, b, h] for (a, b), h in strengths.items()]
        tmp = cache / f".{instance}.json.tmp"
        tmp.write_text(json.dumps({"key": _strengths_key(space, records), "pairs": pairs}))
        tmp.replace(cache / f"{instance}.json")
    return strengths


def median_lift(best: Sequence[float], phased: Sequence[float]) -> float:
    """A searcher's median best over seeds minus the phased sweep's (raw score units; -inf = nothing feasible).

    +inf where only the searcher found a feasible configuration, -inf where only the sweep did, NaN where neither
    did or either did not run.
    """
    if not best or not phased:
        return math.nan
    return float(np.median(best)) - float(np.median(phased))


def interactions(args: argparse.Namespace, folder: Path) -> None:
    config, runs = _search(args, folder, args.searchers or ["phased", "tpe", "gp"], args.space)
    space = SearchSpace(config["instances"][0]["space"])
    results, _ = instance_results(config, runs, config["budget"])
    normalised = {n.instance: n for n in stats.normalise_all(results, [config["budget"]]) if not n.excluded}
    joint = [s for s in config["searchers"] if s != "phased"]
    lifts: dict[str, dict[str, float]] = {s: {} for s in joint}
    norm_diff: dict[str, dict[str, float]] = {s: {} for s in joint}
    key_h, strongest = {}, {}
    rows = ["| instance | phased best | " + " | ".join(f"{s} - phased (median over seeds)" for s in joint)
            + " | H^2 bull x bear r2 | strongest pair (H^2) |", "|---" * (len(joint) + 4) + "|"]
    pooled = {instance: [r for seeds in seeds_by.values() for recs in seeds.values() for r in recs]
              for instance, seeds_by in sorted(runs.items())}
    all_strengths = pair_strengths_by_instance(space, pooled, jobs=args.jobs, cache=folder / "interaction_fits")
    for instance, seeds_by in sorted(runs.items()):
        winners = _winners(seeds_by)

        def best_of_each_seed(searcher: str) -> list[float]:
            """The searcher's best score in each of its runs on this instance (-inf: nothing feasible)."""
            mine = winners.get(searcher, {})
            return [mine[seed].score if seed in mine else -math.inf for seed in seeds_by.get(searcher, {})]

        phased = best_of_each_seed("phased")
        base = float(np.median(phased)) if phased else math.nan
        cells = []
        for s in joint:
            lift = median_lift(best_of_each_seed(s), phased)
            lifts[s][instance] = lift
            n = normalised.get(instance)
            if n is not None and s in n.scores and "phased" in n.scores:
                norm_diff[s][instance] = float(n.at(s, config["budget"]).mean() - n.at("phased", config["budget"]).mean())
            cells.append(fmt(lift))
        strengths = all_strengths[instance]
        if strengths:
            key_h[instance] = strengths.get(KEY_PAIR, math.nan)
            top = max(strengths.items(), key=lambda kv: kv[1])
            strongest[instance] = f"{top[0][0]} x {top[0][1]} ({top[1]:.2f})"
        rows.append(f"| {instance} | {fmt(base)} | " + " | ".join(cells) + f" | {fmt(key_h.get(instance))} | "
                    f"{strongest.get(instance, 'n/a (too few finite trials)')} |")
    summary = {s: {"raw_lift": _aggregate(lifts[s], seed=1), "normalised_lift": _aggregate(norm_diff[s], seed=2)}
               for s in joint}
    _add_wilcoxon_holm({s: summary[s]["normalised_lift"] for s in joint}, norm_diff)

    def verdict(s: str, yes: str, no: str) -> str:
        lift = summary[s]["normalised_lift"]
        return _answer_holm(lift, lift["iqm_ci"], lift["wilcoxon_holm_p"], yes, no)

    agg_h = _aggregate(key_h, seed=3)
    s_rows = ["| searcher | lift over phased, raw score: IQM [95% CI] | lift, normalised: IQM [95% CI] | Holm p | "
              "joint search beats the phased sweep? |", "|---|---|---|---|---|"]
    for s in joint:
        s_rows.append(f"| {s} | {_ci(summary[s]['raw_lift'])} | {_ci(summary[s]['normalised_lift'])} | "
                      f"{fmt(summary[s]['normalised_lift']['wilcoxon_holm_p'])} | "
                      f"{verdict(s, 'yes', 'no: the phased sweep is better')} |")
    s_rows += ["", "Holm p: two-sided Wilcoxon signed-rank test of the per-instance normalised lifts, Holm-corrected over "
               "the searchers; a yes or no needs the CI to exclude zero and this p below 0.05."]
    answers = "; ".join(f"{s}: {verdict(s, 'beats the phased sweep', 'loses to the phased sweep')}" for s in joint)
    answer = (f"Joint search against the phased one-at-a-time sweep, per searcher: {answers}. The bull x bear "
              f"r2_threshold interaction share H^2 is {_ci(agg_h)} over instances (0 = additive).")
    _write(folder, "Interactions: joint search vs the phased sweep",
           "Do joint-space searchers find configurations the phased one-at-a-time sweep cannot (the seed's headline "
           "number: the joint-space lift), and how strongly do the blocks interact (bull x bear r2_threshold)?",
           _setup(config, space) + " Lift = a searcher's best minus the phased sweep's best on the same instance (median "
           "over seeds; inf where only the searcher found a feasible configuration, n/a where neither did; the raw "
           "column aggregates the finite lifts, the normalised one every instance). H^2 = "
           "interaction share of each pair of core axes on a GP fitted to the instance's finite trials (a seeded subset of "
           f"{MAX_TRIALS_FOR_SURROGATE} where there are more; two-way ANOVA "
           "of the pair's partial dependence on a 7x7 grid, 48 background points).",
           ["## Over instances", "", *s_rows, "", "## Per instance", "", *rows], answer,
           {"summary": summary, "h2_bull_bear": {"per_instance": key_h, "aggregate": agg_h}, "lifts": lifts,
            "normalised_lifts": norm_diff, "strongest": strongest})


# --------------------------------------------------------------------------- deletion
def deletion(args: argparse.Namespace, folder: Path) -> None:
    config, runs = _search(args, folder, args.searchers or ["random", "tpe", "gp"], "joint")
    space = SearchSpace("joint")
    diffs, matched, shares, rows = {}, {}, {axis: {} for axis in (*COMPONENTS, GATE)}, []
    dropped: dict[str, tuple[str, ...]] = {}  # instance -> components the best deleting configuration switches off
    rows = ["| instance | best intact | best with a deletion | it drops | difference | size-matched difference (m trials) "
            "| size-matched / in-sample range | top-10% share deleting (bull / bear / ranging / hmm) | random's share |",
            "|---|---|---|---|---|---|---|---|---|"]
    results, _ = instance_results(config, runs, config["budget"])
    scales = stats.in_sample_scales(results, config["budget"])
    scaled: dict[str, float] = {}

    def deletes(r: TrialRecord, axis: str) -> bool:
        return bool(r.params[axis]) if axis == GATE else not r.params[axis]

    for instance, seeds_by in sorted(runs.items()):
        records = [r for seeds in seeds_by.values() for recs in seeds.values() for r in recs]
        finite = sorted((r for r in records if math.isfinite(r.score)), key=lambda r: -r.score)
        intact = [r for r in finite if all(r.params[c] for c in COMPONENTS)]
        cut = [r for r in finite if not all(r.params[c] for c in COMPONENTS)]
        best_intact = intact[0].score if intact else -math.inf
        best_cut = cut[0].score if cut else -math.inf
        diff = best_cut - best_intact if math.isfinite(best_intact) and math.isfinite(best_cut) else math.nan
        diffs[instance] = diff
        if cut:
            dropped[instance] = tuple(c for c in COMPONENTS if not cut[0].params[c])
        matched[instance], m = size_matched_difference([r.score for r in cut], [r.score for r in intact])
        if instance in scales and math.isfinite(matched[instance]):
            scaled[instance] = matched[instance] / scales[instance]
        top = finite[: max(1, len(finite) // 10)]
        rand = [r for recs in seeds_by.get("random", {}).values() for r in recs]
        for axis in shares:
            top_share = float(np.mean([deletes(r, axis) for r in top])) if top else math.nan
            rand_share = float(np.mean([deletes(r, axis) for r in rand])) if rand else math.nan
            shares[axis][instance] = top_share - rand_share if rand else math.nan
        top_text = " / ".join(fmt(float(np.mean([deletes(r, c) for r in top])) if top else math.nan, 2)
                              for c in COMPONENTS)
        rand_text = " / ".join(fmt(float(np.mean([deletes(r, c) for r in rand])) if rand else math.nan, 2)
                               for c in COMPONENTS)
        drops = ", ".join(_short(c) for c in dropped[instance]) if instance in dropped else "n/a"
        rows.append(f"| {instance} | {fmt(best_intact)} | {fmt(best_cut)} | {drops} | {fmt(diff)} | "
                    f"{fmt(matched[instance])} ({m}) | {fmt(scaled.get(instance, math.nan))} | {top_text} | "
                    f"{rand_text} |")
    agg = _aggregate(diffs, seed=4)
    agg_matched = _aggregate(matched, seed=11)
    agg_scaled = _aggregate(scaled, seed=12)
    unscaled = len(runs) - len(scales)
    share_aggs = {axis: _aggregate(values, seed=5 + k) for k, (axis, values) in enumerate(shares.items())}
    s_rows = ["| component | top-10% share minus random's share: IQM [95% CI] |", "|---|---|"]
    s_rows += [f"| {axis}{' (using the gate)' if axis == GATE else ' (deleted)'} | {_ci(a)} |" for axis, a in share_aggs.items()]
    wins = {i for i, d in scaled.items() if d > 0}
    d_rows = ["| component | dropped by the best deleting configuration: instances | of those where it beats the intact "
              "one (size-matched) |", "|---|---|---|"]
    d_rows += [f"| {_short(c)} | {sum(c in d for d in dropped.values())} of {len(dropped)} | "
               f"{sum(c in d for i, d in dropped.items() if i in wins)} of {len(wins & set(dropped))} |"
               for c in COMPONENTS]
    answer = (f"Best configuration with at least one component deleted minus the best intact one: {_ci(agg)} over "
              f"instances (raw score units); the same with both sides at the same number of trials (size-matched): "
              f"{_ci(agg_matched)}, divided by each instance's in-sample range: {_ci(agg_scaled)}; deletion wins under "
              f"joint search: {_answer(agg_scaled, 'yes', 'no: the intact ensemble is better')} (decided on the "
              "size-matched difference in in-sample ranges: most trials delete something, and the best of many trials "
              "beats the best of few by selection alone; raw scores would let the instances with large scores decide). "
              "The shares show which components the best trials switch off more often than random search does.")
    _write(folder, "Deletion: do joint searchers prefer deleting components?",
           "With the component switches in the search space, is the best configuration one that deletes a specialist or "
           "the HMM? Does the seed's 'deletion wins' survive joint search over many instances?",
           _setup(config, space) + " Size-matched difference: the expected best of m trials drawn without replacement "
           "from the deleting trials minus the same from the intact ones, m = the smaller of the two counts of finite "
           "trials (`runs.experiments.size_matched_difference`); divided by the instance's in-sample range (its optimum "
           "minus random search's expected best at the budget, the normalised score's denominator; "
           f"{unscaled} instance(s) without one left out).",
           ["## Over instances", "", f"Best deleted minus best intact (raw score units): {_ci(agg)}", "",
            f"Size-matched (expected best of m trials each; raw score units): {_ci(agg_matched)}", "",
            f"Size-matched, in in-sample ranges (the answer's): {_ci(agg_scaled)}", "",
            *s_rows, "", *d_rows, "", "## Per instance", "", *rows], answer,
           {"difference": {"per_instance": diffs, "aggregate": agg},
            "size_matched_difference": {"per_instance": matched, "aggregate": agg_matched},
            "size_matched_scaled": {"per_instance": scaled, "aggregate": agg_scaled, "scales": scales,
                                    "n_unscaled": unscaled}, "shares": share_aggs,
            "dropped_by_best_deleting": {i: list(d) for i, d in dropped.items()},
            # kept for the single-instance report and its test: the best scores pooled over instances
            "best_intact": max((r.score for seeds_by in runs.values() for seeds in seeds_by.values()
                                for recs in seeds.values() for r in recs
                                if math.isfinite(r.score) and all(r.params[c] for c in COMPONENTS)), default=-math.inf),
            "best_deleted": max((r.score for seeds_by in runs.values() for seeds in seeds_by.values()
                                 for recs in seeds.values() for r in recs
                                 if math.isfinite(r.score) and not all(r.params[c] for c in COMPONENTS)),
                                default=-math.inf)})


def _short(component: str) -> str:
    """``switches.use_bear`` -> ``bear``."""
    return component.removeprefix("switches.use_")


def size_matched_difference(deleting: Sequence[float], intact: Sequence[float]) -> tuple[float, int]:
    """Expected best of ``m`` trials of ``deleting`` minus the same of ``intact``, ``m`` = the smaller count.

    Scores are finite (``-inf`` left out by the caller). The raw "best deleting minus best intact" favours the
    larger set: a uniform joint sample deletes at least one of four components in about 94% of its trials, and the
    maximum of many draws exceeds the maximum of few from the same distribution. Here each side is the expected
    best of ``m`` of its trials drawn without replacement (``stats.expected_best_of_subset``; the smaller
    side's is its own best). Returns ``(difference, m)``;
    ``(nan, 0)`` when either set is empty.
    """
    m = min(len(deleting), len(intact))
    if m == 0:
        return math.nan, 0
    return stats.expected_best_of_subset(deleting, m) - stats.expected_best_of_subset(intact, m), m


# --------------------------------------------------------------------------- generalization
def rejection_excess(holdout: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """``{searcher: {instance: share of its winners rejected (-inf) on the holdout minus 1 if the defaults are
    rejected there, else 0}}``: paired by instance, so the instances where everything is rejected cancel out.

    ``holdout`` is ``runs.holdout_scores``' mapping; winners or defaults not scored are left out."""
    excess: dict[str, dict[str, float]] = {}
    for instance, h in sorted(holdout.items()):
        default = score_value(h["defaults"]["score"])
        if math.isnan(default):
            continue
        for searcher, seeds in h["winners"].items():
            scored = [score_value(w.get("score")) for w in seeds.values()]
            scored = [x for x in scored if not math.isnan(x)]
            if scored:
                excess.setdefault(searcher, {})[instance] = (float(np.mean([x == -math.inf for x in scored]))
                                                             - float(default == -math.inf))
    return excess


def generalization(args: argparse.Namespace, folder: Path) -> None:
    config, runs = _search(args, folder, args.searchers or ["phased", "random", "tpe", "gp"], args.space)
    source = Path(args.source) if args.source else folder / "search"
    specs = specs_of(config, config["storage"], source)
    holdout = holdout_scores(specs, runs, folder / "holdout.json")
    budget = config["budget"]
    instances, _ = instance_results(config, runs, budget)
    results = holdout_results_of(holdout, instances, budget, config)
    decay = stats.holdout_summary(results)
    per_instance_excess = rejection_excess(holdout)
    excess = {s: _aggregate(per, seed=11) for s, per in per_instance_excess.items()}
    _add_wilcoxon_holm(excess, per_instance_excess)
    s_rows = ["| searcher | winners | holdout - defaults' holdout: IQM [95% CI] | Holm p | holdout - in-sample: IQM "
              "[95% CI] | rejected on the holdout | rejected - defaults rejected: mean [95% CI] | Holm p |",
              "|---|---|---|---|---|---|---|---|"]
    for s, d in sorted(decay.items()):
        e = excess.get(s, {**_aggregate({}, seed=11), "wilcoxon_holm_p": None})
        s_rows.append(f"| {s} | {d['n_pairs']} | {fmt(d['lift']['iqm'])} [{fmt(d['lift']['iqm_ci'][0])}, "
                      f"{fmt(d['lift']['iqm_ci'][1])}] (n={d['lift']['n_instances']}) | "
                      f"{fmt(d['lift']['wilcoxon_holm_p'])} | {fmt(d['decay']['iqm'])} "
                      f"[{fmt(d['decay']['iqm_ci'][0])}, {fmt(d['decay']['iqm_ci'][1])}] "
                      f"(n={d['decay']['n_instances']}) | {fmt(d['rejected_share'], 2)} | {fmt(e['mean'])} "
                      f"[{fmt(e['mean_ci'][0])}, {fmt(e['mean_ci'][1])}] (n={e['n_instances']}) | "
                      f"{fmt(e['wilcoxon_holm_p'])} |")
    s_rows += ["", "Holdout - defaults' holdout, holdout - in-sample: IQM over instances (seed-means) of the differences "
               "divided by the instance's in-sample range (optimum minus random search's expected best at the budget, "
               "the normalised score's denominator; 1 = that whole range); instances without one (excluded from "
               "normalisation) are counted, not averaged.", "",
               "Rejected - defaults rejected: per instance, the share of the searcher's winners rejected (-inf) on "
               "the holdout minus 1 if the defaults are rejected there (else 0); mean over instances, bootstrap CI "
               "(instances resampled). It uses every run, where the two holdout columns use only runs whose winner "
               "scored.", "",
               f"Holm p: two-sided Wilcoxon signed-rank test of the per-instance values against zero, Holm-corrected "
               f"over the {len(decay)} searchers (the family of each question). A verdict below needs both the CI to "
               "exclude zero and Holm p < 0.05: with k searchers and no true difference, some CI excludes zero by "
               f"chance with probability 1 - 0.95^k ({1 - 0.95 ** max(len(decay), 1):.2f} here)."]
    rows = ["| instance | holdout | defaults' holdout | winners' holdout (median over runs) | winners' in-sample (median) |",
            "|---|---|---|---|---|"]
    for i, h in sorted(holdout.items()):
        won = [w for seeds in h["winners"].values() for w in seeds.values()]
        held = [score_value(w.get("score")) for w in won if w.get("score") is not None]
        inside = [score_value(w["in_sample"]) for w in won]
        instance = instance_of(config_instances(config)[i])
        rows.append(f"| {i} | {instance.split.holdout_start}..{instance.split.holdout_end} | "
                    f"{fmt(score_value(h['defaults']['score']))} | {fmt(np.median(held) if held else math.nan)} | "
                    f"{fmt(np.median(inside) if inside else math.nan)} |")

    ranked = any(d["lift_rank"]["n_instances"] for d in decay.values())
    lift_key = "lift_rank" if ranked else "lift"  # ranks among random configurations where the suite has them

    def verdict(d: dict[str, Any]) -> str:
        return _answer_holm(d[lift_key], d[lift_key]["iqm_ci"], d[lift_key]["wilcoxon_holm_p"],
                            "better than the defaults", "worse than the defaults")

    def fall(d: dict[str, Any]) -> str:
        return _answer_holm(d["decay_rank"], d["decay_rank"]["iqm_ci"], d["decay_rank"]["wilcoxon_holm_p"],
                            "higher on the holdout", "lower on the holdout")

    def rejected(e: dict[str, Any]) -> str:
        return _answer_holm(e, e["mean_ci"], e["wilcoxon_holm_p"], "rejected more often than the defaults",
                            "rejected less often than the defaults")

    answer = ("On their instances' own holdouts, the winners are (" + ("holdout rank among random configurations "
              "minus the defaults'" if ranked else "holdout score minus the defaults', in in-sample ranges") + "): "
              + "; ".join(
        f"{s}: {verdict(d)}" for s, d in sorted(decay.items())) + (". The decay column shows how much of the in-sample "
                                                                    "score survives (negative = lost). ")
              + ("Among random configurations, the winners' holdout rank against their in-sample rank: " + "; ".join(
                  f"{s}: {fall(d)}" for s, d in sorted(decay.items())) + ". " if ranked else "")
              + "Rejected on the holdout, against the defaults: " + "; ".join(
                  f"{s}: {rejected(e)}" for s, e in sorted(excess.items())) + ".")
    _write(folder, "Generalization: do the winners hold up on their holdouts?",
           "How do each searcher's winners score on the period right after their search window (each instance's own "
           "sealed holdout), against the Loop 3 defaults there and against their own in-sample score?",
           _setup(config, SearchSpace(config["instances"][0]["space"])),
           ["## Over instances", "", *s_rows, *holdout_rank_table(decay), "", "## Per instance", "", *rows],
           answer,
           {"holdout_summary": decay, "rejection_excess": excess, "holdout": holdout})


# --------------------------------------------------------------------------- survivorship
def survivors_instance(instance: Instance) -> Instance | None:
    """The instance on the tokens still listed on its universe's last day (None when that changes nothing)."""
    full = instance.universe_candles()
    alive = survivors(full).tokens
    if len(alive) == full.n_tokens:
        return None  # no token of this universe is delisted before its last day: nothing to bias
    return dataclasses.replace(instance, id=f"{instance.id}-survivors", tokens=tuple(alive), liquid_top=None, suite="")


def survivorship(args: argparse.Namespace, folder: Path) -> None:
    base = _suite_instances(args)
    pairs = {i.id: survivors_instance(i) for i in base}
    variants = [v for v in pairs.values() if v is not None]
    config, runs = _search(args, folder, args.searchers or ["tpe"], args.space, extra=variants)
    inflation: dict[str, float] = {}
    rows = ["| instance | tokens point-in-time / survivors | survivors' winner in-sample (median) | same configuration "
            "point-in-time (median) | inflation (median) |", "|---|---|---|---|---|"]
    for instance in base:
        variant = pairs[instance.id]
        if variant is None:
            rows.append(f"| {instance.id} | no delisting in the data | n/a | n/a | n/a (survivorship-biased data "
                        "already: the file holds only pairs listed when it was downloaded) |")
            continue
        problem = problem_of(canonical(instance))
        winners = [w for seeds in _winners(runs.get(variant.id, {})).values() for w in seeds.values()]
        flattered = [w.score for w in winners]
        honest = [problem.evaluate(problem.space.params(dict(w.params))).score for w in winners]
        gaps = [a - b if math.isfinite(b) else math.inf for a, b in zip(flattered, honest)]
        inflation[instance.id] = float(np.median(gaps)) if gaps else math.nan
        rows.append(f"| {instance.id} | {instance.search_candles().n_tokens} / {variant.search_candles().n_tokens} | "
                    f"{fmt(np.median(flattered) if flattered else math.nan)} | "
                    f"{fmt(np.median(honest) if honest else math.nan)} | {fmt(inflation[instance.id])} |")
    agg = _aggregate(inflation, seed=9)
    answer = (f"Searching only the tokens that survived to the end of the data overstates the winner's score by "
              f"{_ci(agg)} (survivors' in-sample minus the same configuration on the point-in-time universe); "
              f"survivorship inflates the result: {_answer(agg, 'yes', 'no (it deflates it)')}. Instances whose data "
              "has no delisting cannot show the bias (the real files are survivorship-biased already).")
    _write(folder, "Survivorship: point-in-time universe vs survivors only",
           "How much does searching a survivors-only universe (tokens still listed at the end of the data) flatter the "
           "result, compared with the point-in-time universe?",
           _setup(config, SearchSpace(args.space)) + f" The searches ran on {len(base)} instance(s) and on the "
           f"{len(variants)} survivors-only universe(s) built from them (the count above holds both).",
           ["## Per instance", "", *rows], answer, {"inflation": {"per_instance": inflation, "aggregate": agg}})


# --------------------------------------------------------------------------- CLI
RUNNERS: dict[str, Callable[[argparse.Namespace, Path], None]] = {
    "interactions": interactions, "deletion": deletion, "generalization": generalization, "survivorship": survivorship}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--suite", help="a suite of instances (real-v1, synthetic-v1 or a file)")
    parser.add_argument("--instances", nargs="+", metavar="ID", help="only these instances of --suite")
    parser.add_argument("--universe", default="synthetic", help="without --suite: one instance on this universe")
    parser.add_argument("--space", default="joint")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--searchers", nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=1,
                        help="worker processes for the searches and for interactions' per-instance GP fits")
    parser.add_argument("--source", help="analyse this existing runs.compare folder instead of searching")
    parser.add_argument("--name", default=None, help="folder name under --out (default: the experiment)")
    parser.add_argument("--out", type=Path, default=compare.OUT)
    parser.add_argument("--quick", action="store_true",
                        help="with --suite: its quick instances, 2 seeds, budget 40; else synthetic-small, 3 seeds, budget 60")
    args = parser.parse_args(argv)
    if args.quick and args.suite:
        args.seeds, args.budget = compare.QUICK_SUITE["seeds"], compare.QUICK_SUITE["budget"]
        if args.instances is None:
            from instances import load_suite

            suite = load_suite(args.suite)
            args.instances = list(compare.QUICK_SUITE["instances"].get(suite.name, suite.ids[:4]))
    elif args.quick:
        args.universe, args.seeds, args.budget = "synthetic-small", 3, 60
    label = ((args.source and Path(args.source).resolve().name) or (args.suite and Path(args.suite).stem)
             or args.universe.replace(":", "-"))
    folder = (args.out / (args.name or f"{args.experiment}-{label}")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    RUNNERS[args.experiment](args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
