"""``runs.tables``: a finished comparison kept as Parquet tables reads back exactly what its TSVs and queue held."""

from __future__ import annotations

import csv
import json
import math
import shutil
import struct

import pandas as pd
import pyarrow.parquet as pq
import pytest

from env.records import TrialRecord
from runs import tables
from runs.export import main as export_main
from runs.report import main as report_main
from runs.compare import main as compare
from runs.worker import ExperimentQueue

SETUP = ["--universe", "synthetic-small", "--space", "core", "--searcher", "random", "phased", "--seeds", "2",
         "--budget", "6", "--no-warm"]


def _tsv_runs(folder, config):
    """The records as ``runs.results.load_runs`` reads them (an independent reading): every run's TSV through ``TrialRecord.from_row``."""
    runs = {}
    for definition in config["instances"]:
        for searcher in config["searchers"]:
            for seed in config["seeds"]:
                with (folder / "runs" / definition["id"] / f"{searcher}-seed{seed}.tsv").open(newline="") as handle:
                    records = [TrialRecord.from_row(row) for row in csv.DictReader(handle, delimiter="\t")]
                runs.setdefault(definition["id"], {}).setdefault(searcher, {})[seed] = sorted(
                    records, key=lambda r: r.eval_index)
    return runs


def _exact(value):
    """A value with its type, floats as their bits: equal only when bit-identical."""
    return type(value).__name__, struct.pack("<d", value).hex() if isinstance(value, float) else value


def _bits(record):
    return (record.eval_index, record.searcher, record.seed, _exact(record.score), _exact(record.wall_time_s),
            record.contract, record.real, *([(k, _exact(v)) for k, v in getattr(record, field).items()]
                                            for field in ("params", "base", "stress")))


def _all_bits(runs):
    return {(i, s, n): [_bits(r) for r in records] for i, by in runs.items() for s, by_seed in by.items()
            for n, records in by_seed.items()}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A finished 2-searcher x 2-seed comparison (budget 6) and its tables, written by the command line."""
    out = tmp_path_factory.mktemp("tables")
    assert compare(SETUP + ["--out", str(out), "--name", "t"]) == 0
    assert export_main([str(out / "t"), str(out / "kept")]) == 0
    return out / "t", out / "kept"


def test_records_and_infos_round_trip_exactly(exported):
    folder, kept = exported
    config = json.loads((folder / "config.json").read_text())
    expected = _tsv_runs(folder, config)
    runs = tables.read_runs(kept)
    assert runs == expected
    assert _all_bits(runs) == _all_bits(expected)  # ints stay ints, bools bools, floats bit-identical, keys in order
    assert list(runs) == list(expected) and all(list(runs[i]) == list(expected[i]) for i in runs)
    assert sum(len(r) for by in runs.values() for by_seed in by.values() for r in by_seed.values()) == 24
    infos = ExperimentQueue(config["storage"], "t").infos()
    assert len(infos) == 4 and json.dumps(tables.read_infos(kept)) == json.dumps(infos)


def test_the_folder_holds_the_report_and_says_where_it_came_from(exported):
    folder, kept = exported
    assert tables.is_tables(kept) and not tables.is_tables(folder)
    config = tables.read_config(kept)
    original = json.loads((folder / "config.json").read_text())
    assert config == {**original, "storage": "tables", "tables": tables.TABLES_VERSION}
    for name in ("holdout.json", "summary.json", "report.md", "normalised_vs_budget.png"):
        assert (kept / name).read_bytes() == (folder / name).read_bytes(), name
    manifest = json.loads((kept / tables.MANIFEST).read_text())
    assert manifest["tables"] == tables.TABLES_VERSION and manifest["trials"]["rows"] == 24
    assert manifest["counts"] == {"instances": 1, "searchers": 2, "runs": 4, "trials": 24, "run_infos": 4}
    assert manifest["source"]["storage"] == original["storage"] and manifest["command"].startswith("python -m runs.export")
    schema = pq.read_schema(kept / tables.TRIALS)
    assert json.loads(schema.metadata[tables.META_KEY])["version"] == tables.TABLES_VERSION
    assert pq.ParquetFile(kept / tables.TRIALS).metadata.row_group(0).column(0).compression == "ZSTD"


def test_trials_table_columns_and_a_rejection_keeps_its_reason(exported):
    _, kept = exported
    frame = pd.read_parquet(kept / tables.TRIALS)
    assert list(frame.columns[:len(tables.TRIAL_COLUMNS)]) == list(tables.TRIAL_COLUMNS)
    assert frame["trial"].dtype == "int64" and frame["score"].dtype == "float64" and frame["rejected"].dtype == bool
    assert any(c.startswith("p.") for c in frame) and "base.annualized_return_pct" in frame
    assert "stress.calmar_ratio" in frame
    infos = tables.read_infos(kept)
    assert set(frame["machine"]) == {info["machine"] for info in infos} and frame["machine"].notna().all()
    rejected = frame[frame["rejected"]]
    assert len(rejected) > 0 and (rejected["score"] == -math.inf).all()  # the set-up rejects some: -inf, not NaN
    assert set(rejected["reason"]) <= {"annualised return below -50%", "stress Calmar below 0"}
    assert all(row["reason"] == ("annualised return below -50%" if row["base.annualized_return_pct"] < -50
                                 else "stress Calmar below 0") for _, row in rejected.iterrows())
    assert (frame.loc[~frame["rejected"], "reason"] == "").all()
    runs = tables.read_runs(kept)
    first = rejected.iloc[0]
    record = runs[first["instance"]][first["searcher"]][first["seed"]][first["trial"]]
    assert record.score == -math.inf and tables.reason_of(record) == first["reason"]


def test_reason_names_each_gate():
    def record(annual, calmar, score):
        return TrialRecord(0, "x", 0, {"a": 1}, score, base={"annualized_return_pct": annual, "calmar_ratio": 1.0},
                           stress={"annualized_return_pct": annual, "calmar_ratio": calmar})
    assert tables.reason_of(record(-60.0, 1.0, -math.inf)) == "annualised return below -50%"
    assert tables.reason_of(record(10.0, -0.5, -math.inf)) == "stress Calmar below 0"
    assert tables.reason_of(record(10.0, 0.5, 0.1)) == ""
    assert tables.reason_of(TrialRecord(0, "x", 0, {}, -math.inf)) == tables.UNKNOWN_REASON


def test_awkward_values_round_trip(tmp_path):
    """Types the TSVs never mix but a writer may: a parameter int in one record and float in another, None, NaN,
    text, an int beyond 64 bits, keys in different orders or missing, a run with no trials."""
    records = [
        TrialRecord(0, "s", 3, {"b": 1, "a": "x", "c": True}, 0.5, {"m": math.nan, "n": 2}, {"m": -0.0}, 0.25, "c1"),
        TrialRecord(1, "s", 3, {"a": "y", "b": 1.5, "d": None}, -math.inf, {"n": 2**70}, {}, 1e-300, "c1", False),
    ]
    runs = {"i": {"s": {3: records, 4: []}}}
    infos = [{"instance": "i", "searcher": "s", "seed": 3, "best": None, "searcher_stats": {"k": [1, 2.5]}},
             {"seed": 4, "instance": "i", "searcher": "s", "wall_s": 1.0, "machine": "cpu"}]
    (tmp_path / "config.json").write_text(json.dumps({"name": "x", "storage": "journal:somewhere"}))
    tables.write_tables(tmp_path, tmp_path / "kept", runs, infos)
    back = tables.read_runs(tmp_path / "kept")
    assert list(back["i"]["s"]) == [3, 4] and back["i"]["s"][4] == []
    assert [_bits(r) for r in back["i"]["s"][3]] == [_bits(r) for r in records]
    assert math.isnan(back["i"]["s"][3][0].base["m"])
    assert json.dumps(tables.read_infos(tmp_path / "kept")) == json.dumps(infos)
    with pytest.raises(ValueError, match="filed under run"):
        tables.write_tables(tmp_path, tmp_path / "other", {"i": {"t": {3: records}}}, [])


def test_missing_or_malformed_tables_are_clear_errors(exported, tmp_path):
    _, kept = exported
    with pytest.raises(tables.TablesError, match="no trials.parquet"):
        tables.read_runs(tmp_path)
    assert not tables.is_tables(tmp_path)
    with pytest.raises(tables.TablesError, match="not a comparison kept as tables"):
        tables.read_config(tmp_path)

    (tmp_path / tables.TRIALS).write_text("not parquet")
    with pytest.raises(tables.TablesError, match="not a readable Parquet table"):
        tables.read_runs(tmp_path)

    frame = pd.read_parquet(kept / tables.TRIALS)  # pandas writes its own metadata, not the tables'
    frame.to_parquet(tmp_path / tables.TRIALS)
    with pytest.raises(tables.TablesError, match="not a gemsearch trials table"):
        tables.read_runs(tmp_path)

    table = pq.read_table(kept / tables.TRIALS)
    pq.write_table(table.drop_columns(["base.calmar_ratio"]), tmp_path / tables.TRIALS)
    with pytest.raises(tables.TablesError, match=r"damaged, columns \['base.calmar_ratio'\] missing"):
        tables.read_runs(tmp_path)

    meta = json.loads(table.schema.metadata[tables.META_KEY])
    newer = table.replace_schema_metadata({tables.META_KEY: json.dumps({**meta, "version": 99}).encode()})
    pq.write_table(newer, tmp_path / tables.TRIALS)
    with pytest.raises(tables.TablesError, match="tables version 99"):
        tables.read_runs(tmp_path)
    with pytest.raises(tables.TablesError, match=r"not a gemsearch runs table \(a trials table\)"):
        shutil.copyfile(kept / tables.TRIALS, tmp_path / tables.RUNS)
        tables.read_infos(tmp_path)


def test_export_refuses_what_is_not_a_finished_comparison(exported, tmp_path, capsys):
    folder, kept = exported
    assert export_main([str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "no config.json" in capsys.readouterr().err
    assert export_main([str(kept), str(tmp_path / "out")]) == 2
    assert "already kept as tables" in capsys.readouterr().err

    unfinished = tmp_path / "unfinished"
    shutil.copytree(folder, unfinished)
    (unfinished / "report.md").unlink()
    assert export_main([str(unfinished), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "not a finished comparison (no report.md" in err and len(err.strip().splitlines()) == 1

    shutil.copyfile(folder / "report.md", unfinished / "report.md")
    tsv = unfinished / "runs" / "synthetic-small" / "random-seed1.tsv"
    tsv.write_text("".join(tsv.read_text().splitlines(keepends=True)[:4]))  # the header and 3 of 6 trials
    assert export_main([str(unfinished), str(tmp_path / "out")]) == 2
    assert "not a finished comparison" in (err := capsys.readouterr().err) and "1 runs not done" in err

    shutil.copyfile(folder / "runs" / "synthetic-small" / "random-seed1.tsv", tsv)
    assert export_main([str(unfinished), str(tmp_path / "out"), "--storage",
                        f"journal:{tmp_path / 'missing.journal'}"]) == 2
    assert "no such storage" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_report_is_rewritten_from_the_tables_alone(exported, tmp_path, capsys):
    """``python -m runs.report`` on the tables gives the live folder's report, but for the line naming where the
    trials are, with the storage gone."""
    folder, kept = exported
    copy = tmp_path / "kept"
    shutil.copytree(kept, copy)
    storage = tables.read_config(copy)["storage"]
    assert storage == "tables"
    (copy / "report.md").unlink()
    (copy / "summary.json").unlink()
    journal = json.loads((folder / "config.json").read_text())["storage"]
    moved = tmp_path / "journal-moved-away"
    shutil.move(journal.split(":", 1)[1], moved)  # no storage left to read
    try:
        assert report_main([str(copy)]) == 0
    finally:
        shutil.move(moved, journal.split(":", 1)[1])
    assert "browse every trial" not in capsys.readouterr().out
    new, old = (copy / "report.md").read_text().splitlines(), (folder / "report.md").read_text().splitlines()
    assert new[:-1] == old[:-1] and "24 real trials in `trials.parquet`" in new[-1]
    assert json.loads((copy / "summary.json").read_text()) == json.loads((folder / "summary.json").read_text())


def test_report_refuses_what_is_not_a_comparison(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    assert "no config.json" in capsys.readouterr().err
