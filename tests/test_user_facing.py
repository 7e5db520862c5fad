"""Rough edges a new user hit: plot units and colours, the CD bar, the rejection reason of ``runs.evaluate``,
strict JSON of the calibration reports, and the data layer importing nothing above it."""

from __future__ import annotations

import ast
import itertools
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from runs import plots

REPO = Path(__file__).resolve().parents[1]


def _strict_loads(text: str) -> Any:
    """``json.loads`` that refuses NaN, Infinity and -Infinity (strict JSON)."""
    def refuse(name: str) -> Any:
        raise ValueError(f"not strict JSON: {name}")

    return json.loads(text, parse_constant=refuse)


def _close(fig) -> None:
    plots.plt.close(fig)


# --------------------------------------------------------------------------- 1. axis labels say their units
@dataclass
class _Holdout:
    """Duck type of ``stats.HoldoutResults`` (what ``holdout_instances_figure`` reads)."""

    instance: str
    default_holdout: float
    winners: dict
    scale: float | None = None
    holdout_pool: Any = None
    search_pool: Any = None
    extra: dict = field(default_factory=dict)


def _labels(fig) -> tuple[str, str]:
    ax = fig.axes[0]
    return ax.get_xlabel(), ax.get_ylabel()


def test_holdout_instances_figure_labels_range_scaled_units():
    """compare.py hands in results with a ``scale``: the points are score / range, and the labels say so."""
    results = [_Holdout("a", 0.0, {"gp": {0: (2.0, 1.0), 1: (3.0, -math.inf)}}, scale=4.0),
               _Holdout("b", 0.0, {"gp": {0: (1.0, 0.5)}}, scale=2.0)]
    fig = plots.holdout_instances_figure(results)
    try:
        x, y = _labels(fig)
        for label in (x, y):
            assert "range" in label and "random search's expected best" in label.replace("\n", " ")
        assert "in-sample" in x and "holdout" in y
        xs = np.concatenate([c.get_offsets()[:, 0] for c in fig.axes[0].collections if len(c.get_offsets())])
        assert sorted(xs) == pytest.approx([0.5, 0.5, 0.75])  # the drawn points are in range units
    finally:
        _close(fig)


def test_holdout_figures_without_scale_say_raw_score_units():
    for fig in (plots.holdout_figure({"gp": [(0.4, 0.2)]}),
                plots.holdout_instances_figure([_Holdout("a", 0.0, {"gp": {0: (0.4, 0.2)}})])):
        try:
            x, y = _labels(fig)
            assert "ensemble_score" in x and "ensemble_score" in y and "range" not in x + y
        finally:
            _close(fig)


def test_holdout_instances_figure_leaves_unscaled_instances_out_when_others_have_a_scale():
    """Raw and range-scaled points cannot share an axis: the unscaled instance's points are counted, not drawn."""
    results = [_Holdout("a", 0.0, {"gp": {0: (2.0, 1.0)}}, scale=4.0),
               _Holdout("b", 0.0, {"gp": {0: (100.0, 50.0)}}, scale=None)]
    fig = plots.holdout_instances_figure(results)
    try:
        xs = np.concatenate([c.get_offsets()[:, 0] for c in fig.axes[0].collections if len(c.get_offsets())])
        assert list(xs) == [0.5]
        legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert any("1 not placeable" in t for t in legend)
    finally:
        _close(fig)


def test_every_suite_figure_names_its_units():
    tau = np.linspace(-1, 1, 5)
    figures = {
        "profile": plots.performance_profile_figure({"gp": {"tau": tau, "profile": np.linspace(1, 0, 5),
                                                            "lo": np.linspace(1, 0, 5), "hi": np.linspace(1, 0, 5)}}),
        "budget": plots.normalised_vs_budget_figure({"gp": {"budget": np.array([5, 10]), "iqm": np.array([0.1, 0.2]),
                                                            "iqm_lo": np.array([0.0, 0.1]),
                                                            "iqm_hi": np.array([0.2, 0.3]), "n_instances": 3}}),
        "ecdf": plots.suite_runtime_ecdf_figure({"t": np.arange(1, 4), "levels": [0.5, 1.0],
                                                 "searchers": {"gp": {"ecdf": np.array([0.1, 0.5, 0.6]),
                                                                      "n_instances": 3}}}),
        "best": plots.best_so_far_figure({}, 3),
    }
    try:
        x, y = _labels(figures["profile"])
        assert "normalised score" in x and "full budget" in x and "normalised score" in y
        x, y = _labels(figures["budget"])
        assert "evaluations" in x and "normalised score" in y and "same budget" in y.replace("\n", " ")
        x, y = _labels(figures["ecdf"])
        assert "evaluations" in x and "share" in y
        x, y = _labels(figures["best"])
        assert "evaluations" in x and "ensemble_score" in y and "raw" in y
    finally:
        for fig in figures.values():
            _close(fig)


def test_cd_diagram_labels_its_rank_axis():
    fig = plots.cd_diagram_figure({"a": 1.2, "b": 1.8}, 0.5, n_instances=12)
    try:
        labels = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == plots.CD_RANK_LABEL_GID]
        assert len(labels) == 1 and "mean rank" in labels[0] and "12 instances" in labels[0] and "1 = best" in labels[0]
    finally:
        _close(fig)


# --------------------------------------------------------------------------- 2. one distinct colour per searcher
def _lab(rgb) -> np.ndarray:
    """CIELAB (D65) of an sRGB triple in [0, 1]."""
    c = np.asarray(rgb, dtype=float)
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                    [0.0193339, 0.1191920, 0.9503041]]) @ linear / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


MIN_DELTA_E = 25.0
"""Smallest CIE76 colour difference allowed between two searchers (about 10 just-noticeable differences)."""


def test_every_registered_searcher_has_its_own_distinct_colour():
    import policies

    names = sorted(policies.SEARCHERS)
    assert set(names) <= set(plots.SEARCHER_COLOURS), "a registered searcher has no fixed colour in runs.plots"
    colours = {name: plots.colour(name) for name in names}
    assert colours["cmaes"] != colours["ppo"] and colours["smac"] != colours["cmaes"]
    worst = min((float(np.linalg.norm(_lab(colours[a]) - _lab(colours[b]))), a, b)
                for a, b in itertools.combinations(names, 2))
    assert worst[0] >= MIN_DELTA_E, f"{worst[1]} and {worst[2]} look alike (Delta E {worst[0]:.1f})"


def test_unknown_searchers_get_a_deterministic_colour():
    first = plots.colour("my-new-searcher")
    assert plots.colour("my-new-searcher") == first and len(first) == 3 and all(0 <= v <= 1 for v in first)
    code = "from runs import plots; print(plots.colour('my-new-searcher'))"
    other = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(first)  # the same in another process (no salted hash)


# --------------------------------------------------------------------------- 3. the CD bar fits the rank axis
def _cd_bars(fig) -> list:
    return [a for a in fig.axes[0].get_children() if a.get_gid() == plots.CD_BAR_GID]


def _cd_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts if t.get_text().startswith("CD =")]


def test_cd_diagram_has_no_cd_bar_with_one_instance():
    from stats import nemenyi_cd

    ranks = {"random": 1.0, "gp": 2.0, "tpe": 3.0, "ppo": 4.0}
    cd = nemenyi_cd(len(ranks), 1)
    assert 1 + cd > len(ranks)  # longer than the rank axis: what a user saw
    for fig in (plots.cd_diagram_figure(ranks, cd), plots.cd_diagram_figure(ranks, cd, n_instances=1)):
        try:
            assert not _cd_bars(fig) and not _cd_texts(fig)
            notes = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == plots.CD_NOTE_GID]
            assert len(notes) == 1 and "no critical difference" in notes[0]
        finally:
            _close(fig)
    for cd_value in (None, math.inf, math.nan):
        fig = plots.cd_diagram_figure(ranks, cd_value, n_instances=8)
        try:
            assert not _cd_bars(fig) and not _cd_texts(fig)
        finally:
            _close(fig)


def test_cd_diagram_draws_the_cd_bar_inside_the_rank_axis_with_several_instances():
    from stats import nemenyi_cd

    ranks = {"random": 1.4, "gp": 2.1, "tpe": 2.5}
    cd = nemenyi_cd(len(ranks), 30)
    fig = plots.cd_diagram_figure(ranks, cd, n_instances=30)
    try:
        bars = _cd_bars(fig)
        assert bars and _cd_texts(fig) == [f"CD = {cd:.2f}"]
        xs = np.concatenate([np.asarray(seg)[:, 0] for bar in bars for seg in bar.get_segments()])
        assert xs.min() >= 1 and xs.max() <= len(ranks) and xs.max() == pytest.approx(1 + cd)
    finally:
        _close(fig)


# --------------------------------------------------------------------------- 4. runs.evaluate names the gate
def _evaluate(capsys, *argv: str) -> dict:
    from runs.evaluate import main

    assert main(list(argv)) == 0
    return _strict_loads(capsys.readouterr().out)


def test_evaluate_names_both_gates_of_a_rejection(capsys):
    """A crash window of ``synthetic-small`` for one token: below -50% a year and a negative stress Calmar."""
    from harness.contract import REJECT_ANNUALIZED_BELOW

    out = _evaluate(capsys, "--data", "synthetic-small", "--strategy", "bear", "--params", '{"top_n": 1}',
                    "--start", "2025-09-01", "--end", "2025-10-16")
    assert out["score"] == "-inf"
    assert out["base"]["annualized_return_pct"] / 100 < REJECT_ANNUALIZED_BELOW and out["stress"]["calmar_ratio"] < 0
    assert out["reason"] == "annualised return below -50%; stress Calmar below 0"


def test_evaluate_names_the_calmar_gate_of_the_golden_default(capsys, shared_data):
    """The trader-research golden file's default configuration is rejected by the stress Calmar alone."""
    out = _evaluate(capsys, "--data", str(shared_data / "bear_portfolio_candles.csv"), "--end", "2022-09-26",
                    "--strategy", "bear")
    assert out["score"] == "-inf" and out["reason"] == "stress Calmar below 0"


def test_evaluate_finite_score_has_a_null_reason(capsys):
    out = _evaluate(capsys, "--data", "bear-basket", "--strategy", "bear")
    assert math.isfinite(out["score"]) and "reason" in out and out["reason"] is None


def test_rejection_reason_reads_each_gate_of_the_harness():
    from harness.metrics import ensemble_score
    from instances.pool import rejection_gates, rejection_reason

    good_base = {"annualized_return_pct": 10.0, "max_drawdown_pct": -20.0, "hhi": 0.5}
    cases = {
        ("annualised return below -50%",): ({**good_base, "annualized_return_pct": -60.0}, {"calmar_ratio": 0.1}),
        ("stress Calmar below 0",): (good_base, {"calmar_ratio": -0.01}),
        ("annualised return below -50%", "stress Calmar below 0"): ({**good_base, "annualized_return_pct": -60.0},
                                                                    {"calmar_ratio": -1.0}),
        (): (good_base, {"calmar_ratio": 0.0}),
    }
    for gates, (base, stress) in cases.items():
        assert (ensemble_score(base, stress) == -math.inf) == bool(gates)
        assert rejection_gates(base, stress) == list(gates)
        assert rejection_reason(base, stress) == (gates[0] if gates else "")  # the first: what pools store
    assert rejection_gates({}, {}) == []  # no metrics, no gate to read


# --------------------------------------------------------------------------- 5. strict JSON, one table printer
def test_strict_json_writes_non_finite_numbers_as_null_with_a_reason():
    from data.calibration import strict_json

    doc = strict_json({"a": -math.inf, "b": [1.0, math.nan], "c": {"d": np.float64(math.inf), "e": np.int64(2)}})
    json.dumps(doc, allow_nan=False)
    assert doc["a"] is None and "-inf" in doc["a_reason"]
    assert doc["b"] == [1.0, None] and doc["b_reasons"][0] is None and "NaN" in doc["b_reasons"][1]
    assert doc["c"]["d"] is None and "inf" in doc["c"]["d_reason"] and doc["c"]["e"] == 2
    assert strict_json({"x": -math.inf}, {"-inf": "rejected"}) == {"x": None, "x_reason": "rejected"}


def test_data_synthetic_report_json_is_strict_and_data_level_only(capsys, tmp_path):
    from data.calibration import main

    assert main(["--report", "--json", "--universe", "synthetic-small", "--real-dir", str(tmp_path / "absent")]) == 0
    doc = _strict_loads(capsys.readouterr().out)
    assert "BTC annualised vol" in doc["rows"] and doc["header"] == ["statistic", "synthetic"]
    assert "feeds_on" not in doc
    assert not [label for label in doc["rows"] if "momentum rank IC" in label or "score" in label]


def test_the_documented_data_synthetic_command_prints_strict_json():
    """``python -m data.synthetic --report --json`` (the module delegates to data.calibration), with the real data
    beside it when ``../shared/data`` is there."""
    command = [sys.executable, "-m", "data.synthetic", "--report", "--json", "--universe", "synthetic-small"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert "BTC annualised vol" in _strict_loads(done.stdout)["rows"]


def test_data_synthetic_help_documents_the_json_convention(capsys):
    from data.calibration import main

    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "null" in text and "_reason" in text


@pytest.mark.slow
def test_instances_calibration_report_json_is_strict_with_the_feeds_on_rows(tmp_path):
    command = [sys.executable, "-m", "instances.calibration", "--report", "--json", "--universe", "synthetic-small",
               "--real-dir", str(tmp_path / "absent")]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    doc = _strict_loads(done.stdout)
    assert "BTC annualised vol" in doc["rows"]
    assert any("momentum rank IC" in label for label in doc["rows"])
    assert any("defaults' score" in label for label in doc["rows"])
    assert set(doc["feeds_on"]) >= {"momentum_rank_ic", "trend_share", "median_r2", "defaults_score"}

    def walk(node: Any) -> None:  # every null number that stood for a non-finite one carries its reason
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_reason"):
                    assert node[key[: -len("_reason")]] is None and isinstance(value, str) and value
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)


def test_instances_calibration_markdown_report_uses_the_data_layer_printer(capsys, tmp_path):
    """One implementation: the calibration command's table is the data command's table plus the feeds-on rows."""
    from data import calibration as data_calibration
    from instances import calibration

    assert data_calibration.main(["--report", "--universe", "synthetic-small", "--real-dir", str(tmp_path / "absent")]) == 0
    data_table = capsys.readouterr().out
    assert data_table.startswith("Calibration of `synthetic-small`") and "| BTC annualised vol |" in data_table
    assert "momentum rank IC" not in data_table
    assert calibration.print_report is data_calibration.print_report and calibration.report_rows is data_calibration.report_rows
    assert not hasattr(calibration, "_table") and not hasattr(calibration, "report_document")


# --------------------------------------------------------------------------- 6. data imports nothing above it
def test_the_data_layer_imports_no_higher_package():
    """Every ``import`` in ``data/`` (lazy ones inside functions too) stays in data or outside the project."""
    ours = {p.name for p in REPO.iterdir() if (p / "__init__.py").is_file()} - {"data", "tests"}
    assert {"harness", "instances", "strategy", "runs"} <= ours
    found = []
    for path in sorted((REPO / "data").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            found += [f"{path.name}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in ours]
    assert not found, found
