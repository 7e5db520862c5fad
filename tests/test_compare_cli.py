"""runs.compare's command line and the report's pairwise table: what a new user meets first."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import numpy as np

import stats
from runs.compare import OneDefaultHelpFormatter, build_parser, main
from runs.report import aggregate_section


def test_resume_of_an_unknown_name_exits_non_zero_naming_the_experiments_that_exist(tmp_path, capsys):
    (tmp_path / "known-one").mkdir()
    (tmp_path / "known-one" / "config.json").write_text("{}")
    assert main(["--resume", "--name", "no-such-name", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no-such-name" in err and "known-one" in err
    assert not (tmp_path / "no-such-name").exists()  # nothing started


def test_resume_of_an_unknown_name_fails_within_seconds_from_the_command_line(tmp_path):
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "runs.compare", "--resume", "--name", "no-such-name", "--out",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "no experiment named 'no-such-name'" in done.stderr
    assert time.monotonic() - began < 60
    assert not any(tmp_path.iterdir())


def test_resume_without_a_name_of_a_set_up_never_run_is_refused(tmp_path, capsys):
    assert main(["--resume", "--universe", "synthetic-small", "--out", str(tmp_path), "--budget", "3"]) == 2
    assert "no experiment named" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_help_gives_one_default_per_option():
    parser = build_parser()
    formatter = OneDefaultHelpFormatter(parser.prog)
    for action in parser._actions:
        shown = (formatter._get_help_string(action) or "").replace("%(default)s", str(action.default))
        assert len(re.findall(r"\(default", shown)) <= 1, (action.dest, shown)
        assert "(default: None)" not in shown
    assert "(default: None)" not in parser.format_help()


def _instance(name: str, rng: np.random.Generator, lift: dict[str, float]) -> stats.InstanceResults:
    curves = {s: {seed: np.full(10, 1.0 + delta + 0.01 * rng.standard_normal()) for seed in range(3)}
              for s, delta in lift.items()}
    return stats.InstanceResults(name, curves, rng.uniform(0.0, 1.0, 200), optimum=3.0, floor=0.0)


def test_pairwise_rows_against_the_baseline_always_read_searcher_minus_baseline():
    """'cmaes' sorts before 'phased' and 'tpe' after it: both rows must put the searcher first, with the sign of
    searcher - baseline (cmaes better than the sweep, tpe worse)."""
    rng = np.random.default_rng(0)
    results = [_instance(f"i{k}", rng, {"cmaes": 0.8, "phased": 0.4, "tpe": 0.0}) for k in range(6)]
    summary = stats.aggregate_table(results, [10], main_budget=10, baseline="phased", reps=200)
    rows = [line for line in aggregate_section(summary, "phased") if re.match(r"\| \S+ vs \S+ \|", line) and not line.startswith("| A vs B")]
    assert [row.split(" |")[0] for row in rows] == ["| cmaes vs phased", "| tpe vs phased"]
    iqm = {row.split(" vs ")[0][2:]: float(row.split(" | ")[2].split()[0]) for row in rows}
    assert iqm["cmaes"] > 0 > iqm["tpe"]
    assert rows[0].endswith("| cmaes beats phased |") and rows[1].endswith("| phased beats tpe |")


def test_oriented_swaps_sides_negates_differences_and_complements_the_probability():
    row = stats.Pairwise("phased", "tpe", 6, 0.3, [0.1, 0.5], 0.2, [0.0, 0.4], 0.7, [0.6, 0.9], 0.01,
                         "phased beats tpe", 0.02, 0.02)
    flipped = row.oriented("tpe")
    assert (flipped.a, flipped.b) == ("tpe", "phased")
    assert flipped.diff_iqm == -0.3 and flipped.diff_iqm_ci == [-0.5, -0.1]
    assert flipped.diff_mean == -0.2 and flipped.diff_mean_ci == [-0.4, -0.0]
    assert abs(flipped.p_improvement - 0.3) < 1e-12 and np.allclose(flipped.p_improvement_ci, [0.1, 0.4])
    assert (flipped.verdict, flipped.wilcoxon_p, flipped.wilcoxon_holm_p) == (row.verdict, 0.01, 0.02)
    assert row.oriented("phased") is row
