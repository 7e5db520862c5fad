"""runs.archive: a comparison's journal saved in compressed parts and restored, on any machine, to resume."""
from __future__ import annotations

import csv
import json

import pytest

from runs import archive
from runs.compare import main

TINY = ["--universe", "synthetic-small", "--space", "core", "--searcher", "random", "--seeds", "2", "--no-warm"]


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(b'{"op": %d, "payload": "%s"}\n' % (i, b"x" * (i % 7)) for i in range(start, start + n))


def test_saves_only_new_complete_lines_and_restores_the_same_bytes(tmp_path, capsys):
    journal, folder, restored = tmp_path / "j.log", tmp_path / "archive", tmp_path / "again" / "j.log"
    journal.write_bytes(_lines(50) + b'{"op": 50, "half')  # a writer part-way through a line
    assert archive.save(journal, folder) == len(_lines(50))
    assert archive.save(journal, folder) == 0  # nothing complete added since
    with journal.open("ab") as handle:
        handle.write(b'"}\n' + _lines(20, start=51))
    assert archive.main(["save", str(journal), str(folder)]) == 0
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [p["file"] for p in manifest["parts"]] == ["journal.part-000.xz", "journal.part-001.xz"]
    assert manifest["bytes"] == journal.stat().st_size
    assert archive.main(["restore", str(folder), str(restored)]) == 0
    assert restored.read_bytes() == journal.read_bytes()
    assert "bytes restored" in capsys.readouterr().out
    assert archive.main(["restore", str(folder), str(restored)]) == 0  # already whole: untouched
    assert "already up to date" in capsys.readouterr().out
    assert restored.read_bytes() == journal.read_bytes()


def test_restore_extends_a_prefix_and_refuses_a_different_journal(tmp_path, capsys):
    journal, folder = tmp_path / "j.log", tmp_path / "archive"
    journal.write_bytes(_lines(30))
    archive.save(journal, folder)
    behind = tmp_path / "behind.log"
    behind.write_bytes(_lines(30)[:100])  # an older copy, cut anywhere
    assert archive.restore(folder, behind) == len(_lines(30)) - 100
    assert behind.read_bytes() == journal.read_bytes()

    other = tmp_path / "other.log"
    other.write_bytes(_lines(5, start=7))
    assert archive.main(["restore", str(folder), str(other)]) == 2
    assert "differs from the archive" in capsys.readouterr().err
    assert other.read_bytes() == _lines(5, start=7)  # nothing lost
    assert archive.main(["save", str(other), str(folder)]) == 2  # another experiment's journal: not mixed in
    assert "does not begin with" in capsys.readouterr().err
    assert len(json.loads((folder / "manifest.json").read_text())["parts"]) == 1


def test_a_damaged_part_is_a_clear_error(tmp_path, capsys):
    journal, folder = tmp_path / "j.log", tmp_path / "archive"
    journal.write_bytes(_lines(30))
    archive.save(journal, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["parts"][0]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert archive.main(["restore", str(folder), str(tmp_path / "new.log")]) == 2
    assert "damaged" in capsys.readouterr().err
    assert archive.main(["restore", str(tmp_path / "nowhere"), str(tmp_path / "new.log")]) == 2
    assert "no archive here" in capsys.readouterr().err


def _rows(path):
    with path.open(newline="") as handle:
        return sorted((r["seed"], r["eval_index"], r["score"], tuple(sorted((k, v) for k, v in r.items() if k.startswith("p."))))
                      for r in csv.DictReader(handle, delimiter="\t"))


@pytest.mark.slow
def test_a_comparison_restored_from_its_archive_resumes_on_a_fresh_folder(tmp_path):
    """The use: a comparison stopped part-way in one session, archived, its scratch folder and journal lost, then
    restored in the next session; ``--resume`` (set-up read from the journal's queue) finishes every run, each
    evaluation once, and the report holds the trials of both sessions."""
    first, second = tmp_path / "first", tmp_path / "second"
    journal = first / "trials.journal"
    assert main(TINY + ["--budget", "3", "--storage", f"journal:{journal}", "--out", str(first), "--name", "c"]) == 0
    assert archive.save(journal, tmp_path / "archive") > 0
    restored = second / "restored.journal"
    assert archive.restore(tmp_path / "archive", restored) == journal.stat().st_size
    # a larger budget for the resumed session: the two sessions' trials are both in the final table
    assert main(["--budget", "5", "--storage", f"journal:{restored}", "--out", str(second), "--name", "c",
                 "--resume"]) == 0
    rows = _rows(second / "c" / "trials.tsv")
    assert [(s, i) for s, i, _, _ in rows] == [(s, str(i)) for s in "01" for i in range(5)]
    assert [r for r in rows if int(r[1]) < 3] == _rows(first / "c" / "trials.tsv")
    assert archive.save(restored, tmp_path / "archive") > 0  # the second session's lines become part 1
    assert len(json.loads((tmp_path / "archive" / "manifest.json").read_text())["parts"]) == 2


@pytest.mark.parametrize("command", [["save"], ["restore", "only-one"]])
def test_missing_arguments_exit_2(command):
    with pytest.raises(SystemExit) as exc:
        archive.main(command)
    assert exc.value.code == 2
