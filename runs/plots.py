"""Comparison plots (matplotlib, PNG): best-so-far bands, runtime ECDF, holdout vs in-sample."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from runs.analysis import Runs, best_so_far, evals_to_reach  # noqa: E402


def _finite_floor(curves: np.ndarray) -> np.ndarray:
    """Draw ``-inf`` (nothing feasible found yet) at the lowest finite value on the plot."""
    finite = curves[np.isfinite(curves)]
    return np.where(np.isfinite(curves), curves, finite.min() if finite.size else 0.0)


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, title: str) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def best_so_far_plot(runs: Runs, budget: int, path: Path) -> Path:
    """Median best-so-far per searcher over seeds, with the interquartile band."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, budget + 1)
    for name, seeds in runs.items():
        curves = np.array([best_so_far(records, budget) for records in seeds.values()])
        if curves.size == 0:
            continue
        curves = _finite_floor(curves)
        median = np.median(curves, axis=0)
        ax.plot(x, median, label=f"{name} (n={len(curves)})")
        ax.fill_between(x, np.quantile(curves, 0.25, axis=0), np.quantile(curves, 0.75, axis=0), alpha=0.2)
    return _save(fig, ax, path, "real evaluations", "best ensemble_score so far", "Best-so-far (median and IQR over seeds)")


def runtime_ecdf_plot(runs: Runs, budget: int, targets: Mapping[str, float], path: Path) -> Path:
    """COCO-style ECDF: share of (seed, target) pairs reached within ``t`` evaluations."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(1, budget + 1)
    for name, seeds in runs.items():
        hits = [evals_to_reach(best_so_far(records, budget), target)
                for records in seeds.values() for target in targets.values()]
        if hits:
            ax.step(x, [np.mean(np.asarray(hits) <= t) for t in x], where="post", label=name)
    ax.set_ylim(0, 1)
    return _save(fig, ax, path, "real evaluations", "share of (seed, target) pairs reached",
                 "Runtime ECDF over targets: " + ", ".join(targets))


def holdout_plot(points: Mapping[str, list[tuple[float, float]]], path: Path) -> Path:
    """In-sample best vs sealed-holdout score of each run's winner (one marker per seed)."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for name, pairs in points.items():
        pairs = [(a, b) for a, b in pairs if math.isfinite(a) and math.isfinite(b)]
        if pairs:
            ax.scatter(*zip(*pairs), label=name, alpha=0.8)
    ax.axhline(0, color="grey", lw=0.5)
    return _save(fig, ax, path, "in-sample best score (search window)", "holdout score of that configuration",
                 "Does the in-sample lift survive the holdout?")
