"""Compare search policies on one real-evaluation budget, over many problem instances.

    python -m runs.compare --quick                                  # embedded: synthetic-small, 3 seeds, budget 60
    python -m runs.compare --suite real-v1 --quick                  # 4 real instances, 2 seeds, budget 40
    python -m runs.compare --suite real-v1 --searcher tpe gp --budget 100 --seeds 5 --jobs 2
    python -m runs.compare --suite synthetic-v1 --instances synthetic-v1-01 synthetic-v1-02 --searcher random tpe
    python -m runs.compare --universe ../shared/data/binance_top50_daily.csv.gz     # one instance: the default split
    python -m runs.compare --name my-run --resume                   # continue an interrupted comparison
    python -m runs.compare --name my-run --resume --rerun ppo       # run one searcher's runs again (code changed)
    python -m runs.compare --suite synthetic-v1 --objective emulated # on the emulators (surrogate.emulator), minutes

Every instance x searcher x seed is one run against its own budgeted ``env.Objective`` on that
instance's problem (search window, strategy, space). Trials go to an Optuna storage (one study per run,
``<name>/<instance>/<searcher>/seed<n>``) and to ``runs/out/<name>/``: ``config.json``,
``runs/<instance>/<searcher>-seed<n>.tsv``, the merged ``trials.tsv``, ``summary.json`` (strict JSON),
PNG plots and ``report.md``. The statistics (``stats/``, ``docs/reference/statistics.md``) take the
instance as the unit of replication: seeds are averaged within an instance, intervals resample
instances and seeds. Exit codes: 0 done, 1 some run failed, 2 bad arguments, suite or data.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from contextlib import suppress
from pathlib import Path
from typing import Any, Sequence

import optuna

import policies
from data import DataError
from env import StoreError
from env.store import open_storage, study_name
from harness import CONTRACT_VERSION
from instances import Instance, InstanceError, load_suite
from instances.warm import warm
from runs import worker
from runs.execution import (
    REPO,
    RunSpec,
    canonical,
    emulator_config,
    emulator_of,
    problem_of,
    queue_order,
    specs_of,
    trial_store,
)
from runs.processes import only_process, run_all
from runs.report import finish
from runs.results import load_runs, restrict_to_seeds, whole_seeds
from strategy.space import SPACES

OUT = Path(__file__).resolve().parent / "out"


DEFAULT_SEARCHERS = ("phased", "random", "tpe", "gp", "smac", "cmaes", "ppo")


QUICK = {"universe": "synthetic-small", "seeds": 3, "budget": 60}


QUICK_SUITE = {"seeds": 2, "budget": 40,
               "instances": {"real-v1": ("binance-spot-2021-07", "binance-spot-2023-01", "bybit-perp-liq30-2022-05",
                                         "bybit-perp-liq30-2023-05")}}
"""``--suite S --quick``: about 4 instances (the named ones, else the first 4), 2 seeds, budget 40."""


def _emulator_file(args: argparse.Namespace, suite: str | None) -> Path:
    """``--emulator``, else the suite's shipped emulator (``<suite>-<space>`` first when ``--space`` overrides)."""
    from surrogate.emulator.problem import emulator_path

    if args.emulator is not None:
        return args.emulator
    if suite is None:
        raise ValueError("--objective emulated without --suite needs --emulator FILE (emulators are built per suite: "
                         "python -m runs.emulator build --suite SUITE)")
    if args.space and emulator_path(suite, args.space).exists():
        return emulator_path(suite, args.space)
    return emulator_path(suite)


def rerun(queue: worker.ExperimentQueue, specs: Sequence[RunSpec], searchers: Sequence[str]) -> None:
    """Discard the stored runs of ``searchers`` in this experiment (``--rerun``): their Optuna studies, TSVs and
    queue claims; the submission that follows queues them again. The other searchers' runs are untouched."""
    unknown = sorted(set(searchers) - {spec.searcher for spec in specs})
    if unknown:
        raise ValueError(f"--rerun {', '.join(unknown)}: not a searcher of this experiment")
    queue.discard(list(searchers))
    storage = open_storage(specs[0].storage)
    for spec in specs:
        if spec.searcher in searchers:
            name = study_name(f"{spec.experiment}/{spec.instance_id}", spec.searcher, spec.seed)
            with suppress(KeyError):
                optuna.delete_study(study_name=name, storage=storage)
            spec.tsv.unlink(missing_ok=True)


def same_objective(stored: dict[str, Any], config: dict[str, Any]) -> None:
    """``StoreError`` unless an experiment continues on the objective (and emulator) it started with."""
    def describe(c: dict[str, Any]) -> str:
        return (f"emulator {c['emulator']['path']} ({c['emulator']['sha256'][:16]}...)" if c.get("objective") == "emulated"
                else "the real harness")

    if (stored.get("objective", "real"), (stored.get("emulator") or {}).get("sha256")) != (
            config["objective"], (config.get("emulator") or {}).get("sha256")):
        raise StoreError(f"experiment {config['name']!r} ran on {describe(stored)}, not {describe(config)}: real and "
                         "emulated trials (or two emulators) never mix in one experiment; use another --name")


class OneDefaultHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` with one default per option: argparse's ``(default: X)`` only where the help text names none
    itself (options whose default depends on ``--quick`` say so in words) and the default is a value."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.compare", description=__doc__.split("\n\n")[0],
                                     formatter_class=OneDefaultHelpFormatter)
    parser.add_argument("--suite", default=None,
                        help="a suite of problem instances: real-v1, synthetic-v1 or a suite file (docs/reference/instances.md)")
    parser.add_argument("--instances", nargs="+", default=None, metavar="ID", help="only these instances of --suite")
    parser.add_argument("--searcher", nargs="+", default=None, metavar="NAME",
                        help=f"searchers to compare (default: {' '.join(DEFAULT_SEARCHERS)})")
    parser.add_argument("--budget", type=int, default=None, help="real evaluations per run (default 200; quick 60, "
                        "suite quick 40)")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds 0..N-1 per searcher and instance "
                        "(default 5; quick 3, suite quick 2)")
    parser.add_argument("--seed-list", type=int, nargs="+", default=None, help="explicit seeds instead of --seeds")
    parser.add_argument("--universe", default=None,
                        help="without --suite: one instance on this universe with the default split (synthetic "
                             "(default), synthetic-small (quick), bear-basket, or a data file/folder)")
    parser.add_argument("--universe-seed", type=int, default=0, help="market draw of a synthetic --universe")
    parser.add_argument("--space", default=None, choices=sorted(SPACES),
                        help="search space (default: each instance's own, joint for --universe)")
    parser.add_argument("--name", default=None, help="experiment name (folder runs/out/NAME; default from the set-up)")
    parser.add_argument("--out", type=Path, default=OUT, help="parent folder of experiment folders")
    parser.add_argument("--storage", default=None,
                        help="Optuna storage URL: sqlite:///file.db, postgresql://..., or journal:FILE (default: "
                             "SQLite in the experiment folder for one real-harness job, else a journal file there)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="worker processes here (default 1; quick: 2 where the machine has 2+ cores); 0: only "
                             "queue the runs for `python -m runs.worker` elsewhere, and report once they are done")
    parser.add_argument("--lanes", type=int, default=1,
                        help="workers that may evaluate within one run of a searcher that supports it (tpe, gp): "
                             "1 keeps every run sequential and replayable")
    parser.add_argument("--resume", action="store_true", help="continue an existing experiment of the same name")
    parser.add_argument("--partial", action="store_true",
                        help="with --resume: while runs are still queued or running, report on the seeds already done "
                             "on every instance x searcher (the report says it is partial)")
    parser.add_argument("--rerun", nargs="+", default=None, metavar="NAME",
                        help="with --resume: discard these searchers' stored runs (studies, TSVs, queue claims) and "
                             "run them again, e.g. after a searcher's code or default policy changed")
    parser.add_argument("--no-warm", action="store_true",
                        help="skip the instance warm-up (every regime chain computed once, before the runs, with "
                             "--jobs processes: python -m runs.instances warm)")
    parser.add_argument("--quick", action="store_true",
                        help=f"quick profile: {QUICK['universe']}, {QUICK['seeds']} seeds, budget {QUICK['budget']}; "
                             f"with --suite: 4 instances, {QUICK_SUITE['seeds']} seeds, budget {QUICK_SUITE['budget']}; "
                             "2 jobs")
    parser.add_argument("--objective", choices=("real", "emulated"), default=None,
                        help="real harness evaluations (default), or the instances' emulators (docs/reference/emulator.md): "
                             "emulated experiments are separate experiments (name suffix -emulated), never mixed "
                             "with real ones, and score no holdout")
    parser.add_argument("--emulator", type=Path, default=None,
                        help="with --objective emulated: the emulator file (default: the suite's, "
                             "surrogate/emulators/<suite>[-<space>].emulator)")
    return parser


def _instances(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[str | None, str | None,
                                                                                     list[Instance]]:
    """``(suite name, suite path, instances)`` chosen by the arguments (``InstanceError`` for a bad suite)."""
    if args.suite is None:
        if args.instances:
            parser.error("--instances needs --suite")
        universe = args.universe or (QUICK["universe"] if args.quick else "synthetic")
        return None, None, [Instance.default(universe, seed=args.universe_seed, space=args.space or "joint")]
    if args.universe is not None:
        parser.error("--universe and --suite exclude each other (a suite names its universes)")
    suite = load_suite(args.suite)
    ids = args.instances
    if ids is None and args.quick:
        named = QUICK_SUITE["instances"].get(suite.name)
        ids = list(named) if named else suite.ids[:4]
    chosen = list(suite.select(ids))
    if args.space:
        chosen = [Instance.from_definition({**i.definition(), "space": args.space}, suite=suite.name) for i in chosen]
    return suite.name, str(suite.path), chosen


def _settings(args: argparse.Namespace, parser: argparse.ArgumentParser, instances: list[Instance],
              suite: str | None) -> dict[str, Any]:
    quick = (QUICK_SUITE if suite else QUICK) if args.quick else {"seeds": 5, "budget": 200}
    budget = args.budget if args.budget is not None else quick["budget"]
    seeds = args.seed_list if args.seed_list is not None else list(range(args.seeds if args.seeds is not None else quick["seeds"]))
    searchers = args.searcher or [s for s in DEFAULT_SEARCHERS if s in policies.SEARCHERS]
    for name in searchers:
        try:
            policies.searcher_class(name)
        except ValueError as exc:
            parser.error(str(exc))
    if budget < 1:
        parser.error("--budget must be at least 1")
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        parser.error("seeds must be distinct non-negative integers")
    jobs = args.jobs if args.jobs is not None else (min(2, len(os.sched_getaffinity(0))) if args.quick else 1)
    if jobs < 0:
        parser.error("--jobs must be 0 (queue only) or more")
    if args.lanes < 1:
        parser.error("--lanes must be at least 1")
    label = suite or instances[0].id
    spaces = sorted({i.space for i in instances})
    name = args.name or (f"compare-{label}-{'-'.join(spaces)}-b{budget}" + ("-quick" if args.quick and suite else "")
                         + ("-emulated" if args.objective == "emulated" else ""))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        parser.error(f"--name {name!r}: use letters, digits, '.', '_' or '-'")
    return {"name": name, "budget": budget, "seeds": seeds, "searchers": list(dict.fromkeys(searchers)), "jobs": jobs,
            "lanes": args.lanes}


def _fill_from(previous: dict[str, Any], args: argparse.Namespace) -> None:
    """On --resume, the set-up arguments not given again default to the experiment's own."""
    for arg, key in (("budget", "budget"), ("searcher", "searchers"), ("seed_list", "seeds")):
        if getattr(args, arg) is None and not (arg == "seed_list" and args.seeds is not None):
            setattr(args, arg, previous[key])
    if args.suite is None and args.universe is None:
        if previous.get("suite"):
            args.suite = previous.get("suite_path") or previous["suite"]
            args.instances = args.instances or [d["id"] for d in previous["instances"]]
        else:
            (only,) = previous["instances"]
            args.universe, args.universe_seed = only["universe"], only["seed"]
            args.space = args.space or only["space"]
    if args.lanes == 1:
        args.lanes = previous.get("lanes", 1)
    if args.objective is None:
        args.objective = previous.get("objective", "real")
        if args.objective == "emulated" and args.emulator is None:
            args.emulator = REPO / previous["emulator"]["path"]


def _no_experiment(name: str, out: Path, storage: str | None) -> str:
    """The one-line error for ``--resume`` of an experiment that does not exist: the experiments that do."""
    known = sorted(p.parent.name for p in Path(out).glob("*/config.json"))
    where = f"{Path(out).resolve()}" + (f" or in {storage}" if storage else "")
    return (f"--resume: no experiment named {name!r} in {where}; "
            + (f"experiments there: {', '.join(known)}" if known else "there are none yet (drop --resume to start one)"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rerun and not args.resume:
        parser.error("--rerun discards runs of an existing experiment: pass --resume --name NAME")
    if args.resume and args.name:  # the experiment's own set-up, from its folder or else from the storage
        config_path = (args.out / args.name).resolve() / "config.json"
        stored = json.loads(config_path.read_text()) if config_path.exists() else (
            worker.ExperimentQueue(args.storage, args.name).config if args.storage else None)
        if not stored:
            print(f"error: {_no_experiment(args.name, args.out, args.storage)}", file=sys.stderr)
            return 2
        _fill_from(stored, args)
    objective = args.objective or "real"
    if args.emulator is not None and objective != "emulated":
        parser.error("--emulator needs --objective emulated")
    try:
        suite, suite_path, instances = _instances(args, parser)
        for instance in instances:  # an emulated run needs no data: the emulator checks the definition (and the
            instance.check(min_holdout_days=180 if suite else 0, data=objective == "real")  # data where present)
    except (InstanceError, DataError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings = _settings(args, parser, instances, suite)
    folder = (args.out / settings["name"]).resolve()
    config_path = folder / "config.json"
    if config_path.exists() and not args.resume:
        print(f"error: {folder} already holds an experiment; pass --resume to continue it or --name for a new one",
              file=sys.stderr)
        return 2
    if args.resume and not config_path.exists() and not (  # the storage is consulted only then
            args.storage and worker.ExperimentQueue(args.storage, settings["name"]).config):
        print(f"error: {_no_experiment(settings['name'], args.out, args.storage)}", file=sys.stderr)
        return 2
    previous = json.loads(config_path.read_text()) if config_path.exists() else {}
    # an emulated trial is far cheaper than a SQLite commit: emulated experiments default to a journal file
    default = (f"sqlite:///{folder / 'trials.db'}" if settings["jobs"] <= 1 and objective == "real"
               else f"journal:{folder / 'trials.journal'}")
    storage = args.storage or previous.get("storage") or default
    if storage.startswith("sqlite") and settings["jobs"] > 1:
        print(f"error: SQLite serves one worker process; with --jobs {settings['jobs']} use --storage journal:FILE "
              "(this machine) or postgresql://... (several machines)", file=sys.stderr)
        return 2
    config = {**settings, "suite": suite, "suite_path": suite_path,
              "instances": [i.definition() for i in instances], "storage": storage, "contract": CONTRACT_VERSION,
              "objective": objective, "command": "python -m runs.compare " + " ".join(argv if argv is not None else sys.argv[1:])}
    try:
        if objective == "emulated":
            config["emulator"] = emulator_config(_emulator_file(args, suite))
        if previous:
            same_objective(previous, config)
            worker.check_same_setup(previous, config)
        for instance in instances:  # load and seal every instance's data (or emulator) now: a bad file fails here
            problem_of(canonical(instance), emulator_of(config))
    except (StoreError, DataError, InstanceError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    folder.mkdir(parents=True, exist_ok=True)
    specs = specs_of(config, storage, folder)
    print(f"{settings['name']}: {len(instances)} instance(s) x {len(settings['searchers'])} searchers x "
          f"{len(settings['seeds'])} seeds x budget {settings['budget']}\nstorage {storage}", file=sys.stderr)
    try:
        with only_process(storage):
            queue = worker.ExperimentQueue(storage, settings["name"])
            if queue.config is not None:
                same_objective(queue.config, config)
            if args.rerun:
                rerun(queue, specs, args.rerun)
            queue.submit({k: v for k, v in config.items() if k != "jobs"},
                         [(spec.instance_id, spec.searcher, spec.seed, spec.lanes) for spec in queue_order(specs)])
            for spec in specs:
                if spec.shared:
                    trial_store(spec, tsv=False).ensure_slots(spec.budget)
            config_path.write_text(json.dumps(config, indent=1))
            if settings["jobs"] > 0:
                if not args.no_warm and objective == "real":
                    warmed = warm(instances, jobs=settings["jobs"])
                    print(warmed["skipped"] or f"instance warm-up: {warmed['configurations']} regime settings in "
                          f"{warmed['seconds']:.0f} s (charged to no searcher)", file=sys.stderr)
                    with (folder / "warm.json").open("a") as handle:
                        handle.write(json.dumps(warmed) + "\n")
                done = sum(len(records) for seeds in load_runs(specs).values() for runs_ in seeds.values()
                           for records in runs_.values())
                summary = run_all(storage, settings["name"], args.out.resolve(), settings["jobs"],
                                  sum(s.budget for s in specs), done, len(instances))
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
    if (status["waiting"] or status["running"]) and args.partial:
        infos = queue.infos()
        seeds = whole_seeds({(i["instance"], i["searcher"], i["seed"]) for i in infos}, config)
        if not seeds:
            print(f"error: no seed is done on every instance x searcher yet ({status['complete']} run claims done)",
                  file=sys.stderr)
            return 2
        partial = restrict_to_seeds(config, seeds, status["waiting"] + status["running"])
        return finish([spec for spec in specs if spec.seed in seeds], partial, folder, storage,
                      [info for info in infos if info["seed"] in seeds])
    if status["waiting"] or status["running"]:
        print(f"{status['complete']} run claims done, {status['running']} running, {status['waiting']} waiting: start "
              f"workers with `python -m runs.worker --storage {storage} --experiment {settings['name']}`; report with "
              f"`python -m runs.compare --storage {storage} --name {settings['name']} --resume --jobs 0`", file=sys.stderr)
        return 0
    if status["failed"]:
        print(f"{status['failed']} run(s) failed (see above); fix and --resume to run them again", file=sys.stderr)
        return 1
    return finish(specs, config, folder, storage, queue.infos())


if __name__ == "__main__":
    worker.interrupt_on_sigterm()  # the command line only: a caller of main() keeps its own signal handling
    sys.exit(main())
