"""``python -m runs.emulator``: build the datasets and emulators of a suite, refit them, report their fidelity.

    python -m runs.emulator build --suite real-v1 --jobs 2 [--from runs/out/FOLDER ...]
    python -m runs.emulator fit --suite real-v1              # refit from the committed dataset, bit for bit
    python -m runs.emulator report [--suite S ...] [--real runs/out/FOLDER ...] [--json]
    python -m runs.emulator families --suite synthetic-v1    # the measurement behind the model choice

``build`` runs the design through ``runs.compare`` (the ``sobol`` searcher, one run of ``--budget`` real
evaluations per instance, experiment ``emulator-data-<suite>``: resumable with the same command, workers on
PostgreSQL with ``--storage postgresql://... --jobs 0`` and ``python -m runs.worker``, browsable in
optuna-dashboard), then exports the design, the suite's random pool and the trajectories of the ``--from``
comparison folders to ``surrogate/emulators/<suite>.parquet`` and fits ``surrogate/emulators/<suite>.emulator``.
Exit codes: 0 done, 1 a run failed, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

import stats
from instances import Instance, InstanceError, load_suite
from runs import compare, worker
from runs.results import instance_results, load_experiment
from surrogate.emulator.dataset import (
    DATA_DIR,
    EmulatorError,
    collect,
    dataset_path,
    design_name,
    file_sha256,
    instance_rows,
    read_dataset,
    stem,
    write_dataset,
)
from surrogate.emulator.fidelity import (
    BUDGETS,
    FAMILIES,
    compare_families,
    medians,
    ranking_fidelity,
)
from surrogate.emulator.model import EmulatorFile, fit_instance, save
from surrogate.emulator.problem import emulator_path

TWIN_SUFFIX = "-emulated"
SHIPPED_LIMIT = 30_000_000
"""Bytes of datasets and emulators that may be committed (all suites together)."""
REPORT_KEYS = ("spearman", "feasibility_auc", "top_decile_recall", "ranking_kendall_tau")


def _instances(suite_name: str, ids: Sequence[str] | None, space: str | None) -> tuple[Any, list[Instance]]:
    suite = load_suite(suite_name)
    chosen = list(suite.select(ids))
    if space:
        chosen = [Instance.from_definition({**i.definition(), "space": space}, suite=suite.name) for i in chosen]
    return suite, chosen


# --------------------------------------------------------------------------- the emulated twin
def run_twin(real_folder: Path, emulator: Path, out: Path, jobs: int = 1) -> Path:
    """Run (or resume) the emulated twin of the real comparison in ``real_folder``; return its folder."""
    config = _config(real_folder)
    if not config.get("suite"):
        raise EmulatorError(f"{real_folder}: not a suite comparison (the emulators are per suite instance)")
    name = config["name"] + TWIN_SUFFIX
    spaces = sorted({d["space"] for d in config["instances"]})
    if len(spaces) != 1:
        raise EmulatorError(f"{real_folder}: instances of several spaces {spaces}; one emulator serves one space")
    argv = ["--suite", config.get("suite_path") or config["suite"], "--instances", *[d["id"] for d in config["instances"]],
            "--space", spaces[0], "--searcher", *config["searchers"], "--seed-list", *map(str, config["seeds"]),
            "--budget", str(config["budget"]), "--objective", "emulated", "--emulator", str(emulator), "--name", name,
            "--out", str(out), "--jobs", str(jobs)]
    if (Path(out) / name / "config.json").exists():
        argv.append("--resume")
    with contextlib.redirect_stdout(sys.stderr):  # the comparison's tables: stdout is the report's
        code = compare.main(argv)
    if code != 0:
        raise EmulatorError(f"the emulated twin of {real_folder} stopped with exit code {code} (see above)")
    return Path(out) / name


def _config(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise EmulatorError(f"{folder}: not a runs.compare experiment folder (no config.json)")
    return json.loads(path.read_text())


def _normalised(folder: Path, budgets: Sequence[int]) -> tuple[dict[str, Any], dict[str, stats.NormalisedInstance]]:
    """A comparison folder's set-up and its instances normalised at the ``budgets`` its budget reaches."""
    config, _, runs = load_experiment(Path(folder))
    results, _ = instance_results(config, runs, config["budget"])
    used = [b for b in budgets if b <= config["budget"]]
    return config, {n.instance: n for n in stats.normalise_all(results, used)}


def folder_fidelity(real_folder: Path, twin_folder: Path, budgets: Sequence[int] = BUDGETS) -> dict[str, Any]:
    """:func:`surrogate.emulator.fidelity.ranking_fidelity` of a real comparison folder and its emulated twin's."""
    real_config, real = _normalised(real_folder, budgets)
    twin_config, twin = _normalised(twin_folder, budgets)
    return ranking_fidelity(real_config, real, twin_config, twin, budgets, labels=(str(real_folder), str(twin_folder)))


# --------------------------------------------------------------------------- build / export / fit
def build(args: argparse.Namespace) -> int:
    suite = load_suite(args.suite)
    name = design_name(suite.name, args.space)
    folder = args.runs_out.resolve() / name
    before = json.loads((folder / "config.json").read_text()) if (folder / "config.json").exists() else None
    wanted = set(args.instances or suite.ids) | {d["id"] for d in (before or {}).get("instances", [])}
    ids = [i for i in suite.ids if i in wanted]
    argv = ["--suite", str(suite.path), "--instances", *ids, "--searcher", "sobol", "--budget", str(args.budget),
            "--seed-list", "0", "--name", name, "--out", str(args.runs_out)]
    argv += ["--space", args.space] if args.space else []
    argv += ["--jobs", str(args.jobs)] if args.jobs is not None else []
    argv += ["--storage", args.storage] if args.storage else []
    argv += ["--resume"] if before is not None else []
    print(f"design: {len(ids)} instance(s) x {args.budget} sobol evaluations -> {folder}", file=sys.stderr)
    code = compare.main(argv)
    if code != 0:
        return code
    config = json.loads((folder / "config.json").read_text())
    status = worker.ExperimentQueue(config["storage"], name).status()
    if status["waiting"] or status["running"]:
        print("the design runs are queued, not done: once the workers have finished, run this command again to "
              "export the dataset and fit the emulators", file=sys.stderr)
        return 0
    return export(args, design=folder, ids=ids)


def export(args: argparse.Namespace, design: Path | None = None, ids: Sequence[str] | None = None) -> int:
    suite, instances = _instances(args.suite, ids or args.instances, args.space)
    if design is None:
        candidate = args.runs_out.resolve() / design_name(suite.name, args.space)
        design = candidate if (candidate / "config.json").exists() else None
        if design is not None and not (ids or args.instances):
            listed = {d["id"] for d in json.loads((design / "config.json").read_text())["instances"]}
            instances = [i for i in instances if i.id in listed]
    loaded = load_experiment(Path(design))[::2] if design is not None else None
    collected = collect(instances, loaded, [load_experiment(Path(f))[::2] for f in args.from_], suite_path=suite.path)
    for c in collected:
        skipped = "; ".join(f"{n} {why}" for why, n in sorted(c.skipped.items()))
        print(f"{c.instance.id}: {len(c.rows)} rows" + (f" (left out: {skipped})" if skipped else ""), file=sys.stderr)
    collected = [c for c in collected if c.rows]
    path = write_dataset(collected, dataset_path(suite.name, args.space, args.data_dir))
    print(f"dataset: {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return fit(args)


def fit(args: argparse.Namespace) -> int:
    suite, instances = _instances(args.suite, None, args.space)
    path = dataset_path(suite.name, args.space, args.data_dir)
    frame = read_dataset(path)
    present = set(frame["instance"])
    emulators = []
    for instance in (i for i in instances if i.id in present):
        rows = instance_rows(frame, instance.id)
        try:
            fingerprint = instance.fingerprint
        except (InstanceError, OSError, ValueError):
            fingerprint = str(rows["fingerprint"].iloc[0])  # no data here: the dataset's own (checked on use)
            print(f"{instance.id}: data not present, fitting on the dataset's fingerprint {fingerprint[:16]}...",
                  file=sys.stderr)
        began = time.perf_counter()
        emulator = fit_instance(rows, instance, fingerprint)
        f = emulator.meta["fidelity"]
        print(f"{instance.id}: {emulator.meta['rows']} rows, spearman {_fmt(f['spearman'])}, feasibility AUC "
              f"{_fmt(f['feasibility_auc'])}, top-decile recall {_fmt(f['top_decile_recall'])} "
              f"({time.perf_counter() - began:.1f} s)", file=sys.stderr)
        emulators.append(emulator)
    if not emulators:
        raise EmulatorError(f"{path}: no rows of the suite's instances")
    out = save(emulator_path(suite.name, args.space, args.data_dir), emulators, suite.name, file_sha256(path))
    print(f"emulators: {out} ({out.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    shipped = sum(p.stat().st_size for p in Path(args.data_dir).glob("*") if p.suffix in (".parquet", ".emulator"))
    if shipped > SHIPPED_LIMIT:
        print(f"warning: the datasets and emulators in {args.data_dir} total {shipped / 1e6:.1f} MB, over the "
              f"{SHIPPED_LIMIT / 1e6:.0f} MB that may be committed: give fewer --from folders", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- report
def _fmt(value: Any, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ranking_path(emulator: Path) -> Path:
    return emulator.with_suffix(".ranking.json")


def _stem_of_folder(config: dict[str, Any]) -> str:
    """The emulator stem matching a comparison folder: its suite, with the space when it overrode the suite's."""
    suite = load_suite(config.get("suite_path") or config["suite"])
    own = {i.id: i.space for i in suite.instances}
    spaces = sorted({d["space"] for d in config["instances"]})
    overridden = any(own.get(d["id"]) != d["space"] for d in config["instances"])
    return stem(suite.name, spaces[0] if overridden and len(spaces) == 1 else None)


def report(args: argparse.Namespace) -> int:
    data_dir = args.data_dir
    for folder in args.real:
        config = json.loads((Path(folder) / "config.json").read_text()) if (Path(folder) / "config.json").exists() else None
        if config is None or not config.get("suite"):
            raise EmulatorError(f"{folder}: not a runs.compare suite comparison folder (no config.json with a suite)")
        path = Path(data_dir) / f"{_stem_of_folder(config)}.emulator"
        container = EmulatorFile(path)
        twin = run_twin(Path(folder), path, args.runs_out, jobs=args.jobs)
        measured = folder_fidelity(Path(folder), twin, args.budgets)
        fingerprints = {i: container.load(i).fingerprint for i in measured["instances"] if i in container.instances}
        measured["emulator_sha256"] = container.sha256
        for instance, entry in measured["instances"].items():
            entry["emulator_fingerprint"] = fingerprints.get(instance)
        _ranking_path(path).write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
        print(f"ranking fidelity: {_ranking_path(path)}", file=sys.stderr)
    paths = ([emulator_path(load_suite(s).name, args.space, data_dir) for s in args.suite] if args.suite
             else sorted(Path(data_dir).glob("*.emulator")))
    rows, refused, suites = [], 0, {}
    for path in paths:
        try:
            container = EmulatorFile(path)
        except EmulatorError as exc:
            print(f"error: {exc}", file=sys.stderr)
            refused += 1
            continue
        ranking = json.loads(_ranking_path(path).read_text()) if _ranking_path(path).exists() else {}
        if ranking:
            suites[path.stem] = ranking.get("suite")
        probe = None
        for instance in container.instances:
            emulator = container.load(instance)
            if probe is None or probe.shape[1] != len(emulator.space):
                probe = emulator.space.snap(np.random.default_rng(0).random((1000, len(emulator.space))))
            timings = []
            for _ in range(6):  # the first call warms up; the best of the others (load on the machine only slows)
                began = time.perf_counter()
                emulator.scores(probe)
                timings.append(time.perf_counter() - began)
            f = emulator.meta["fidelity"]
            ranked = ranking.get("instances", {}).get(instance, {})
            if ranked.get("emulator_fingerprint") != emulator.fingerprint:
                ranked = {}
            rows.append({
                "instance": instance, "suite": container.manifest["suite"], "space": emulator.meta["space"],
                "n_real": emulator.meta["rows"], "n_feasible": emulator.meta["rows_feasible"],
                "spearman": f["spearman"], "feasibility_auc": f["feasibility_auc"],
                "top_decile_recall": f["top_decile_recall"], "reject_share_real": f["reject_share_real"],
                "reject_share_emulated": f["reject_share_emulated"], "n_test": f["n_test"],
                "ranking_kendall_tau": ranked.get("ranking_kendall_tau"),
                "ranking_kendall_tau_by_budget": {b: v["tau"] for b, v in ranked.get("by_budget", {}).items()} or None,
                "real_split_half_tau": ranked.get("real_split_half_tau"),
                "predict_ms_1000": 1e3 * min(timings[1:]),
                "emulator": emulator.fingerprint[:16], "file": str(path),
            })
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        _print_table(rows, suites)
    return 2 if refused and not rows else 0


def _print_table(rows: list[dict[str, Any]], suites: dict[str, Any]) -> None:
    print("| instance | space | n_real | Spearman | feasibility AUC | top-decile recall | rejected real / emulated "
          "| ranking tau (real split-half) | ms per 1,000 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['instance']} | {r['space']} | {r['n_real']} | {_fmt(r['spearman'])} | {_fmt(r['feasibility_auc'])} | "
              f"{_fmt(r['top_decile_recall'])} | {_fmt(r['reject_share_real'], 2)} / {_fmt(r['reject_share_emulated'], 2)}"
              f" | {_fmt(r['ranking_kendall_tau'])} ({_fmt(r['real_split_half_tau'])}) | {r['predict_ms_1000']:.1f} |")
    m = medians({r["instance"]: r for r in rows}, (*REPORT_KEYS, "real_split_half_tau"))
    print(f"| **median** ({len(rows)}) | | | {_fmt(m['spearman'])} | {_fmt(m['feasibility_auc'])} | "
          f"{_fmt(m['top_decile_recall'])} | | {_fmt(m['ranking_kendall_tau'])} ({_fmt(m['real_split_half_tau'])}) | |")
    for name, suite in suites.items():
        if not suite:
            continue
        for budget, entry in suite["by_budget"].items():
            order = sorted(entry["real"], key=lambda s: -entry["real"][s])
            print(f"\n{name}, budget {budget}: Kendall tau over the suite means {_fmt(entry['tau'])} (real split-half "
                  f"{_fmt(entry.get('real_split_half_tau'))})\n"
                  "| searcher | normalised real | normalised emulated | emulated - real |\n|---|---|---|---|")
            for s in order:
                print(f"| {s} | {_fmt(entry['real'][s])} | {_fmt(entry['emulated'][s])} | {_fmt(entry['difference'][s])} |")


def families(args: argparse.Namespace) -> int:
    suite, instances = _instances(args.suite, args.instances, args.space)
    frame = read_dataset(dataset_path(suite.name, args.space, args.data_dir))
    results: dict[str, dict[str, dict[str, Any]]] = {}
    for instance in instances:
        rows = instance_rows(frame, instance.id)
        if rows.empty:
            continue
        results[instance.id] = compare_families(rows, instance, args.families, args.folds, args.train_rows)
        print(f"{instance.id}: " + ", ".join(f"{k} {_fmt(v['spearman'])}/{_fmt(v['feasibility_auc'])}"
                                            for k, v in results[instance.id].items()), file=sys.stderr)
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print("| family | median Spearman | median feasibility AUC | median top-decile recall | fit s | ms per 1,000 |")
    print("|---|---|---|---|---|---|")
    for name in args.families:
        per = {i: r[name] for i, r in results.items()}
        m = medians(per, ("spearman", "feasibility_auc", "top_decile_recall", "fit_s", "predict_ms_1000"))
        print(f"| {name} | {_fmt(m['spearman'])} | {_fmt(m['feasibility_auc'])} | {_fmt(m['top_decile_recall'])} | "
              f"{_fmt(m['fit_s'], 1)} | {_fmt(m['predict_ms_1000'], 1)} |")
    return 0


# --------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.emulator", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, suite_required: bool = True) -> None:
        if suite_required:
            p.add_argument("--suite", required=True, help="real-v1, synthetic-v1 or a suite file")
        p.add_argument("--space", default=None, help="override every instance's space (core, specialists, joint); "
                       "files get a -<space> suffix")
        p.add_argument("--data-dir", type=Path, default=DATA_DIR, help="where datasets and emulators are written")
        p.add_argument("--runs-out", type=Path, default=compare.OUT, help="parent folder of runs.compare experiments")

    p = commands.add_parser("build", help="design runs, dataset, emulators")
    common(p)
    p.add_argument("--instances", nargs="+", default=None, metavar="ID", help="only these instances (added to the "
                   "instances already built)")
    p.add_argument("--budget", type=int, default=2000, help="sobol evaluations per instance")
    p.add_argument("--jobs", type=int, default=None, help="worker processes (runs.compare --jobs; 0: only queue)")
    p.add_argument("--storage", default=None, help="Optuna storage of the design runs (runs.compare --storage)")
    p.add_argument("--from", dest="from_", nargs="+", default=[], metavar="FOLDER",
                   help="real comparison folders whose trajectories join the dataset")
    p.set_defaults(run=build)
    p = commands.add_parser("export", help="dataset and emulators from existing folders (no new evaluation)")
    common(p)
    p.add_argument("--instances", nargs="+", default=None, metavar="ID")
    p.add_argument("--from", dest="from_", nargs="+", default=[], metavar="FOLDER")
    p.set_defaults(run=lambda a: export(a))
    p = commands.add_parser("fit", help="refit the emulators from the dataset file (deterministic)")
    common(p)
    p.set_defaults(run=fit)
    p = commands.add_parser("report", help="fidelity per instance (and ranking fidelity with --real)")
    common(p, suite_required=False)
    p.add_argument("--suite", nargs="+", default=None, help="these suites' emulators (default: every *.emulator)")
    p.add_argument("--real", nargs="+", default=[], metavar="FOLDER",
                   help="real suite comparison folders: run their emulated twins and measure ranking fidelity")
    p.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    p.add_argument("--jobs", type=int, default=1, help="worker processes for the emulated twins")
    p.add_argument("--json", action="store_true", help="a JSON list, one object per instance")
    p.set_defaults(run=report)
    p = commands.add_parser("families", help="held-out fidelity of each candidate model family")
    common(p)
    p.add_argument("--instances", nargs="+", default=None, metavar="ID")
    p.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (1: the emulator's own 80/20 split)")
    p.add_argument("--train-rows", type=int, default=None, metavar="N",
                   help="fit on N random rows of each training split (a learning curve; default: all of them)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=families)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (EmulatorError, InstanceError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
