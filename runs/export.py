"""Keep a finished comparison as its derived tables (:mod:`runs.tables`), not as its Optuna journal.

    python -m runs.export runs/out/NAME results/NAME [--storage URL] [--journal-manifest FILE]
    python -m runs.report results/NAME          # re-write its report from the tables alone

The comparison must be finished and reported (every run done, ``summary.json`` and ``report.md`` written: ``python
-m runs.compare --name NAME --resume --jobs 0``). Its records come from the folder's per-run TSVs, its run infos
from its storage (default: ``config.json``'s; a journal kept by ``runs.archive`` is restored first), and
``--journal-manifest`` (that archive's ``manifest.json``) records which journal the tables came from. Exit codes:
0 written, 2 not a finished comparison or no such storage (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runs.results import load_experiment
from runs.tables import CONFIG, REQUIRED, TablesError, write_tables
from runs.worker import ExperimentQueue


def _storage_exists(storage: str) -> bool:
    for scheme in ("journal:", "sqlite:///"):
        if storage.startswith(scheme):
            return Path(storage[len(scheme):]).exists()
    return True  # a server (postgresql://...): opening it tells


def export(folder: Path, out: Path, storage: str | None = None, journal_manifest: Path | None = None,
           command: str | None = None) -> Path:
    """Write the tables of the finished comparison ``folder`` to ``out``; returns ``out/tables.json``'s path.

    ``TablesError`` for a folder that is not a finished, reported comparison, or a storage without its run infos."""
    folder, out = Path(folder), Path(out)
    if not (folder / CONFIG).is_file():
        raise TablesError(f"{folder}: not a runs.compare experiment folder (no {CONFIG})")
    if json.loads((folder / CONFIG).read_text()).get("tables"):
        raise TablesError(f"{folder}: already kept as tables")
    try:
        config, _, runs = load_experiment(folder)
    except ValueError as exc:
        raise TablesError(f"not a finished comparison: {exc}") from None
    if config.get("partial"):
        raise TablesError(f"{folder}: not a finished comparison ({config['partial']['runs_not_done']} runs not done)")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise TablesError(f"{folder}: not a finished comparison (no {', '.join(missing)}: report it first with "
                          f"`python -m runs.compare --name {config['name']} --resume --jobs 0`)")
    storage = storage or config["storage"]
    if not _storage_exists(storage):
        raise TablesError(f"{storage}: no such storage (restore the journal first: python -m runs.archive restore)")
    infos = ExperimentQueue(storage, config["name"]).infos()
    done = {(i["instance"], i["searcher"], int(i["seed"])) for i in infos}
    absent = [f"{i}/{s}/seed{n}" for i, by in runs.items() for s, by_seed in by.items() for n in by_seed
              if (i, s, n) not in done]
    if absent:
        raise TablesError(f"{storage}: no completed run info for {len(absent)} run(s) of {config['name']!r} "
                          f"(e.g. {absent[0]}): not this experiment's storage, or not finished")
    source: dict[str, Any] = {"storage": storage}
    if journal_manifest is not None:
        archived = json.loads(Path(journal_manifest).read_text())
        source.update(journal_sha256=archived["sha256"], journal_bytes=archived["bytes"],
                      journal_parts=len(archived["parts"]))
    return write_tables(folder, out, runs, infos, source=source, command=command)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.export", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the comparison folder (runs/out/NAME, report written)")
    parser.add_argument("out", type=Path, help="the tables folder to write (e.g. results/NAME)")
    parser.add_argument("--storage", default=None, help="the experiment's Optuna storage (default: config.json's)")
    parser.add_argument("--journal-manifest", type=Path, default=None,
                        help="runs.archive manifest.json of the archived journal (its SHA-256 is recorded)")
    args = parser.parse_args(argv)
    shown = "python -m runs.export " + " ".join(argv if argv is not None else sys.argv[1:])
    try:
        path = export(args.folder, args.out, args.storage, args.journal_manifest, command=shown)
    except (TablesError, OSError, KeyError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    manifest = json.loads(path.read_text())
    print(f"{args.out}: {manifest['trials']['rows']} trials, {manifest['runs']['rows']} run infos, "
          f"{len(manifest['files'])} files copied")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
