"""The Markdown report of a comparison: ``summary.json``, ``report.md`` and the figures, written from its results.

    python -m runs.report runs/out/NAME                  # re-write a comparison's report from its folder
    python -m runs.report results/full-real-v1-b100      # ... or from a finished comparison's tables (no journal)

The statistics (:mod:`stats`, ``docs/reference/statistics.md``) take the instance as the unit of replication: seeds
are averaged within an instance, intervals resample instances and seeds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import stats
from runs import analysis, tables, worker
from runs.execution import RunSpec, config_instances, instance_of, trial_store
from runs.results import (
    holdout_pool,
    holdout_scores,
    instance_results,
    load_experiment,
    load_runs,
    merge_tsv,
    score_value,
)
from runs.tables import Runs

BASELINE = "phased"


CHECKPOINTS = (25, 50, 100, 200)


def fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if value == "-inf" or (isinstance(value, float) and math.isinf(value)):
        return "-inf" if (value == "-inf" or value < 0) else "inf"
    return f"{value:.{digits}f}"


def fmt_ci(pair: Sequence[Any] | None) -> str:
    return "n/a" if not pair else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def aggregate_section(summary: stats.SuiteSummary, baseline: str | None) -> list[str]:
    """The suite-level table (IQM and mean with CIs, mean rank) and the pairwise verdicts."""
    main_budget = summary.main_budget
    lines = [f"## Over instances (n = {summary.n_instances}, budget {main_budget})", "",
             "| searcher | IQM normalised [95% CI] | mean [95% CI] | mean rank | runs |", "|---|---|---|---|---|"]
    aggregate = summary.aggregate
    order = sorted(aggregate, key=lambda s: (s != baseline, aggregate[s].mean_rank
                                             if not math.isnan(aggregate[s].mean_rank) else 99))
    for s in order:
        a = aggregate[s]
        name = f"**{s}** (baseline)" if s == baseline else s
        lines.append(f"| {name} | {fmt(a.iqm)} {fmt_ci(a.iqm_ci)} | {fmt(a.mean)} {fmt_ci(a.mean_ci)} | "
                     f"{fmt(a.mean_rank, 2)} | {a.n_runs} |")
    lines += ["", "Normalised score per instance and seed: `(best - R_b) / (optimum - R_b)`, with `R_b` random search's "
              "expected best of b uniform draws from the instance's random pool and `optimum` the best score ever "
              "seen on the instance (1 = that best, 0 = random search's expectation, below 0 = worse than random; "
              "-inf counts as the instance's lowest finite score). Seeds are averaged within an instance; IQM = mean "
              "of the middle 50% of instances; CIs: percentile bootstrap resampling instances and seeds within them "
              "(docs/reference/statistics.md). Mean rank: over instances where every searcher ran (1 = best). Runs: "
              "instance x seed runs.", "",
              f"Friedman test over instances: p = {fmt(summary.friedman_p)}; Nemenyi critical difference "
              f"(alpha 0.05) = {fmt(summary.cd, 2)} ranks over {len(summary.rank_instances)} instances."]
    budgets = summary.budgets
    if len(budgets) > 1:
        lines += ["", "## By budget", "", "| searcher | " + " | ".join(f"IQM @{b} [95% CI] | rank @{b}" for b in budgets)
                  + " |", "|---" * (1 + 2 * len(budgets)) + "|"]
        for s in order:
            cells = [aggregate[s].by_budget[b] for b in budgets]
            lines.append(f"| {s} | " + " | ".join(f"{fmt(c.iqm)} {fmt_ci(c.iqm_ci)} | {fmt(c.mean_rank, 2)}"
                                                  for c in cells) + " |")
        lines += ["", "The same runs cut at each budget (best of their first b evaluations), normalised with random "
                  "search's expected best of b draws. Friedman p / Nemenyi CD: " + "; ".join(
                      f"@{b} {fmt(summary.by_budget[b].friedman_p)} / "
                      f"{fmt(summary.by_budget[b].cd, 2)}" for b in budgets) + "."]
    against = baseline in aggregate
    pairs = summary.against(baseline) if against else summary.pairwise  # always "searcher - baseline"
    if pairs:
        lines += ["", f"## Pairwise{' against the baseline' if against else ''}", "",
                  "| A vs B | instances | IQM of A - B [95% CI] | P(A > B) [95% CI] | Wilcoxon p (Holm) | verdict |",
                  "|---|---|---|---|---|---|"]
        for p in pairs:
            holm_p = p.wilcoxon_holm_baseline_p if against else p.wilcoxon_holm_p
            lines.append(f"| {p.a} vs {p.b} | {p.n_instances} | {fmt(p.diff_iqm)} {fmt_ci(p.diff_iqm_ci)} | "
                         f"{fmt(p.p_improvement, 2)} {fmt_ci(p.p_improvement_ci)} | {fmt(holm_p)} | {p.verdict} |")
        family = (f"the {len(pairs)} comparisons with the baseline" if against
                  else f"all {len(summary.pairwise)} pairs of searchers")
        lines += ["", ("A is the searcher and B the baseline in every row. " if against else "") + "Verdict: \"A beats B\" only where the 95% CI of the IQM of the per-instance differences excludes "
                  "zero (and at least 5 instances); otherwise the data cannot tell. P(A > B): probability that a run of "
                  "A beats a run of B on the same instance, averaged over instances. Wilcoxon signed-rank test over "
                  f"instances, Holm-corrected over {family} (summary.json holds both corrections)."]
    return lines


def holdout_results_of(holdout: dict[str, Any], results: Sequence[stats.InstanceResults], budget: int,
                       config: dict[str, Any]) -> list[stats.HoldoutResults]:
    """:func:`holdout_scores`' mapping as the statistics' input, each instance's differences divided by its
    in-sample range at ``budget`` (:func:`stats.in_sample_scales` of ``results``, :func:`instance_results`;
    instances without one are counted, not averaged), with the random pools on both windows where the suite has a
    holdout pool (:func:`holdout_pool`; the search pool is ``results``' random pool)."""
    scales = stats.in_sample_scales(results, budget)
    search_pools = {r.instance: np.asarray(r.random_pool, dtype=float) for r in results}
    definitions = config_instances(config)
    out = []
    for i, h in holdout.items():
        held_out, search = holdout_pool(instance_of(definitions[i]), config), search_pools.get(i)
        both = held_out is not None and search is not None and search.size > 0
        out.append(stats.HoldoutResults(
            i, score_value(h["defaults"]["score"]),
            {s: {seed: (score_value(w["in_sample"]), score_value(w.get("score"))) for seed, w in seeds.items()}
             for s, seeds in h["winners"].items()}, scale=scales.get(i),
            holdout_pool=held_out if both else None, search_pool=search if both else None))
    return out


def holdout_rank_table(decay: dict[str, dict[str, Any]], baseline: str | None = None) -> list[str]:
    """The out-of-sample differences as ranks among the suite's random configurations (``lift_rank``,
    ``decay_rank`` of :func:`stats.holdout_summary`); no lines when no instance has a holdout pool."""
    if not any(d["lift_rank"]["n_instances"] for d in decay.values()):
        return []
    lines = ["", "Among random configurations (the suite's 200 random configurations scored on each window):", "",
             "| searcher | holdout rank - defaults' holdout rank: IQM [95% CI] | Holm p | holdout rank - in-sample rank: "
             "IQM [95% CI] |", "|---|---|---|---|"]
    for s in sorted(decay, key=lambda s: (s != baseline, s)):
        lift, fall = decay[s]["lift_rank"], decay[s]["decay_rank"]
        lines.append(f"| {s} | {fmt(lift['iqm'])} {fmt_ci(lift['iqm_ci'])} (n={lift['n_instances']}) | "
                     f"{fmt(lift['wilcoxon_holm_p'])} | {fmt(fall['iqm'])} {fmt_ci(fall['iqm_ci'])} "
                     f"(n={fall['n_instances']}) |")
    return lines + ["", "Rank: the share of the random configurations scoring below a score on the same window, plus half "
                    "the share tied with it (0 = below all of them, 1 = above all; a rejection, -inf, ties with the "
                    "rejected ones). Every winner scored on the holdout enters, rejected or not; one scale on every "
                    "instance without dividing by a range. Seeds averaged within an instance; n = instances; Holm p as "
                    "above."]


def instance_table(summaries: list[analysis.Summary], holdout: dict[str, Any], baseline: str | None) -> list[str]:
    """Per-instance table: best score at each budget (median [IQR] over seeds), -inf share, holdout, wall time."""
    if not summaries:
        return ["no runs"]
    points = sorted(summaries[0].best_at)
    lines = ["| searcher | " + " | ".join(f"best@{b} median [IQR]" for b in points)
             + " | AUC | -inf share | holdout of winners (median) |", "|---" * (len(points) + 4) + "|"]
    for s in sorted(summaries, key=lambda s: (s.searcher != baseline, s.searcher)):
        name = f"**{s.searcher}** (baseline)" if s.searcher == baseline else s.searcher
        best = [f"{fmt(m)} [{fmt(lo)}, {fmt(hi)}]" for m, lo, hi in (s.best_at[b] for b in points)]
        held = [score_value(v.get("score")) for v in holdout.get("winners", {}).get(s.searcher, {}).values()
                if v.get("score") is not None]
        lines.append(f"| {name} | " + " | ".join(best) + f" | {fmt(s.auc, 2)} | {fmt(s.rejected_fraction, 2)} | "
                     f"{fmt(analysis.quantiles(held)[0]) if held else 'n/a'} |")
    return lines


def cost_table(infos: Sequence[dict[str, Any]]) -> list[str]:
    """Seconds per searcher over all its runs: total, in real evaluations, and its own proposals (the rest)."""
    totals: dict[str, list[float]] = {}
    for info in infos:
        row = totals.setdefault(info["searcher"], [0.0, 0.0, 0])
        row[0] += info["wall_s"]
        row[1] += info.get("evaluation_s", 0.0)
        row[2] += 1
    lines = ["| searcher | runs | wall s | in evaluations | proposing (searcher's own) |", "|---|---|---|---|---|"]
    for searcher, (wall, evaluating, runs) in sorted(totals.items()):
        lines.append(f"| {searcher} | {runs} | {wall:.0f} | {evaluating:.0f} | {max(0.0, wall - evaluating):.0f} |")
    return lines


def finish(specs: Sequence[RunSpec], config: dict[str, Any], folder: Path, storage: str,
           infos: Sequence[dict[str, Any]]) -> int:
    """Merge a live comparison's per-run TSVs into ``trials.tsv`` and write its report (:func:`write_report`)."""
    for spec in specs:  # write any rows this machine lacks (runs done by other workers) from the studies
        trial_store(spec)
    runs = load_runs(specs)
    rows = merge_tsv(specs, folder / "trials.tsv")
    kind = "emulated" if config.get("objective") == "emulated" else "real"
    dashboard = dashboard_command(storage)
    return write_report(specs, config, folder, runs, infos,
                        f"{rows} {kind} trials in `trials.tsv`; browse them all: `{dashboard}`", browse=dashboard)


def out_of_sample_section(decay: dict[str, Any], baseline: str | None, emulated: bool) -> list[str]:
    """The report's out-of-sample section: per searcher its winners' holdout lift over the defaults and decay from
    the search window (``decay``: :func:`stats.holdout_summary`), and their holdout ranks; one line when emulated."""
    if emulated:
        return ["", "## Out of sample", "", "Not scored: the emulator models the search window only."]
    lines = ["", "## Out of sample (each instance's own holdout)", "",
             "| searcher | winners scored | holdout - defaults' holdout: IQM [95% CI] | Holm p | holdout - in-sample: "
             "IQM [95% CI] | winners rejected on the holdout |", "|---|---|---|---|---|---|"]
    for s in sorted(decay, key=lambda s: (s != baseline, s)):
        d = decay[s]
        lines.append(f"| {s} | {d['n_pairs']} | {fmt(d['lift']['iqm'])} {fmt_ci(d['lift']['iqm_ci'])} "
                     f"(n={d['lift']['n_instances']}) | {fmt(d['lift']['wilcoxon_holm_p'])} | "
                     f"{fmt(d['decay']['iqm'])} {fmt_ci(d['decay']['iqm_ci'])} "
                     f"(n={d['decay']['n_instances']}) | {fmt(d['rejected_share'], 2)} |")
    lines += ["", "Holdout: each run's in-sample winner scored on the instance's holdout window (after the search, by "
              "the driver); both differences divided by the instance's in-sample range (its optimum minus random "
              "search's expected best at the full budget, the normalised score's denominator), so 1 = that whole "
              "range; winners rejected (-inf) on the holdout counted apart, never averaged; n = instances with a "
              "finite pair (seeds averaged within each): below 5, no claim. Holm p: Wilcoxon signed-rank test of the "
              "per-instance lifts against zero, Holm-corrected over the searchers in this table."]
    return lines + holdout_rank_table(decay, baseline)


def draw_figures(folder: Path, runs: Runs, results: Sequence[stats.InstanceResults], summary: stats.SuiteSummary,
                 holdout_results: Sequence[stats.HoldoutResults], budget: int, checkpoints: Sequence[int],
                 emulated: bool) -> list[Path]:
    """The report's PNGs in ``folder``: normalised score vs budget, the CD diagram (with complete blocks), performance
    profiles and runtime ECDFs (with usable instances), holdout vs in-sample (real runs), best-so-far curves (up to 4
    instances); returns their paths in the report's order."""
    from runs import (
        plots,  # matplotlib: loaded by the process that reports, not by every worker
    )

    figures = [plots.normalised_vs_budget_plot(stats.normalised_vs_budget(results, checkpoints),
                                               folder / "normalised_vs_budget.png")]
    ranks = {s: a.mean_rank for s, a in summary.aggregate.items()}
    if summary.rank_instances:
        figures.append(plots.cd_diagram_plot(ranks, summary.cd, folder / "cd_diagram.png",
                                             groups=summary.cd_groups, n_instances=len(summary.rank_instances)))
    usable = [n for n in stats.normalise_all(results, [budget]) if not n.excluded]
    if usable:
        profiles = {s: stats.performance_profile([n.at(s, budget) for n in usable if s in n.scores])
                    for s in stats.searchers_of(usable)}
        figures.append(plots.performance_profile_plot(profiles, folder / "performance_profile.png"))
        figures.append(plots.suite_runtime_ecdf_plot(stats.runtime_ecdf(results, budget), folder / "runtime_ecdf.png"))
    if not emulated:
        figures.append(plots.holdout_instances_plot(holdout_results, folder / "holdout_vs_in_sample.png"))
    if len(runs) <= 4:
        figures += [plots.best_so_far_plot(seeds, budget, folder / f"best_so_far-{i}.png",
                                           title=f"Best-so-far on {i}{' (emulated)' if emulated else ''} "
                                                 "(median and IQR over seeds)")
                    for i, seeds in runs.items()]
    return figures


def write_report(specs: Sequence[RunSpec], config: dict[str, Any], folder: Path, runs: Runs,
                 infos: Sequence[dict[str, Any]], trials_line: str, browse: str | None = None) -> int:
    """Summarise, plot and report a comparison's ``runs`` (records per instance x searcher x seed) and run ``infos``
    into ``folder``: ``summary.json``, ``report.md`` (ending with ``trials_line``: where the trials are) and the
    figures; the holdout scores come from ``folder/holdout.json`` where it holds them (scored and kept there
    otherwise). Prints the suite table; ``browse``: the command that browses every trial, printed last."""
    budget = config["budget"]
    searchers = [s for s in config["searchers"] if any(s in runs.get(i, {}) for i in runs)]
    baseline = BASELINE if BASELINE in searchers else None
    checkpoints = sorted({c for c in CHECKPOINTS if c < budget} | {budget})
    results, pool_sources = instance_results(config, runs, budget)
    summary = stats.aggregate_table(results, checkpoints, main_budget=budget, baseline=baseline)
    emulated = config.get("objective") == "emulated"
    holdout = holdout_scores(specs, runs, folder / "holdout.json") if not emulated else {  # the emulator models the
        i: {"defaults": {"score": None, "window": "not scored: emulated"}, "winners": {}} for i in runs}  # search window
    holdout_results = holdout_results_of(holdout, results, budget, config)
    decay = stats.holdout_summary(holdout_results)
    wall: dict[str, dict[str, dict[int, float]]] = {}
    for info in infos:  # a shared run's lanes ran side by side: its wall time is the longest lane's
        per = wall.setdefault(info["instance"], {}).setdefault(info["searcher"], {})
        per[info["seed"]] = max(per.get(info["seed"], 0.0), info["wall_s"])
    per_instance = {i: analysis.summarise(seeds, budget, checkpoints, wall=wall.get(i))
                    for i, seeds in runs.items()}

    figures = draw_figures(folder, runs, results, summary, holdout_results, budget, checkpoints, emulated)

    summary_json = {**summary.to_json(), "pool_sources": pool_sources, "holdout": holdout, "holdout_summary": decay,
                    "instances": {i: [asdict(s) for s in ss] for i, ss in per_instance.items()},
                    "pretrain_overlap": pretrain_overlap(infos),
                    "runs": sorted(infos, key=lambda i: (i["instance"], i["searcher"], i["seed"], i.get("lane", 0))),
                    "objective": config.get("objective", "real"), "contract": config["contract"],
                    **({"emulator": config["emulator"]} if emulated else {}),
                    **({"partial": config["partial"]} if config.get("partial") else {})}
    (folder / "summary.json").write_text(json.dumps(stats.json_safe(summary_json), indent=1, allow_nan=False) + "\n")
    n_instances = len(config["instances"])
    kind = "emulated" if emulated else "real"
    setup = (f"Set-up: {'suite `' + config['suite'] + '`, ' if config.get('suite') else ''}{n_instances} instance"
             f"{'s' if n_instances != 1 else ''}, budget {budget} {kind} evaluations per run, seeds {config['seeds']}, "
             f"searchers {', '.join(searchers)}, contract {config['contract']}. "
             + (f"Baseline: the phased one-at-a-time sweep (`{BASELINE}`)." if baseline else "No baseline row (the "
                "phased sweep did not run)."))
    lines = [f"# {config['name']}", "",
             "Question: which search policy finds the best configuration with the fewest real evaluations?", "", setup,
             ""]
    if config.get("partial"):
        part = config["partial"]
        lines[4:4] = [f"**Partial report**: the experiment is not finished ({part['runs_not_done']} runs not done); "
                      f"this report covers seeds {part['whole_seeds']} of {part['of_seeds']}, the seeds done on every "
                      "instance x searcher (runs go in seed rounds). Re-run the report once every run is done.", ""]
    if emulated:
        lines[4:4] = [f"**Emulated**: every score in this report was predicted by the emulator "
                      f"`{config['emulator']['path']}` (SHA-256 {config['emulator']['sha256'][:16]}...; fidelity: "
                      "`python -m runs.emulator report`), none by the harness; the holdout is not scored.", ""]
    lines += aggregate_section(summary, baseline)
    lines += in_sample_section(infos)
    if summary.n_instances < 5:
        lines += ["", f"With {summary.n_instances} usable instance(s) no claim about searchers can be made: the "
                  "verdicts say \"the data cannot tell\" below 5 instances. Run a suite (`--suite real-v1`)."]
    lines += out_of_sample_section(decay, baseline, emulated)
    for i in sorted(per_instance):
        instance = instance_of(config_instances(config)[i])
        split = instance.split
        lines += ["", f"## {i}", "", f"Search {split.search_start}..{split.search_end}, holdout {split.holdout_start}.."
                  f"{split.holdout_end or 'end of data'}; defaults' holdout score "
                  f"{fmt(score_value(holdout[i]['defaults']['score']))}; random pool: {pool_sources[i]}.", ""]
        lines += instance_table(per_instance[i], holdout[i], baseline)
    lines += ["", "best@b: best score after b real evaluations, median [25%, 75%] over seeds. AUC: mean of the "
              "best-so-far curve rescaled between the worst and best finite scores of the instance (higher = good "
              "configurations earlier). -inf share: rejected trials. Holdout of winners: median over seeds of the "
              "holdout score of each run's in-sample winner.", "", "## Cost", ""]
    lines += cost_table(infos)
    machines = Counter(info.get("machine", "not recorded") for info in infos)
    lines += ["", "Machines (run parts done there): " + "; ".join(f"{m} ({n})" for m, n in sorted(machines.items())) + ". A run is "
              "replayed exactly only on the CPU family that made it (`docs/RESULTS.md`, \"Reproducibility across CPUs\")."]
    warm_log = folder / "warm.json"
    if warm_log.exists():
        warmed = [json.loads(line) for line in warm_log.read_text().splitlines() if line.strip()]
        lines += ["", f"Instance warm-up before the runs (regime chains into the shared disk cache): "
                  f"{sum(w['configurations'] for w in warmed)} settings, {sum(w['seconds'] for w in warmed):.0f} s, "
                  "charged to no searcher."]
    lines += ["", "Seconds summed over each searcher's runs (these runs only: a resumed run counts its last part). "
              "Evaluations are cheaper once an instance's fits and regime chains are cached, so a run that went "
              "first on a cold instance pays more: compare proposing time, which is the searcher's own.", ""]
    lines += ["Figures: emulated runs.", ""] if emulated else []
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    lines += ["", trials_line]
    label = emulated_labels if emulated else (lambda lines: lines)
    (folder / "report.md").write_text("\n".join(label(lines)) + "\n")
    print("\n".join(label(aggregate_section(summary, baseline))))
    print(f"report: {folder / 'report.md'}")
    if browse:
        print(f"browse every trial: {browse}")
    return 0


def pretrain_overlap(infos: Sequence[dict[str, Any]]) -> dict[str, dict[str, list[str]]]:
    """``{searcher: {"training" | "validation": [instance, ...]}}``: the instances of this comparison on which a
    learned searcher's policy was meta-trained or validated (its runs' ``pretrain_role``, ``policies.ppo``)."""
    overlap: dict[str, dict[str, set[str]]] = {}
    for info in infos:
        role = (info.get("searcher_stats") or {}).get("pretrain_role")
        if role in ("training", "validation"):
            overlap.setdefault(info["searcher"], {}).setdefault(role, set()).add(info["instance"])
    return {s: {role: sorted(ids) for role, ids in sorted(roles.items())} for s, roles in sorted(overlap.items())}


def in_sample_section(infos: Sequence[dict[str, Any]]) -> list[str]:
    """The report's warning for learned searchers run on instances their policy was trained or validated on."""
    lines = []
    for searcher, roles in pretrain_overlap(infos).items():
        where = "; ".join(f"{role} instances {', '.join(ids)}" for role, ids in roles.items())
        lines += ["", f"**Not held out:** `{searcher}`'s policy was meta-trained or validated on instances of this "
                  f"comparison ({where}; `policies/pretrained/*.json`): its results on them are in-sample, not "
                  "evidence about unseen problems."]
    return lines


def emulated_labels(lines: list[str]) -> list[str]:
    """An emulated report's lines with "emulated" in every heading and every table's first header cell."""
    out = []
    for line in lines:
        if line.startswith("#"):
            line += " (emulated)"
        elif line.startswith(("| searcher |", "| A vs B |")):
            first, rest = line[2:].split(" |", 1)
            line = f"| {first} (emulated) |{rest}"
        out.append(line)
    return out


def dashboard_command(storage: str) -> str:
    if storage.startswith("journal:"):
        return f"optuna-dashboard {storage[len('journal:'):]}"
    return f"optuna-dashboard {storage}"


def report_folder(folder: Path, storage: str | None = None) -> int:
    """Re-write the report of the comparison in ``folder``: a finished comparison kept as tables (no storage read), or
    a live folder whose runs are all done (its trials from ``storage``, default its ``config.json``'s)."""
    folder = Path(folder).resolve()
    config, specs, runs = load_experiment(folder)
    if tables.is_tables(folder):
        n = sum(len(records) for by in runs.values() for by_seed in by.values() for records in by_seed.values())
        kind = "emulated" if config.get("objective") == "emulated" else "real"
        return write_report(specs, config, folder, runs, tables.read_infos(folder),
                            f"{n} {kind} trials in `{tables.TRIALS}`, the run infos in `{tables.RUNS}` "
                            f"(`runs.tables`; their source: `{tables.MANIFEST}`)")
    if config.get("partial"):
        raise ValueError(f"{folder}: runs not done ({config['partial']['runs_not_done']}): finish them "
                         f"(python -m runs.compare --name {config['name']} --resume) or report the whole seeds with "
                         "--resume --partial --jobs 0")
    storage = storage or config["storage"]
    return finish(specs, config, folder, storage, worker.ExperimentQueue(storage, config["name"]).infos())


def main(argv: list[str] | None = None) -> int:
    """``python -m runs.report FOLDER [--storage URL]``: exit 0 written, 2 not a comparison folder or not finished."""
    parser = argparse.ArgumentParser(prog="python -m runs.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="a comparison folder (runs/out/NAME) or a tables folder (results/NAME)")
    parser.add_argument("--storage", default=None, help="a live folder's Optuna storage (default: its config.json's)")
    args = parser.parse_args(argv)
    try:
        return report_folder(args.folder, args.storage)
    except (tables.TablesError, ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
