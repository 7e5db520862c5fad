"""Comparison plots (matplotlib, PNG).

One problem instance (``runs.compare``): :func:`best_so_far_plot`. A suite of instances (inputs are the outputs of ``stats``):
:func:`cd_diagram_plot`, :func:`performance_profile_plot`, :func:`normalised_vs_budget_plot`,
:func:`suite_runtime_ecdf_plot`, :func:`holdout_instances_plot`.

Every ``*_plot(..., path)`` writes a PNG and returns ``path``; the matching ``*_figure(...)``
returns the open matplotlib figure (for tests and notebooks; close it yourself). Conventions:

* ``-inf`` (nothing feasible yet / rejected) is drawn as ``-inf``: in a grey band below the finite
  range, labelled, with a ``-inf`` tick -- never floored to some finite score.
* Titles are wrapped to the figure's width and figures use constrained layout, so nothing is clipped.
* Only searchers that ran appear; each searcher keeps one colour across all plots
  (:data:`SEARCHER_COLOURS`; every registered searcher has its own, perceptually distinct one).
* Axis labels name their units: raw ``ensemble_score``, the normalised score (0 = random search's
  expected best, 1 = the best ever seen on the instance), a score divided by an instance's in-sample
  range, mean ranks, or real evaluations.
"""

from __future__ import annotations

import math
import textwrap
import zlib
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from runs.analysis import Runs, best_so_far  # noqa: E402

NEG_INF_LABEL = "no feasible configuration yet (-inf)"
NEG_INF_BAND_GID = "neg-inf-band"
"""``gid`` of the band patch that stands for ``-inf`` (tests look for it)."""

CD_BAR_GID = "cd-bar"
"""``gid`` of the critical-difference bar of :func:`cd_diagram_figure` (its line and end ticks)."""
CD_NOTE_GID = "cd-note"
"""``gid`` of the note that stands in for the CD bar when none is drawn."""
CD_RANK_LABEL_GID = "cd-rank-label"
"""``gid`` of the rank axis' label in :func:`cd_diagram_figure`."""

SEARCHER_COLOURS: dict[str, str] = {
    "phased": "#1f77b4", "random": "#ff7f0e", "tpe": "#2ca02c", "gp": "#d62728", "ppo": "#9467bd",
    "optuna-gp": "#8c564b", "phased-bear": "#e377c2", "smac": "#7f7f7f", "cmaes": "#bcbd22", "sobol": "#17becf",
    "candidates-ucb": "#ff00ff", "edit-fresh-or-climb": "#a6761d", "ppo-edit": "#4b0082",
}
"""The fixed colour of every registered searcher (``policies.SEARCHERS``): tab10 and three more, chosen so
that every pair lies far apart in CIELAB (``tests/test_user_facing.py`` checks the smallest distance).
A searcher registered later gets its entry here."""

_OTHER_COLOURS = ("#556b2f", "#ff1493", "#b2df8a", "#f99379", "#1b9e77", "#004d40")
"""Colours for names without an entry, chosen far from the fixed ones (two such names may share one)."""


def colour(searcher: str) -> tuple[float, float, float]:
    """The searcher's colour: :data:`SEARCHER_COLOURS` for the registered searchers; any other name gets
    one of :data:`_OTHER_COLOURS` by a CRC-32 of the name (the same in every process)."""
    code = SEARCHER_COLOURS.get(searcher) or _OTHER_COLOURS[zlib.crc32(searcher.encode()) % len(_OTHER_COLOURS)]
    return matplotlib.colors.to_rgb(code)


def _figure(width: float = 7.0, height: float = 4.5) -> tuple[Figure, Any]:
    fig, ax = plt.subplots(figsize=(width, height), layout="constrained")
    return fig, ax


def wrap_title(title: str, fig: Figure, fontsize: float | None = None) -> str:
    """``title`` wrapped to lines that fit the figure's width (about 0.6 em per character)."""
    size = fontsize or matplotlib.rcParams["axes.titlesize"]
    if isinstance(size, str):
        size = matplotlib.font_manager.FontProperties(size=size).get_size_in_points()
    chars = max(20, int(fig.get_figwidth() * 72 / (0.6 * float(size))) - 2)
    return "\n".join(textwrap.fill(line, chars) for line in title.split("\n"))


def fit_title(fig: Figure, ax, title: str) -> None:
    """Set ``title`` on ``ax``, wrapped so that it lies inside the figure (measured after a draw)."""
    chars = None
    for _ in range(8):
        text = wrap_title(title, fig) if chars is None else "\n".join(
            textwrap.fill(line, chars, break_long_words=True) for line in title.split("\n"))
        ax.set_title(text)
        fig.canvas.draw()
        box, width = ax.title.get_window_extent(), fig.bbox.width
        if box.x0 >= 1 and box.x1 <= width - 1:
            return
        centre = (box.x0 + box.x1) / 2  # the title is centred on the axes, not on the figure
        room = 2 * min(centre, width - centre) - 4
        longest = max(len(line) for line in text.split("\n"))
        chars = max(8, min(longest - 1, int(longest * 0.95 * room / max(box.width, 1.0))))


def _decorate(fig: Figure, ax, xlabel: str, ylabel: str, title: str, legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    handles, _ = ax.get_legend_handles_labels()
    if legend and handles:
        ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    fit_title(fig, ax, title)


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def neg_inf_quantile(curves: np.ndarray, q: float) -> np.ndarray:
    """Quantile over axis 0 of ``curves`` ``(n, T)`` that keeps ``-inf`` as ``-inf``.

    Linear interpolation as numpy's default where both neighbours are finite; a quantile whose
    lower neighbour is ``-inf`` is ``-inf`` (e.g. the median of one feasible and one infeasible run).
    """
    ordered = np.sort(np.asarray(curves, dtype=float), axis=0)
    pos = q * (ordered.shape[0] - 1)
    lo, hi = int(math.floor(pos)), int(math.ceil(pos))
    w = pos - lo
    low, high = ordered[lo], ordered[hi]
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(low), low * (1 - w) + high * w, -np.inf)


class _NegInfAxis:
    """Maps values to plot coordinates, ``-inf`` to a labelled band below the finite range."""

    def __init__(self, values: Sequence[np.ndarray]):
        flat = np.concatenate([np.asarray(v, dtype=float).ravel() for v in values]) if values else np.empty(0)
        finite = flat[np.isfinite(flat)]
        self.any_neg_inf = bool(np.any(flat == -np.inf))
        self.any_finite = bool(finite.size)
        self.lo, self.hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        span = self.hi - self.lo
        self.span = span if span > 0 else max(1.0, abs(self.hi)) * 0.1
        self.y = self.lo - 0.18 * self.span  # where -inf is drawn

    def __call__(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return np.where(values == -np.inf, self.y, values)

    def finish(self, ax, axis: str = "y", label: str = NEG_INF_LABEL) -> None:
        """Set limits and ticks; draw the band and its label when any value is ``-inf``."""
        top = self.hi + 0.06 * self.span
        if not self.any_neg_inf:
            (ax.set_ylim if axis == "y" else ax.set_xlim)(self.lo - 0.06 * self.span, top)
            return
        bottom = self.lo - 0.3 * self.span
        ticks, labels = [], []
        if self.any_finite:
            for t in MaxNLocator(6).tick_values(self.lo, self.hi):
                if self.lo - 0.06 * self.span <= t <= top and f"{t:.4g}" not in labels:
                    ticks.append(float(t))
                    labels.append(f"{t:.4g}")
        labels.append("-inf")
        if axis == "y":
            ax.set_ylim(bottom, top)
            ax.axhspan(self.lo - 0.26 * self.span, self.lo - 0.10 * self.span, color="0.85", zorder=0,
                       gid=NEG_INF_BAND_GID)
            ax.set_yticks(ticks + [self.y], labels=labels)
            ax.text(0.01, self.lo - 0.12 * self.span, label, transform=ax.get_yaxis_transform(),
                    fontsize="small", color="0.3", va="top", ha="left", gid="neg-inf-label")
        else:
            ax.set_xlim(bottom, top)
            ax.axvspan(self.lo - 0.26 * self.span, self.lo - 0.10 * self.span, color="0.85", zorder=0,
                       gid=NEG_INF_BAND_GID)
            ax.set_xticks(ticks + [self.y], labels=labels)


# ---------------------------------------------------------------------------------------------
# one instance (runs.compare)
# ---------------------------------------------------------------------------------------------

def best_so_far_figure(runs: Runs, budget: int, title: str | None = None) -> Figure:
    """Median best-so-far per searcher over seeds with the interquartile band; ``-inf`` in its band."""
    fig, ax = _figure()
    x = np.arange(1, budget + 1)
    drawn: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, int]] = {}
    for name, seeds in runs.items():
        curves = np.array([best_so_far(records, budget) for records in seeds.values() if records])
        if curves.size == 0:  # only searchers that ran appear
            continue
        drawn[name] = (neg_inf_quantile(curves, 0.5), neg_inf_quantile(curves, 0.25),
                       neg_inf_quantile(curves, 0.75), len(curves))
    scale = _NegInfAxis([v for median, q25, q75, _ in drawn.values() for v in (median, q25, q75)])
    for name, (median, q25, q75, n) in drawn.items():
        ax.plot(x, scale(median), label=f"{name} (n={n})", color=colour(name), drawstyle="steps-post")
        ax.fill_between(x, scale(q25), scale(q75), alpha=0.2, color=colour(name), step="post")
    scale.finish(ax)
    _decorate(fig, ax, "real evaluations", "best ensemble_score so far (raw score)",
              title or "Best-so-far (median and IQR over seeds)")
    return fig


def best_so_far_plot(runs: Runs, budget: int, path: Path, title: str | None = None) -> Path:
    """PNG of :func:`best_so_far_figure`."""
    return _save(best_so_far_figure(runs, budget, title), path)


RAW_UNITS = "ensemble_score"
"""Units of :func:`holdout_figure`'s points when they are raw scores."""
RANGE_UNITS = ("score / the instance's in-sample range\n(best ever seen - random search's expected best "
               "at the full budget)")
"""Units of :func:`holdout_figure`'s points when each was divided by its instance's in-sample range."""


def holdout_figure(points: Mapping[str, Sequence[tuple[float, float]]], title: str | None = None,
                   units: str = RAW_UNITS) -> Figure:
    """In-sample best vs sealed-holdout score of each run's winner (one marker per run).

    A holdout of ``-inf`` (rejected on the holdout) is drawn in the ``-inf`` band; runs with a
    missing (NaN) holdout or nothing feasible in-sample cannot be placed and are counted in the legend.
    ``units``: what the numbers are, written into both axis labels (:data:`RAW_UNITS`, raw scores, by
    default; :data:`RANGE_UNITS` for scores divided by their instance's range).
    """
    fig, ax = _figure(6.0, 5.2)
    kept: dict[str, list[tuple[float, float]]] = {}
    dropped: dict[str, int] = {}
    for name, pairs in points.items():
        for a, b in pairs:
            a = math.nan if a is None else float(a)
            b = math.nan if b is None else float(b)
            if math.isfinite(a) and (math.isfinite(b) or b == -math.inf):
                kept.setdefault(name, []).append((a, b))
            else:
                dropped[name] = dropped.get(name, 0) + 1
    scale = _NegInfAxis([np.array([b for _, b in pairs]) for pairs in kept.values()])
    finite_x = [a for pairs in kept.values() for a, _ in pairs]
    for name in [n for n in points if n in kept or n in dropped]:
        pairs = kept.get(name, [])
        label = name + (f" ({dropped[name]} not placeable)" if dropped.get(name) else "")
        if pairs:
            xs, ys = np.array(pairs).T
            rejected = ys == -np.inf
            if (~rejected).any():
                ax.scatter(xs[~rejected], ys[~rejected], label=label, alpha=0.8, color=colour(name))
            if rejected.any():
                ax.scatter(xs[rejected], scale(ys[rejected]), marker="v", alpha=0.8, color=colour(name),
                           label=None if (~rejected).any() else label)
        else:
            ax.scatter([], [], label=label, color=colour(name))
    finite_y = [b for pairs in kept.values() for _, b in pairs if math.isfinite(b)]
    if finite_x and finite_y:  # the diagonal where both axes have finite points, so it moves no limit
        lo, hi = max(min(finite_x), min(finite_y)), min(max(finite_x), max(finite_y))
        if lo < hi:
            ax.plot([lo, hi], [lo, hi], color="grey", lw=0.7, ls="--", label="holdout = in-sample")
    ax.axhline(0, color="grey", lw=0.5)
    scale.finish(ax, label="rejected on the holdout (-inf)")
    if units == RAW_UNITS:
        xlabel, ylabel = "in-sample best ensemble_score (search window)", "holdout ensemble_score of that configuration"
    else:
        xlabel, ylabel = f"in-sample best {units}", f"holdout {units}"
    _decorate(fig, ax, xlabel, ylabel, title or "Does the in-sample lift survive the holdout?")
    return fig


# ---------------------------------------------------------------------------------------------
# a suite of instances (inputs from stats)
# ---------------------------------------------------------------------------------------------

def cd_bar_note(cd: float | None, k: int, n_instances: int | None = None) -> str | None:
    """Why :func:`cd_diagram_figure` draws no CD bar, or None when it draws one.

    No bar with fewer than 2 instances (a Nemenyi test over one instance says nothing), without a
    finite positive ``cd``, or when ``1 + cd`` lies beyond the rank axis ``1..k`` (no two mean ranks
    can differ by more than ``k - 1``, so no pair could be told apart: the bar would only run off the axis).
    """
    if n_instances is not None and n_instances < 2:
        return f"no critical difference: {n_instances} instance{'' if n_instances == 1 else 's'} (needs 2 or more)"
    if cd is None or not math.isfinite(cd) or cd <= 0:
        return "no critical difference computed"
    if 1 + cd > k:
        return f"no critical difference bar: CD {cd:.2f} exceeds the rank range {k - 1}"
    return None


def cd_diagram_figure(mean_ranks: Mapping[str, float], cd: float | None, groups: Sequence[Sequence[str]] = (),
                      title: str | None = None, n_instances: int | None = None) -> Figure:
    """Critical-difference diagram (Demsar 2006): mean ranks on an axis (1 = best, at the left),
    the Nemenyi CD as a bar, and thick bars joining searchers that do not differ significantly.

    mean_ranks: ``{searcher: mean rank}`` (NaN ranks are left out); cd: from
    ``stats.nemenyi_cd``; groups: from ``stats.cd_groups``; n_instances: the number of instances the
    ranks are over (named in the rank axis' label). The CD bar (``gid`` :data:`CD_BAR_GID`) is drawn only
    where it means something and fits the axis; otherwise a note (``gid`` :data:`CD_NOTE_GID`) says why
    (:func:`cd_bar_note`: fewer than 2 instances, no finite positive ``cd``, or ``1 + cd`` beyond the axis).
    """
    ranks = {k: float(v) for k, v in mean_ranks.items() if v is not None and math.isfinite(v)}
    order = sorted(ranks, key=lambda s: (ranks[s], s))
    k = max(len(order), 2)
    label_in = 0.1 + 0.085 * max((len(s) for s in order), default=4)
    width = max(7.0, 2 * label_in + 3.5)
    axes_in = width - 0.6
    pad = label_in * (k - 1) / (axes_in - 2 * label_in) + 0.15
    half = math.ceil(len(order) / 2)
    rows = max(half, len(order) - half, 1)
    bar_gap, row_gap = 0.12, 0.28
    name_top = -0.25 - bar_gap * len(groups)
    bottom = name_top - row_gap * rows - 0.1
    fig, ax = _figure(width, 1.6 + 0.45 * (rows + 0.4 * len(groups)))
    ax.hlines(0, 1, k, color="black", lw=1)
    for r in range(1, k + 1):
        ax.vlines(r, 0, 0.06, color="black", lw=1)
        ax.text(r, 0.09, str(r), ha="center", va="bottom", fontsize="small")
    for i, s in enumerate(order):
        left = i < half
        y = name_top - row_gap * (i if left else len(order) - 1 - i)
        end = 1 - pad + 0.1 if left else k + pad - 0.1
        ax.plot([ranks[s], ranks[s], end], [0, y, y], color=colour(s), lw=1)
        ax.text(end - 0.03 if left else end + 0.03, y, f"{s} ({ranks[s]:.2f})", ha="right" if left else "left",
                va="center", fontsize="small")
    for j, group in enumerate(groups):
        members = [ranks[s] for s in group if s in ranks]
        if members:
            y = -0.15 - bar_gap * j
            ax.hlines(y, min(members) - 0.03, max(members) + 0.03, color="black", lw=3)
    note = cd_bar_note(cd, k, n_instances)
    if note is None:
        ax.hlines(0.35, 1, 1 + cd, color="black", lw=1.5, gid=CD_BAR_GID)
        ax.vlines([1, 1 + cd], 0.31, 0.39, color="black", lw=1.5, gid=CD_BAR_GID)
        ax.text(1 + cd / 2, 0.42, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize="small")
    else:
        ax.text((1 + k) / 2, 0.35, note, ha="center", va="center", fontsize="small", color="0.3", gid=CD_NOTE_GID)
    over = "instances" if n_instances is None else f"{n_instances} instance{'' if n_instances == 1 else 's'}"
    ax.text((1 + k) / 2, 0.62, f"mean rank over {over} (1 = best)", ha="center", va="bottom", fontsize="small",
            gid=CD_RANK_LABEL_GID)
    ax.set_xlim(1 - pad, k + pad)
    ax.set_ylim(bottom, 0.85)
    ax.axis("off")
    fit_title(fig, ax, title or "Critical-difference diagram (mean rank over instances, 1 = best; "
                               "bars join searchers the Nemenyi test cannot separate)")
    return fig


def cd_diagram_plot(mean_ranks: Mapping[str, float], cd: float | None, path: Path,
                    groups: Sequence[Sequence[str]] = (), title: str | None = None,
                    n_instances: int | None = None) -> Path:
    """PNG of :func:`cd_diagram_figure`."""
    return _save(cd_diagram_figure(mean_ranks, cd, groups, title, n_instances), path)


def _reference_lines(ax, axis: str = "x") -> None:
    line = ax.axvline if axis == "x" else ax.axhline
    line(0, color="0.4", lw=0.8, ls=":")
    line(1, color="0.4", lw=0.8, ls=":")


def performance_profile_figure(profiles: Mapping[str, Mapping[str, np.ndarray]], title: str | None = None) -> Figure:
    """Performance profiles with bootstrap bands: ``{searcher: stats.performance_profile(...)}``."""
    fig, ax = _figure()
    for name, prof in profiles.items():
        tau, y = np.asarray(prof["tau"]), np.asarray(prof["profile"])
        if not np.any(np.isfinite(y)):
            continue
        ax.plot(tau, y, label=name, color=colour(name))
        ax.fill_between(tau, prof["lo"], prof["hi"], color=colour(name), alpha=0.2)
    _reference_lines(ax)
    ax.set_ylim(-0.02, 1.02)
    _decorate(fig, ax, "normalised score tau at the full budget\n(0 = random search's expected best, "
                       "1 = best ever seen on the instance)",
              "share of runs with normalised score > tau\n(each instance weighs the same)",
              title or "Performance profiles over instances (95% bootstrap bands)")
    return fig


def performance_profile_plot(profiles: Mapping[str, Mapping[str, np.ndarray]], path: Path,
                             title: str | None = None) -> Path:
    """PNG of :func:`performance_profile_figure`."""
    return _save(performance_profile_figure(profiles, title), path)


def normalised_vs_budget_figure(curves: Mapping[str, Mapping[str, Any]], statistic: str = "iqm",
                                title: str | None = None) -> Figure:
    """Normalised score vs budget: ``{searcher: stats.normalised_vs_budget(...)[searcher]}``;
    the line is the ``statistic`` (``"iqm"`` or ``"mean"``) over instances, the band its bootstrap CI."""
    fig, ax = _figure()
    for name, c in curves.items():
        x = np.asarray(c["budget"])
        ax.plot(x, c[statistic], marker="o", ms=3, label=f"{name} (N={c.get('n_instances', '?')})", color=colour(name))
        ax.fill_between(x, c[f"{statistic}_lo"], c[f"{statistic}_hi"], color=colour(name), alpha=0.2)
    _reference_lines(ax, "y")
    _decorate(fig, ax, "real evaluations (budget)",
              "normalised score at that budget\n(0 = random search's expected best at the same budget,\n"
              "1 = best ever seen on the instance)",
              title or f"Normalised score vs budget ({statistic.upper()} over instances, 95% bootstrap band)")
    return fig


def normalised_vs_budget_plot(curves: Mapping[str, Mapping[str, Any]], path: Path, statistic: str = "iqm",
                              title: str | None = None) -> Path:
    """PNG of :func:`normalised_vs_budget_figure`."""
    return _save(normalised_vs_budget_figure(curves, statistic, title), path)


def suite_runtime_ecdf_figure(ecdf: Mapping[str, Any], title: str | None = None) -> Figure:
    """Runtime ECDF over (instance, seed, target) triples: the output of ``stats.runtime_ecdf``."""
    fig, ax = _figure()
    t = np.asarray(ecdf["t"])
    for name, v in ecdf["searchers"].items():
        ax.step(t, v["ecdf"], where="post", label=f"{name} (N={v['n_instances']})", color=colour(name))
    ax.set_ylim(-0.02, 1.02)
    levels = ", ".join(f"{q:g}" for q in ecdf.get("levels", []))
    _decorate(fig, ax, "real evaluations", "share of (instance, seed, target) triples reached\n"
                                           "(each instance weighs the same)",
              title or f"Runtime ECDF over instances; targets at normalised levels {levels} "
                       "of the full budget (0 = random search's expected best, 1 = best ever seen)")
    return fig


def suite_runtime_ecdf_plot(ecdf: Mapping[str, Any], path: Path, title: str | None = None) -> Path:
    """PNG of :func:`suite_runtime_ecdf_figure`."""
    return _save(suite_runtime_ecdf_figure(ecdf, title), path)


def holdout_instances_figure(results: Sequence[Any], title: str | None = None) -> Figure:
    """In-sample vs holdout of every (instance, seed) winner over a suite (``stats.HoldoutResults``);
    ``-inf`` holdouts in the band.

    When any instance has a ``scale`` (``stats.in_sample_scales``: best ever seen - random search's
    expected best at the full budget), every score is divided by its instance's scale and the axes say
    so (:data:`RANGE_UNITS`); instances without a scale then cannot share the axes and their runs are
    counted as not placeable. Without any scale the points are raw ``ensemble_score``.
    """
    scaled = any(getattr(r, "scale", None) is not None for r in results)
    points: dict[str, list[tuple[float, float]]] = {}
    for res in sorted(results, key=lambda r: r.instance):
        scale = getattr(res, "scale", None)
        for name, seeds in res.winners.items():
            for _, (a, b) in sorted(seeds.items()):
                a = math.nan if a is None else float(a)
                b = math.nan if b is None else float(b)
                if scaled and scale is None:
                    a = b = math.nan  # raw units among range units: not placeable
                elif scaled:
                    a, b = (v / float(scale) if math.isfinite(v) else v for v in (a, b))
                points.setdefault(name, []).append((a, b))
    n = len({r.instance for r in results})
    return holdout_figure(points, title or f"In-sample vs holdout score of each run's winner ({n} instances)",
                          units=RANGE_UNITS if scaled else RAW_UNITS)


def holdout_instances_plot(results: Sequence[Any], path: Path, title: str | None = None) -> Path:
    """PNG of :func:`holdout_instances_figure`."""
    return _save(holdout_instances_figure(results, title), path)
