"""The small commands of ``runs``: the regime-accuracy table, the analytic-task comparison and the speed benchmark,
run in-process on the smallest inputs (what each prints must hold together, not only exist)."""

from __future__ import annotations

import json
import re

from runs import bench, compare_on_task, regimes


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|") and not re.match(r"\|[-| ]+\|$", line)]


def test_regimes_scores_a_detector_against_the_true_path(capsys):
    assert regimes.main(["--universe", "synthetic-small", "--detector", "ma200"]) == 0
    header, row = _rows(capsys.readouterr().out)
    values = dict(zip(header, row))
    assert values["detector"] == "ma200" and int(values["days"]) > 2000
    for key in ("accuracy", "majority baseline", "recall bull", "recall bear", "recall ranging"):
        assert 0.0 <= float(values[key]) <= 1.0, key


def test_compare_on_task_normalises_random_search_to_one(capsys):
    compare_on_task.main(["--task-seeds", "0", "1", "--budgets", "5", "10", "--searchers", "random", "phased"])
    header, *rows = _rows(capsys.readouterr().out)
    assert header[:3] == ["searcher", "b=5 norm / raw", "b=10 norm / raw"]
    table = {row[0]: row for row in rows}
    assert set(table) == {"random", "phased"}
    assert [cell.split(" / ")[0] for cell in table["random"][1:3]] == ["1.00", "1.00"]  # random is the unit
    for cell in table["phased"][1:3]:
        norm, raw = map(float, cell.split(" / "))
        assert norm >= 0 and raw >= 0  # gaps to the task optimum are never negative


def test_bench_json_reports_positive_timings(capsys):
    assert bench.main(["--json", "--universe", "synthetic-small", "--repeats", "1", "--core-points", "2"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["universe"].startswith("synthetic-small")
    for key in ("ensemble_eval_s_cold", "ensemble_eval_s_warm", "ensemble_eval_s_core_mean", "reference_eval_ms"):
        assert measured[key] > 0, key
    assert measured["ensemble_eval_s_warm"] <= measured["ensemble_eval_s_cold"]
