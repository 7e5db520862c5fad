"""Joint-space experiments: the seed's open questions, one folder and one report each.

    python -m runs.experiments interactions    # do joint searchers find what the phased sweep cannot?
    python -m runs.experiments deletion        # with component switches searchable, is deleting preferred?
    python -m runs.experiments generalization  # do the winners' lifts survive other market draws and the holdout?
    python -m runs.experiments survivorship    # point-in-time universe vs survivors only

Each runs its searches through ``runs.compare`` (in ``runs/out/<name>/search*/``,
resumable with ``--resume``) and writes ``runs/out/<name>/report.md``: the
question, the set-up, the table, and the answer. ``--quick`` uses
``synthetic-small``, 3 seeds and budget 60.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import optuna

from data import SURVIVORS, load_universe
from env.records import TrialRecord
from env.store import distributions
from harness import SEARCH_END, evaluate, evaluate_holdout
from runs import analysis, compare
from strategy.space import SearchSpace
from surrogate.gp import GPSurrogate

EXPERIMENTS = ("interactions", "deletion", "generalization", "survivorship")


# --------------------------------------------------------------------------- shared
def _search(args: argparse.Namespace, folder: Path, subfolder: str, universe: str, searchers: Sequence[str],
            space: str) -> tuple[dict[str, Any], dict[str, dict[int, list[TrialRecord]]]]:
    """Run (or resume) a comparison in ``folder/subfolder``; return its config and records."""
    argv = ["--universe", universe, "--space", space, "--budget", str(args.budget), "--seeds", str(args.seeds),
            "--searcher", *searchers, "--out", str(folder), "--name", subfolder, "--jobs", str(args.jobs)]
    if (folder / subfolder / "config.json").exists():
        argv.append("--resume")
    code = compare.main(argv)
    if code != 0:
        raise SystemExit(code)
    config, _, runs = compare.load_experiment(folder / subfolder)
    return config, runs


def _winners(runs: dict[str, dict[int, list[TrialRecord]]]) -> dict[str, dict[int, TrialRecord]]:
    """The best finite record of every run."""
    out: dict[str, dict[int, TrialRecord]] = {}
    for name, seeds in runs.items():
        for seed, records in seeds.items():
            finite = [r for r in records if math.isfinite(r.score)]
            if finite:
                out.setdefault(name, {})[seed] = max(finite, key=lambda r: r.score)
    return out


def _fmt(value: float, digits: int = 3) -> str:
    return compare._fmt(value, digits)


def _write(folder: Path, title: str, question: str, setup: str, tables: Sequence[str], answer: str,
           data: dict[str, Any]) -> None:
    report = [f"# {title}", "", f"**Question.** {question}", "", f"**Set-up.** {setup}", "", *tables, "",
              f"**Answer.** {answer}", ""]
    (folder / "report.md").write_text("\n".join(report))
    (folder / "results.json").write_text(json.dumps(compare._jsonable(data), indent=1))
    print("\n".join(report))
    print(f"report: {folder / 'report.md'}")


def _differences(params: dict[str, Any], reference: dict[str, Any]) -> str:
    changed = [f"{k}={params[k]!r}" for k in params if params.get(k) != reference.get(k)]
    return ", ".join(changed) if changed else "(none)"


# --------------------------------------------------------------------------- interactions
def h_statistic(surrogate: GPSurrogate, i: int, j: int, background: np.ndarray, grid: int = 7) -> float:
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


def fanova_importances(space: SearchSpace, records: Sequence[TrialRecord], seed: int = 0) -> dict[str, float]:
    """Optuna's fANOVA importances over the finite trials (all searchers pooled)."""
    study = optuna.create_study(direction="maximize")
    dists = distributions(space)
    for r in records:
        if math.isfinite(r.score):
            params = {k: v for k, v in r.params.items() if k in dists}
            study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                      value=r.score))
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    return optuna.importance.get_param_importances(study, evaluator=evaluator)


def interactions(args: argparse.Namespace, folder: Path) -> None:
    config, runs = _search(args, folder, "search", args.universe, args.searchers or ["phased", "tpe", "gp"], args.space)
    space = SearchSpace(config["space"])
    winners = _winners(runs)
    records = [r for seeds in runs.values() for rs in seeds.values() for r in rs]
    finite = [r for r in records if math.isfinite(r.score)]
    x = np.array([space.encode(space.params(r.params)) for r in finite])
    y = np.array([r.score for r in finite])
    surrogate = GPSurrogate(space, seed=0).fit(x, y)
    rng = np.random.default_rng(0)
    background = space.snap(x[rng.choice(len(x), min(48, len(x)), replace=False)])
    core = [n for n in SearchSpace("core").names if n in space.names]
    pairs = list(itertools.combinations(core, 2))
    strength = {(a, b): h_statistic(surrogate, space.names.index(a), space.names.index(b), background) for a, b in pairs}
    top = sorted(strength.items(), key=lambda kv: -kv[1])[:10]
    key = ("bull.r2_threshold", "bear.r2_threshold")
    blocks = sorted({n.split(".")[0] for n in core})
    block_h = {(p, q): float(np.mean([h for (a, b), h in strength.items()
                                      if {a.split(".")[0], b.split(".")[0]} == {p, q}] or [math.nan]))
               for p, q in itertools.combinations_with_replacement(blocks, 2)}
    importances = fanova_importances(space, finite)
    phased = winners.get("phased", {})
    phased_best = max(phased.values(), key=lambda r: r.score) if phased else None
    rows = ["| searcher | best score (median over seeds) | best run's score | differs from phased winner in |",
            "|---|---|---|---|"]
    for name, seeds in winners.items():
        best = max(seeds.values(), key=lambda r: r.score)
        diff = _differences(best.params, phased_best.params) if phased_best else "n/a"
        rows.append(f"| {name} | {_fmt(float(np.median([r.score for r in seeds.values()])))} | {_fmt(best.score)} | {diff} |")
    h_rows = ["| pair | H^2 (interaction share) |", "|---|---|"] + [f"| {a} x {b} | {h:.3f} |" for (a, b), h in top]
    b_rows = ["| blocks | mean H^2 over axis pairs |", "|---|---|"] + [f"| {p} x {q} | {_fmt(h)} |" for (p, q), h in block_h.items()]
    i_rows = ["| axis | fANOVA importance |", "|---|---|"] + [f"| {k} | {v:.3f} |" for k, v in list(importances.items())[:10]]
    joint_best = max((r for seeds in winners.values() for r in seeds.values()), key=lambda r: r.score)
    beyond = phased_best is not None and joint_best.score > phased_best.score
    verdict = (f"{'beats' if beyond else 'does not beat'} the phased winner ({_fmt(phased_best.score)})"
               if phased_best else "cannot be compared with the phased sweep (not run)")
    answer = (f"The best configuration overall ({joint_best.searcher}, {_fmt(joint_best.score)}) {verdict}. "
              f"bull x bear r2_threshold on the surrogate: interaction share H^2 = {_fmt(strength.get(key, math.nan))} "
              f"(0 = additive), fANOVA importances {_fmt(importances.get(key[0], math.nan))} and "
              f"{_fmt(importances.get(key[1], math.nan))} (a near-zero importance means the trials show no effect of "
              f"that axis at all, so 'additive' is then no evidence either way); the strongest pair is "
              f"{top[0][0][0]} x {top[0][0][1]} at {top[0][1]:.3f}.")
    _write(folder, "Interactions: joint search vs the phased sweep",
           "Do joint searchers find configurations the phased one-at-a-time sweep cannot, and how strongly do the "
           "blocks interact (bull x bear r2_threshold in particular)?",
           f"{config['universe']}, space {config['space']} ({len(space)} axes), budget {config['budget']}, seeds "
           f"{config['seeds']}; interaction strength = H^2 on a GP surrogate fitted to all {len(finite)} "
           f"finite trials (two-way ANOVA of each pair's partial dependence on a 7x7 grid, 48 background points; "
           "0 = additive, 1 = pure interaction); importances = Optuna's fANOVA.",
           ["## Winners", "", *rows, "", "## Strongest pairwise interactions (core axes)", "", *h_rows, "",
            "## Block x block", "", *b_rows, "", "## Importances", "", *i_rows],
           answer, {"h2": {f"{a} x {b}": h for (a, b), h in strength.items()}, "blocks": {f"{p} x {q}": h for (p, q), h in block_h.items()},
                    "importances": importances, "search": str(folder / "search")})


# --------------------------------------------------------------------------- deletion
def deletion(args: argparse.Namespace, folder: Path) -> None:
    config, runs = _search(args, folder, "search", args.universe, args.searchers or ["random", "tpe", "gp"], "joint")
    components = ["switches.use_bull", "switches.use_bear", "switches.use_ranging", "switches.use_hmm"]
    gate = "switches.risk_off_gate"
    records = [r for seeds in runs.values() for rs in seeds.values() for r in rs]
    finite = sorted((r for r in records if math.isfinite(r.score)), key=lambda r: -r.score)

    def deleted(r: TrialRecord) -> bool:
        return not all(r.params[s] for s in components)

    def share(rs: Sequence[TrialRecord], axis: str) -> float:
        """Share of ``rs`` that deletes ``axis`` (or, for the gate, uses it)."""
        return float(np.mean([r.params[axis] if axis == gate else not r.params[axis] for r in rs])) if rs else math.nan

    top = finite[: max(1, len(finite) // 10)]
    intact = [r for r in finite if not deleted(r)]
    cut = [r for r in finite if deleted(r)]
    rand = [r for rs in runs.get("random", {}).values() for r in rs]
    rows = ["| component | share deleted in the top 10% | among all finite trials | among random's trials (unbiased) |",
            "|---|---|---|---|"]
    for axis in components + [gate]:
        label = f"{axis} (share *using* the gate)" if axis == gate else axis
        rows.append(f"| {label} | {_fmt(share(top, axis), 2)} | {_fmt(share(finite, axis), 2)} | {_fmt(share(rand, axis), 2)} |")
    winners = _winners(runs)
    w_rows = ["| searcher | seed | score | deleted components |", "|---|---|---|---|"]
    for name, seeds in winners.items():
        for seed, r in sorted(seeds.items()):
            gone = [s.split(".")[1][4:] for s in components if not r.params[s]]
            w_rows.append(f"| {name} | {seed} | {_fmt(r.score)} | {', '.join(gone) or '-'}{' + risk-off gate' if r.params[gate] else ''} |")
    best_intact = intact[0].score if intact else -math.inf
    best_cut = cut[0].score if cut else -math.inf
    wins = best_cut > best_intact
    answer = (f"Best with every component: {_fmt(best_intact)}; best with at least one component deleted: {_fmt(best_cut)} "
              f"({', '.join(s for s in components if cut and not cut[0].params[s]) or 'n/a'} off). "
              f"Deletion {'wins' if wins else 'does not win'} under joint search on this universe; the table shows how often "
              "the best trials switch each component off compared with the unbiased random share.")
    _write(folder, "Deletion: do joint searchers prefer deleting components?",
           "With the component switches in the search space, do joint searchers prefer configurations that delete a "
           "specialist, the HMM, or add the risk-off gate? Does the seed's 'deletion wins' survive joint search?",
           f"{config['universe']}, joint space, budget {config['budget']}, seeds {config['seeds']}, searchers "
           f"{config['searchers']}; {len(finite)} finite of {len(records)} trials.",
           ["## Switch usage", "", *rows, "", "## Winners", "", *w_rows], answer,
           {"best_intact": best_intact, "best_deleted": best_cut, "search": str(folder / "search")})


# --------------------------------------------------------------------------- generalization
def generalization(args: argparse.Namespace, folder: Path) -> None:
    if args.source:
        config, _, runs = compare.load_experiment(Path(args.source))
    else:
        config, runs = _search(args, folder, "search", args.universe, args.searchers or ["phased", "random", "tpe", "gp"],
                               args.space)
    space = SearchSpace(config["space"])
    strategy = compare._problem(config["universe"], config["universe_seed"], config["space"]).strategy
    draws = [d for d in range(config["universe_seed"] + 1, config["universe_seed"] + 1 + args.draws)]
    markets = {d: load_universe(config["universe"], seed=d) for d in draws}
    home = compare._universe(config["universe"], config["universe_seed"])
    cache_path = folder / "scores.json"
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def score(params: dict[str, Any], draw: int | None, holdout: bool) -> float:
        key = json.dumps([params, draw, holdout], sort_keys=True, default=str)
        if key not in cache:
            candles = home if draw is None else markets[draw]
            p = space.params(params)
            try:
                result = (evaluate_holdout(p, candles, strategy.fit_fn, strategy.portfolio_fn) if holdout
                          else evaluate(p, candles.between(None, SEARCH_END), strategy.fit_fn, strategy.portfolio_fn))
                cache[key] = result.score if math.isfinite(result.score) else "-inf"
            except ValueError:
                cache[key] = None
            cache_path.write_text(json.dumps(cache))
        value = cache[key]
        return math.nan if value is None else float(value)

    base = space.values(space.base)
    rows = ["| configuration | in-sample (search draw) | other draws (median) | holdout (search draw) | holdout (other draws, median) |",
            "|---|---|---|---|---|"]
    data: dict[str, Any] = {}

    def row(label: str, params: dict[str, Any], in_sample: float) -> None:
        other = [score(params, d, False) for d in draws]
        other_holdout = [score(params, d, True) for d in draws]
        held = score(params, None, True)
        data[label] = {"in_sample": in_sample, "other": other, "holdout": held, "other_holdout": other_holdout}
        rows.append(f"| {label} | {_fmt(in_sample)} | {_fmt(analysis.quantiles(other)[0])} | {_fmt(held)} | "
                    f"{_fmt(analysis.quantiles(other_holdout)[0])} |")

    row("defaults (baseline)", base, score(base, None, False))
    for name, seeds in _winners(runs).items():
        for seed, r in sorted(seeds.items()):
            row(f"{name} seed {seed}", r.params, r.score)
    lifts = [(v["in_sample"] - data["defaults (baseline)"]["in_sample"],
              analysis.quantiles(v["other"])[0] - analysis.quantiles(data["defaults (baseline)"]["other"])[0])
             for k, v in data.items() if k != "defaults (baseline)"]
    kept = [o / i for i, o in lifts if math.isfinite(i) and math.isfinite(o) and i > 0]
    winners_only = {k: v for k, v in data.items() if k != "defaults (baseline)"}
    in_sample = analysis.quantiles([v["in_sample"] for v in winners_only.values()])[0]
    elsewhere = analysis.quantiles([analysis.quantiles(v["other"])[0] for v in winners_only.values()])[0]
    lift = (f"median share of the in-sample lift over the defaults that survives on other draws: "
            f"{_fmt(float(np.median(kept)), 2)} (1 = all of it, 0 = none, negative = worse than the defaults)" if kept
            else "the lift over the defaults is undefined (the defaults are rejected on the search draw)")
    answer = (f"Winners score a median {_fmt(in_sample)} in-sample and {_fmt(elsewhere)} on other market draws; {lift}. "
              "The holdout columns show the one-cycle caveat: the same configurations on the years after the search window.")
    _write(folder, "Generalization: do the winners survive other markets and the holdout?",
           "How much of each searcher's in-sample lift survives on other synthetic market draws and on the sealed holdout?",
           f"winners of {config['name']} ({config['universe']} draw {config['universe_seed']}, space {config['space']}, budget "
           f"{config['budget']}); other draws {draws}; holdout = every day after {SEARCH_END}.",
           ["## Scores", "", *rows], answer, data)


# --------------------------------------------------------------------------- survivorship
def survivorship(args: argparse.Namespace, folder: Path) -> None:
    searchers = args.searchers or ["tpe"]
    pit_config, pit_runs = _search(args, folder, "search-point-in-time", args.universe, searchers, args.space)
    surv_config, surv_runs = _search(args, folder, "search-survivors", args.universe + SURVIVORS, searchers, args.space)
    space = SearchSpace(args.space)
    problem = compare._problem(args.universe, 0, args.space)
    full, alive = compare._universe(args.universe, 0), compare._universe(args.universe + SURVIVORS, 0)
    rows = ["| searcher | seed | survivors-only in-sample | same config, point-in-time | point-in-time winner | inflation |",
            "|---|---|---|---|---|---|"]
    inflation = []
    pit_winners = _winners(pit_runs)
    for name, seeds in _winners(surv_runs).items():
        for seed, r in sorted(seeds.items()):
            honest = problem.evaluate(space.params(r.params)).score
            pit = pit_winners.get(name, {}).get(seed)
            gap = r.score - honest if math.isfinite(honest) else math.inf
            inflation.append(gap)
            rows.append(f"| {name} | {seed} | {_fmt(r.score)} | {_fmt(honest)} | {_fmt(pit.score if pit else math.nan)} | {_fmt(gap)} |")
    answer = (f"Searching the survivors-only universe ({alive.n_tokens} of {full.n_tokens} tokens) overstates the "
              f"winner's score by a median {_fmt(analysis.quantiles(inflation)[0])} (survivors in-sample minus the same "
              "configuration on the point-in-time universe).")
    _write(folder, "Survivorship: point-in-time universe vs survivors only",
           "How much does searching a survivors-only universe (tokens still listed at the end) flatter the result?",
           f"{args.universe}: {full.n_tokens} tokens point-in-time vs {alive.n_tokens} survivors; searchers {searchers}, "
           f"space {args.space}, budget {args.budget}, seeds {args.seeds}.",
           ["## Winners", "", *rows], answer, {"inflation": inflation})


# --------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.experiments", description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", choices=EXPERIMENTS)
    parser.add_argument("--universe", default="synthetic")
    parser.add_argument("--space", default="joint")
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--searchers", nargs="+", default=None)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--draws", type=int, default=3, help="generalization: other market draws to score winners on")
    parser.add_argument("--source", help="generalization: an existing runs.compare folder whose winners to score")
    parser.add_argument("--name", default=None, help="folder name under --out (default: the experiment)")
    parser.add_argument("--out", type=Path, default=compare.OUT)
    parser.add_argument("--quick", action="store_true", help="synthetic-small, 3 seeds, budget 60")
    args = parser.parse_args(argv)
    if args.quick:
        args.universe, args.seeds, args.budget = "synthetic-small", 3, 60
    folder = (args.out / (args.name or f"{args.experiment}-{args.universe.replace(':', '-')}")).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    {"interactions": interactions, "deletion": deletion, "generalization": generalization,
     "survivorship": survivorship}[args.experiment](args, folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
