"""Compare search policies on one real-evaluation budget.

    python -m runs.compare --quick                       # synthetic-small, 3 seeds, budget 60 (minutes)
    python -m runs.compare --searcher ppo tpe --budget 200 --seeds 10
    python -m runs.compare --name my-run --resume         # continue an interrupted comparison

Every searcher x seed is one run against its own budgeted ``env.Objective`` on
the same problem (universe, search window, strategy, search space). Trials go to
an Optuna storage (one study per run, ``<name>/<searcher>/seed<n>``) and to
``runs/out/<name>/``: ``config.json``, ``runs/<searcher>-seed<n>.tsv``, the merged
``trials.tsv``, ``summary.json``, PNG plots and ``report.md`` (the table, with the
phased sweep as the baseline row, and the sealed-holdout score of each winner).
Exit codes: 0 done, 2 bad arguments or data.
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import json
import math
import multiprocessing
import os
import queue as queue_module
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor, wait, FIRST_COMPLETED
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

from tqdm import tqdm

import policies
from data import Candles, DataError, load_universe
from env import Objective, Problem, StoreError, TrialRecord, TrialStore, leases
from env.records import params_key
from harness import CONTRACT_VERSION, SEARCH_END, SEARCH_START, WindowError, evaluate_holdout
from runs import analysis, plots, worker
from strategy.space import SPACES, SearchSpace

OUT = Path(__file__).resolve().parent / "out"
DEFAULT_SEARCHERS = ("phased", "random", "tpe", "gp", "ppo")
QUICK = {"universe": "synthetic-small", "seeds": 3, "budget": 60}


@dataclass(frozen=True)
class RunSpec:
    """One searcher x seed of a comparison (picklable: sent to worker processes)."""

    experiment: str
    folder: str
    storage: str
    universe: str
    universe_seed: int
    space: str
    budget: int
    searcher: str
    seed: int
    lanes: int = 1
    """Workers that may evaluate within this run at once (> 1: a shared run with evaluation slots)."""

    @property
    def tsv(self) -> Path:
        return Path(self.folder) / "runs" / f"{self.searcher}-seed{self.seed}.tsv"

    @property
    def shared(self) -> bool:
        return self.lanes > 1


def lanes_for(searcher: str, lanes: int) -> int:
    """``lanes`` for a searcher that can evaluate in parallel within one run, else 1."""
    return lanes if policies.SEARCHERS[searcher].parallel else 1


def spec_from_config(config: dict[str, Any], storage: str, folder: Path | str, searcher: str, seed: int) -> RunSpec:
    """The run ``searcher`` x ``seed`` of an experiment set-up (``config.json``, or the queue's copy)."""
    return RunSpec(config["name"], str(Path(folder).resolve()), storage, config["universe"], config["universe_seed"],
                   config["space"], config["budget"], searcher, seed, lanes_for(searcher, config.get("lanes", 1)))


@lru_cache(maxsize=4)
def _universe(universe: str, universe_seed: int) -> Candles:
    """The whole universe, holdout included (read or generated once per process)."""
    return load_universe(universe, seed=universe_seed)


@lru_cache(maxsize=4)
def _problem(universe: str, universe_seed: int, space: str) -> Problem:
    """What the searchers see: the universe cut at the end of the search window (``Problem`` cuts it)."""
    return Problem(_universe(universe, universe_seed), SearchSpace(space))


def _store(spec: RunSpec, check: Callable[[], None] | None = None, tsv: bool = True) -> TrialStore:
    """The run's trial store; ``check`` raises once this worker's claim on the run is lost."""
    problem = _problem(spec.universe, spec.universe_seed, spec.space)
    identity = {"universe": spec.universe, "universe_seed": spec.universe_seed,
                "candles": problem.candles.fingerprint[:16], "strategy": problem.strategy.name}
    return TrialStore(spec.storage, spec.experiment, spec.searcher, spec.seed, problem.space,
                      tsv_path=spec.tsv if tsv else None, identity=identity, shared=spec.shared, lease=check)


def execute(spec: RunSpec, progress: Any = None, holder: leases.Lease | None = None,
            check: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run one searcher x seed to the end of its budget (resuming from its store); return its run info.

    A shared run (``spec.lanes > 1``) is this worker's lane of it (``policies.run_lane``;
    ``holder`` keeps its evaluation slots alive); ``check`` raises ``LeaseLost``
    before any write once another worker took the run back.
    """
    problem = _problem(spec.universe, spec.universe_seed, spec.space)
    store = _store(spec, check, tsv=not spec.shared)  # a shared run's TSV is written from its study by the report
    report = (lambda record: progress.put((spec.searcher, spec.seed, record.score))) if progress is not None else None
    objective = Objective(problem, spec.budget, searcher=spec.searcher, seed=spec.seed, store=store, on_record=report)
    searcher = policies.make(spec.searcher)
    resumed = objective.used
    began = time.perf_counter()
    if spec.shared:
        own = leases.Lease(store.study._storage) if holder is None else holder
        try:
            policies.run_lane(searcher, objective, spec.seed, own)
        finally:
            if holder is None:
                own.close()
        objective.refresh()
    else:
        policies.run(searcher, objective, spec.seed)
    best = objective.best
    return {"searcher": spec.searcher, "seed": spec.seed, "evaluations": objective.used, "resumed_from": resumed,
            "cache_hits": objective.cache_hits, "wall_s": time.perf_counter() - began,
            "best": best.score if best is not None and math.isfinite(best.score) else None, "searcher_stats": _jsonable(searcher.stats)}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


# --------------------------------------------------------------------------- running
class _Progress:
    """One tqdm bar over all real evaluations, with the live best per searcher."""

    def __init__(self, total: int, initial: int) -> None:
        self.bar = tqdm(total=total, initial=initial, unit="eval", dynamic_ncols=True, file=sys.stderr)
        self.best: dict[str, float] = {}

    def put(self, item: tuple[str, int, float]) -> None:
        searcher, _, score = item
        self.best[searcher] = max(self.best.get(searcher, -math.inf), score)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in sorted(self.best.items())}, refresh=False)
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def run_all(storage: str, experiment: str, out: Path, jobs: int, total: int, done: int) -> dict[str, Any]:
    """Run ``jobs`` workers (``runs.worker.work``) on the experiment's queue here (in this process when ``jobs == 1``)."""
    progress = _Progress(total=total, initial=done)
    try:
        if jobs <= 1:
            return worker.work(storage, experiment, out, progress)
        context = multiprocessing.get_context("spawn")
        summary: dict[str, Any] = {"runs": [], "errors": [], "lost": 0}
        with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
            updates = manager.Queue()
            pending = {pool.submit(worker.work, storage, experiment, out, updates) for _ in range(jobs)}
            while pending:
                finished, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in finished:
                    for key, value in future.result().items():
                        summary[key] += value
                while True:
                    try:
                        progress.put(updates.get_nowait())
                    except queue_module.Empty:
                        break
        return summary
    finally:
        progress.close()


@contextmanager
def _only_process(storage: str):
    """With SQLite, only one process may run an experiment's workers: hold a lock file beside the database."""
    if not storage.startswith("sqlite:///"):
        yield
        return
    path = Path(storage[len("sqlite:///"):] + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreError(f"another process is running this experiment on {storage} (SQLite allows one; "
                             "use --storage journal:FILE or postgresql://... for several)") from None
        yield


# --------------------------------------------------------------------------- results
def load_runs(specs: Sequence[RunSpec]) -> dict[str, dict[int, list[TrialRecord]]]:
    """``{searcher: {seed: records}}`` from the per-run TSVs (written after the Optuna study)."""
    runs: dict[str, dict[int, list[TrialRecord]]] = {}
    for spec in specs:
        records = []
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                records = [TrialRecord.from_row(row) for row in csv.DictReader(handle, delimiter="\t")]
        runs.setdefault(spec.searcher, {})[spec.seed] = sorted(records, key=lambda r: r.eval_index)
    return runs


def merge_tsv(specs: Sequence[RunSpec], path: Path) -> int:
    """Concatenate the per-run TSVs into one ``trials.tsv`` (union of columns); returns the row count."""
    rows, header = [], []
    for spec in specs:
        if spec.tsv.exists():
            with spec.tsv.open(newline="") as handle:
                reader = csv.DictReader(handle, delimiter="\t")
                header += [c for c in reader.fieldnames or [] if c not in header]
                rows.extend(reader)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def holdout_scores(specs: Sequence[RunSpec], runs: dict[str, dict[int, list[TrialRecord]]], cache_path: Path
                   ) -> dict[str, dict[int, dict[str, Any]]]:
    """The sealed-holdout score of each run's winner (memoised in ``holdout.json``); None without holdout data."""
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for spec in specs:
        records = [r for r in runs.get(spec.searcher, {}).get(spec.seed, []) if math.isfinite(r.score)]
        if not records:
            continue
        winner = max(records, key=lambda r: r.score)
        key = f"{spec.universe}|{spec.universe_seed}|{spec.space}|{params_key(winner.params)}"
        if key not in cache:
            problem = _problem(spec.universe, spec.universe_seed, spec.space)
            try:
                full = _universe(spec.universe, spec.universe_seed)
                result = evaluate_holdout(problem.space.params(winner.params), full, problem.strategy.fit_fn,
                                          problem.strategy.portfolio_fn)
                cache[key] = {"score": result.score if math.isfinite(result.score) else "-inf",
                              "window": f"{result.first_day}..{result.last_day}"}
            except WindowError as exc:
                cache[key] = {"score": None, "window": str(exc)}
            cache_path.write_text(json.dumps(cache, indent=1))
        entry = cache[key]
        score = entry["score"]
        out.setdefault(spec.searcher, {})[spec.seed] = {
            "in_sample": winner.score, "holdout": None if score is None else float(score), "window": entry["window"],
            "params": winner.params,
        }
    return out


def load_experiment(folder: Path) -> tuple[dict[str, Any], list[RunSpec], dict[str, dict[int, list[TrialRecord]]]]:
    """A comparison folder's config, run specs and records (for the experiments and re-reporting)."""
    config_path = Path(folder) / "config.json"
    if not config_path.exists():
        raise FileNotFoundError(f"{folder} is not a runs.compare experiment folder (no config.json)")
    config = json.loads(config_path.read_text())
    specs = [spec_from_config(config, config["storage"], folder, searcher, seed)
             for searcher in config["searchers"] for seed in config["seeds"]]
    return config, specs, load_runs(specs)


def _fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "-inf" if value < 0 else "inf"
    return f"{value:.{digits}f}"


def report_tables(summaries: list[analysis.Summary], holdout: dict[str, dict[int, dict[str, Any]]],
                  baseline: str) -> str:
    """The markdown tables of the report (also printed)."""
    if not summaries:
        return "no runs\n"
    points = sorted(summaries[0].best_at)
    lines = ["| searcher | " + " | ".join(f"best@{b} median [IQR]" for b in points)
             + " | " + " | ".join(f"norm@{b}" for b in points) + " | AUC | -inf share | holdout of winners (median) | wall s |",
             "|---" * (1 + 2 * len(points) + 4) + "|"]
    ordered = sorted(summaries, key=lambda s: (s.searcher != baseline, s.searcher))
    for s in ordered:
        name = f"**{s.searcher}** (baseline)" if s.searcher == baseline else s.searcher
        best = [f"{_fmt(m)} [{_fmt(lo)}, {_fmt(hi)}]" for m, lo, hi in (s.best_at[b] for b in points)]
        norm = [_fmt(s.normalised_at[b], 2) for b in points]
        held = [h["holdout"] for h in holdout.get(s.searcher, {}).values() if h["holdout"] is not None]
        held_median = analysis.quantiles(held)[0] if held else math.nan
        lines.append(f"| {name} | " + " | ".join(best) + " | " + " | ".join(norm)
                     + f" | {_fmt(s.auc, 2)} | {_fmt(s.rejected_fraction, 2)} | {_fmt(held_median)} | {s.wall_s:.0f} |")
    targets = list(summaries[0].evals_to_target)
    if targets:
        lines += ["", "Evaluations to reach a target (median over seeds; share of seeds that reached it):", "",
                  "| searcher | " + " | ".join(targets) + f" | vs {baseline}: Wilcoxon p | median diff 95% CI |",
                  "|---" * (len(targets) + 3) + "|"]
        for s in ordered:
            cells = [f"{_fmt(m, 0)} ({share:.0%})" for m, share in (s.evals_to_target[t] for t in targets)]
            ci = s.vs_baseline_ci
            lines.append(f"| {s.searcher} | " + " | ".join(cells)
                         + f" | {_fmt(s.vs_baseline_p, 3)} | [{_fmt(ci[0])}, {_fmt(ci[1])}] |")
    return "\n".join(lines) + "\n"


def dashboard_command(storage: str) -> str:
    if storage.startswith("journal:"):
        return f"optuna-dashboard {storage[len('journal:'):]}"
    return f"optuna-dashboard {storage}"


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--searcher", nargs="+", default=None, metavar="NAME",
                        help=f"searchers to compare (default: {' '.join(DEFAULT_SEARCHERS)})")
    parser.add_argument("--budget", type=int, default=None, help="real evaluations per run (default 200; quick 60)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 per searcher (default 5; quick 3)")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, help="explicit seeds instead of --seeds")
    parser.add_argument("--universe", default=None,
                        help="synthetic (default), synthetic-small (quick), bear-basket, or a data file/folder")
    parser.add_argument("--universe-seed", type=int, default=0, help="market draw of a synthetic universe")
    parser.add_argument("--space", default=None, choices=sorted(SPACES), help="search space (default joint)")
    parser.add_argument("--name", default=None, help="experiment name (folder runs/out/NAME; default from the set-up)")
    parser.add_argument("--out", type=Path, default=OUT, help="parent folder of experiment folders")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL: sqlite:///file.db (default, in the folder), postgresql://..., "
                             "or journal:FILE (default when --jobs > 1: several local processes)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes here (default 1; quick: 2 where the machine has 2+ cores); 0: only "
                             "queue the runs for `python -m runs.worker` elsewhere, and report once they are done")
    parser.add_argument("--lanes", type=int, default=1,
                        help="workers that may evaluate within one run of a searcher that supports it (tpe, gp): "
                             "1 keeps every run sequential and replayable")
    parser.add_argument("--resume", action="store_true", help="continue an existing experiment of the same name")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick profile: {QUICK['universe']}, {QUICK['seeds']} seeds, budget {QUICK['budget']}, 2 jobs")
    return parser


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    quick = QUICK if args.quick else {"universe": "synthetic", "seeds": 5, "budget": 200}
    budget = args.budget if args.budget is not None else quick["budget"]
    seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds if args.seeds is not None else quick["seeds"]))
    searchers = args.searcher or [s for s in DEFAULT_SEARCHERS if s in policies.SEARCHERS]
    unknown = [s for s in searchers if s not in policies.SEARCHERS]
    if unknown:
        parser.error(f"unknown searcher(s) {unknown}; known: {', '.join(sorted(policies.SEARCHERS))}")
    if budget < 1:
        parser.error("--budget must be at least 1")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error("seeds must be distinct non-negative integers")
    jobs = args.jobs if args.jobs is not None else (min(2, len(os.sched_getaffinity(0))) if args.quick else 1)
    if jobs < 0:
        parser.error("--jobs must be 0 (queue only) or more")
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    universe = args.universe or quick["universe"]
    space = args.space or "joint"
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(universe).stem if os.sep in universe else universe)
    name = args.name or f"compare-{label}-{space}-b{budget}"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        parser.error(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    return {"name": name, "universe": universe, "universe_seed": args.universe_seed, "space": space,
            "budget": budget, "seeds": seeds, "searchers": list(dict.fromkeys(searchers)), "jobs": jobs,
            "lanes": args.lanes}


def _fill_from(previous: dict[str, Any], args: argparse.Namespace) -> None:
    """On --resume, the set-up arguments not given again default to the experiment's own."""
    for arg, key in (("universe", "universe"), ("space", "space"), ("budget", "budget"), ("searcher", "searchers"),
                     ("seed_list", "seeds")):
        if getattr(args, arg) is None and not (arg == "seed_list" and args.seeds is not None):
            setattr(args, arg, previous[key])
    if args.lanes == 1:
        args.lanes = previous.get("lanes", 1)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.resume and args.name:  # the experiment's own set-up, from its folder or else from the storage
        config_path = (args.out / args.name).resolve() / "config.json"
        stored = json.loads(config_path.read_text()) if config_path.exists() else (
            worker.ExperimentQueue(args.storage, args.name).config if args.storage else None)
        if stored:
            _fill_from(stored, args)
    settings = _settings(args, parser)
    folder = (args.out / settings["name"]).resolve()
    config_path = folder / "config.json"
    if config_path.exists() and not args.resume:
        print(f"error: {folder} already holds an experiment; pass --resume to continue it or --name for a new one",
              file=sys.stderr)
        return 2
    previous = json.loads(config_path.read_text()) if config_path.exists() else {}
    for key in ("universe", "universe_seed", "space"):
        if previous and previous[key] != settings[key]:
            print(f"error: --resume with {key}={settings[key]!r}, but the experiment used {previous[key]!r}",
                  file=sys.stderr)
            return 2
    storage = args.storage or previous.get("storage") or (
        f"sqlite:///{folder / 'trials.db'}" if settings["jobs"] <= 1 else f"journal:{folder / 'trials.journal'}")
    if storage.startswith("sqlite") and settings["jobs"] > 1:
        print(f"error: SQLite serves one worker process; with --jobs {settings['jobs']} use --storage journal:FILE "
              "(this machine) or postgresql://... (several machines)", file=sys.stderr)
        return 2
    try:
        problem = _problem(settings["universe"], settings["universe_seed"], settings["space"])
    except (DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    config = {**settings, "storage": storage, "contract": CONTRACT_VERSION, "window": f"{SEARCH_START}..{SEARCH_END}",
              "candles": repr(problem.candles), "axes": SearchSpace(settings["space"]).names,
              "command": "python -m runs.compare " + " ".join(argv if argv is not None else sys.argv[1:])}
    specs = [spec_from_config(config, storage, folder, searcher, seed)
             for searcher in settings["searchers"] for seed in settings["seeds"]]
    print(f"{settings['name']}: {len(settings['searchers'])} searchers x {len(settings['seeds'])} seeds x "
          f"budget {settings['budget']} on {problem.candles!r}, space {settings['space']!r} ({len(problem.space)} axes)\n"
          f"storage {storage}", file=sys.stderr)
    try:
        with _only_process(storage):
            queue = worker.ExperimentQueue(storage, settings["name"])
            queue.submit({k: v for k, v in config.items() if k != "jobs"},
                         [(spec.searcher, spec.seed, spec.lanes) for spec in specs])
            for spec in specs:
                if spec.shared:
                    _store(spec, tsv=False).ensure_slots(spec.budget)
            config_path.write_text(json.dumps(config, indent=1))
            if settings["jobs"] > 0:
                done = sum(len(records) for seeds in load_runs(specs).values() for records in seeds.values())
                summary = run_all(storage, settings["name"], args.out.resolve(), settings["jobs"],
                                  sum(s.budget for s in specs), done)
                for error in summary["errors"]:
                    print(f"run failed: {error}", file=sys.stderr)
    except (StoreError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted: every finished trial is stored; continue with --resume --name {settings['name']}",
              file=sys.stderr)
        return 130
    status = queue.status()
    if status["waiting"] or status["running"]:
        print(f"{status['complete']} run claims done, {status['running']} running, {status['waiting']} waiting: start "
              f"workers with `python -m runs.worker --storage {storage} --experiment {settings['name']}`; report with "
              f"`python -m runs.compare --storage {storage} --name {settings['name']} --resume --jobs 0`", file=sys.stderr)
        return 0
    if status["failed"]:
        print(f"{status['failed']} run(s) failed (see above); fix and --resume to run them again", file=sys.stderr)
        return 1
    return finish(specs, settings, folder, storage, queue.infos())


def finish(specs: Sequence[RunSpec], settings: dict[str, Any], folder: Path, storage: str,
           infos: Sequence[dict[str, Any]]) -> int:
    """Merge, summarise, plot and report a finished comparison."""
    for spec in specs:  # write any rows this machine lacks (runs done by other workers) from the studies
        _store(spec)
    runs = load_runs(specs)
    rows = merge_tsv(specs, folder / "trials.tsv")
    wall = {}
    for info in infos:  # a shared run's lanes ran side by side: its wall time is the longest lane's
        runs_wall = wall.setdefault(info["searcher"], {})
        runs_wall[info["seed"]] = max(runs_wall.get(info["seed"], 0.0), info["wall_s"])
    summaries = analysis.summarise(runs, settings["budget"], wall=wall)
    holdout = holdout_scores(specs, runs, folder / "holdout.json")
    goal = analysis.targets(runs, settings["budget"], "phased")
    figures = [plots.best_so_far_plot(runs, settings["budget"], folder / "best_so_far.png")]
    if goal:
        figures.append(plots.runtime_ecdf_plot(runs, settings["budget"], goal, folder / "runtime_ecdf.png"))
    figures.append(plots.holdout_plot({k: [(v["in_sample"], v["holdout"] if v["holdout"] is not None else math.nan)
                                           for v in seeds.values()] for k, seeds in holdout.items()},
                                      folder / "holdout_vs_in_sample.png"))
    tables = report_tables(summaries, holdout, "phased")
    (folder / "summary.json").write_text(json.dumps(_jsonable({
        "summaries": [asdict(s) for s in summaries], "holdout": holdout, "runs": list(infos), "targets": goal,
    }), indent=1))
    dashboard = dashboard_command(storage)
    report = [
        f"# {settings['name']}", "",
        "Question: which search policy finds the best configuration with the fewest real evaluations?", "",
        f"Set-up: universe `{settings['universe']}` (draw {settings['universe_seed']}), search window "
        f"{SEARCH_START}..{SEARCH_END}, space `{settings['space']}`, budget {settings['budget']} real evaluations per run, "
        f"seeds {settings['seeds']}, contract {CONTRACT_VERSION}. Baseline: the phased one-at-a-time sweep.", "",
        "Best score at each budget: median [25%, 75%] over seeds. norm@b: Bayesmark-normalised score "
        "(0 = best known, 1 = random search's median; lower is better). AUC: mean rescaled best-so-far "
        "(higher = good configurations earlier). Holdout: the sealed post-2025 score of each run's winner.", "",
        tables,
        *[f"![{p.stem}]({p.name})" for p in figures], "",
        f"{rows} trials in `trials.tsv`; browse them all: `{dashboard}`",
    ]
    (folder / "report.md").write_text("\n".join(report) + "\n")
    print(tables)
    print(f"report: {folder / 'report.md'}")
    print(f"browse every trial: {dashboard}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
