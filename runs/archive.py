"""Keep a long comparison's Optuna journal in the repository, as compressed append-only parts.

A comparison of every searcher on the whole ``real-v1`` suite takes hours longer than one working session, and a
session's scratch space (``runs/out/``) does not outlive it. Its state is one journal file (Optuna's
``JournalStorage``: one JSON operation per line, only ever appended to), from which ``runs.compare --resume``
rebuilds everything else (the queue, each run's study, the per-run TSVs, the report). So a journal is saved as the
bytes added since its previous save, each save one xz-compressed part, and restored by concatenating them:

    python -m runs.archive save runs/out/NAME.journal results/NAME
    python -m runs.archive restore results/NAME runs/out/NAME.journal
    python -m runs.compare --storage journal:runs/out/NAME.journal --name NAME --resume

``DIR/manifest.json`` lists the parts (file, length in bytes, SHA-256 of the part's bytes) and the SHA-256 of
the whole archived journal. ``save`` refuses a journal that does not begin with the archived bytes (another
experiment, or a rewritten file) and archives complete lines only. ``restore`` writes the journal, or extends a
journal that holds a prefix of the archive, and refuses one that differs; every part is checked against its hash.
Save after stopping the workers (``kill PID`` on the driver): runs still claimed in a saved journal are taken
back by the next ``--resume``, which repeats them from their last stored evaluation. Once the comparison is
finished, ``python -m runs.export`` keeps it as its derived tables and the journal parts leave the tree.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import sys
from pathlib import Path
from typing import Any, Iterator

MANIFEST = "manifest.json"
CHUNK = 1 << 22  # bytes read at a time (4 MiB)


class ArchiveError(RuntimeError):
    """A journal and an archive that do not belong together, or a damaged archive."""


def _manifest(folder: Path) -> dict[str, Any]:
    path = folder / MANIFEST
    if not path.exists():
        return {"format": 1, "parts": [], "bytes": 0, "sha256": hashlib.sha256().hexdigest()}
    manifest = json.loads(path.read_text())
    if manifest.get("format") != 1:
        raise ArchiveError(f"{path}: unknown archive format {manifest.get('format')!r}")
    return manifest


def _archived_chunks(folder: Path, manifest: dict[str, Any]) -> Iterator[bytes]:
    """The archived journal's bytes, part by part, each part checked against its length and hash."""
    for part in manifest["parts"]:
        data = lzma.decompress((folder / part["file"]).read_bytes())
        if len(data) != part["bytes"] or hashlib.sha256(data).hexdigest() != part["sha256"]:
            raise ArchiveError(f"{folder / part['file']}: damaged (its length or SHA-256 differs from {MANIFEST})")
        yield data


def _prefix_sha256(path: Path, length: int) -> str:
    digest, left = hashlib.sha256(), length
    with path.open("rb") as handle:
        while left:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise ArchiveError(f"{path}: shorter than {length} bytes")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def save(journal: Path, folder: Path) -> int:
    """Append the journal's complete lines added since the last save as a new part; the bytes added (0: none)."""
    journal, folder = Path(journal), Path(folder)
    manifest = _manifest(folder)
    size, archived = journal.stat().st_size, manifest["bytes"]
    if size < archived or _prefix_sha256(journal, archived) != manifest["sha256"]:
        raise ArchiveError(f"{journal} does not begin with the {archived} bytes archived in {folder} "
                           "(another experiment's journal, or one rewritten since)")
    with journal.open("rb") as handle:
        handle.seek(archived)
        new = handle.read(size - archived)
    new = new[:new.rfind(b"\n") + 1]  # complete lines only: a writer may be part-way through one
    if not new:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    name = f"journal.part-{len(manifest['parts']):03d}.xz"
    (folder / name).write_bytes(lzma.compress(new))
    whole = hashlib.sha256()
    for chunk in _archived_chunks(folder, manifest):
        whole.update(chunk)
    whole.update(new)
    manifest["parts"].append({"file": name, "bytes": len(new), "sha256": hashlib.sha256(new).hexdigest()})
    manifest["bytes"], manifest["sha256"] = archived + len(new), whole.hexdigest()
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return len(new)


def restore(folder: Path, journal: Path) -> int:
    """Write the archived journal to ``journal``, or extend a journal holding a prefix of it; the bytes written."""
    folder, journal = Path(folder), Path(journal)
    manifest = _manifest(folder)
    if not manifest["parts"]:
        raise ArchiveError(f"{folder}: no archive here (no {MANIFEST} with parts)")
    have = journal.stat().st_size if journal.exists() else 0
    if have >= manifest["bytes"]:
        if _prefix_sha256(journal, manifest["bytes"]) != manifest["sha256"]:
            raise ArchiveError(f"{journal} differs from the archive in {folder}; not touched")
        return 0
    existing = journal.read_bytes() if have else b""
    offset, written = 0, 0
    journal.parent.mkdir(parents=True, exist_ok=True)
    with journal.open("ab") as handle:
        for chunk in _archived_chunks(folder, manifest):
            end = offset + len(chunk)
            if offset < have:  # the journal already holds (part of) this part: it must agree
                if chunk[:have - offset] != existing[offset:min(end, have)]:
                    raise ArchiveError(f"{journal} differs from the archive in {folder}; not touched")
                chunk = chunk[have - offset:] if end > have else b""
            handle.write(chunk)
            written += len(chunk)
            offset = end
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runs.archive", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    save_parser = commands.add_parser("save", help="archive the journal's lines added since the last save")
    save_parser.add_argument("journal", type=Path)
    save_parser.add_argument("folder", type=Path)
    restore_parser = commands.add_parser("restore", help="write (or extend) the journal from the archive")
    restore_parser.add_argument("folder", type=Path)
    restore_parser.add_argument("journal", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "save":
            added = save(args.journal, args.folder)
            print(f"{args.folder}: {added} bytes added" if added else f"{args.folder}: nothing new to archive")
        else:
            written = restore(args.folder, args.journal)
            print(f"{args.journal}: {written} bytes restored" if written else f"{args.journal}: already up to date")
    except (ArchiveError, OSError, json.JSONDecodeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
