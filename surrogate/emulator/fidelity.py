"""Fidelity beyond the held-out rows: does a comparison on the emulator rank the searchers as the real one does?

``runs.emulator`` repeats a real comparison folder (same suite instances, searchers, seeds, budget) with
``runs.compare --objective emulated`` (its emulated twin); :func:`ranking_fidelity` compares the two: per instance and budget
(25/50/100 where the budget reaches), each searcher's seed-mean normalised score (``stats``; the real
folder normalised by its real random pool and optimum, the twin by the emulator's own) and Kendall's tau
between the two rankings of the searchers; per searcher the difference emulated - real. Over the suite: the
same on the instance means. For scale, ``real_split_half_tau``: the tau between the real rankings on two
disjoint halves of the seeds (the real ranking's own reproducibility; few seeds make it low).

:func:`compare_families` is the measurement behind the model choice: each candidate family fitted on the
same 80% of an instance's rows and scored on the same 20%.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
import zlib
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from instances import Instance
import stats
from strategy.space import SearchSpace
from surrogate.emulator.dataset import EmulatorError, encode_rows
from surrogate.emulator.model import Models, calibrated_threshold, fidelity, holdout_split

BUDGETS = (25, 50, 100)


def _tau(a: Sequence[float], b: Sequence[float]) -> float | None:
    if len(a) < 2:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tau = kendalltau(a, b).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def _halves(normalised: stats.NormalisedInstance, searchers: Sequence[str], budget: int) -> list[list[float]] | None:
    """Each searcher's mean normalised score on two disjoint halves of the seeds (even and odd positions)."""
    halves = []
    for part in (slice(0, None, 2), slice(1, None, 2)):
        values = [normalised.at(s, budget)[part] for s in searchers]
        if any(v.size == 0 for v in values):
            return None
        halves.append([float(v.mean()) for v in values])
    return halves


def ranking_fidelity(real_config: Mapping[str, Any], real: Mapping[str, stats.NormalisedInstance],
                     twin_config: Mapping[str, Any], twin: Mapping[str, stats.NormalisedInstance],
                     budgets: Sequence[int] = BUDGETS, labels: tuple[str, str] = ("real", "emulated")) -> dict[str, Any]:
    """Compare a real comparison with its emulated twin (both as ``{instance: NormalisedInstance}`` normalised at
    the ``budgets`` each one's budget reaches, with their ``config.json`` set-ups; ``labels`` name them in the
    output): ``{"budgets", "instances": {id: {"ranking_kendall_tau", "real_split_half_tau", "by_budget": {b: {"tau",
    "real_split_half_tau", "real", "emulated", "difference"}}}}, "real", "twin", "suite": {"by_budget": {...},
    "ranking_kendall_tau"}}`` (module docstring). ``runs.emulator`` loads the two folders."""
    if twin_config.get("objective") != "emulated" or real_config.get("objective", "real") != "real":
        raise EmulatorError(f"{labels[1]} must be emulated and {labels[0]} real")
    used = [b for b in budgets if b <= min(real_config["budget"], twin_config["budget"])]
    out: dict[str, Any] = {"budgets": used, "instances": {}, "real": labels[0], "twin": labels[1]}
    means: dict[int, dict[str, dict[str, list[float]]]] = {
        b: {"real": {}, "emulated": {}, "half0": {}, "half1": {}} for b in used}
    for instance in sorted(set(real) & set(twin)):
        r, e = real[instance], twin[instance]
        if r.excluded or e.excluded:
            out["instances"][instance] = {"ranking_kendall_tau": None, "excluded": r.excluded or e.excluded}
            continue
        searchers = sorted(set(r.scores) & set(e.scores))
        entry: dict[str, Any] = {"searchers": searchers, "by_budget": {}}
        for b in used:
            rv = {s: float(r.at(s, b).mean()) for s in searchers}
            ev = {s: float(e.at(s, b).mean()) for s in searchers}
            entry["by_budget"][str(b)] = {"tau": _tau([rv[s] for s in searchers], [ev[s] for s in searchers]),
                                          "real_split_half_tau": _tau(*halves) if (halves := _halves(r, searchers, b))
                                          else None,
                                          "real": rv, "emulated": ev, "difference": {s: ev[s] - rv[s] for s in searchers}}
            for k, s in enumerate(searchers):
                means[b]["real"].setdefault(s, []).append(rv[s])
                means[b]["emulated"].setdefault(s, []).append(ev[s])
                for h in range(2 if halves else 0):
                    means[b][f"half{h}"].setdefault(s, []).append(halves[h][k])
        taus = [v["tau"] for v in entry["by_budget"].values() if v["tau"] is not None]
        entry["ranking_kendall_tau"] = float(np.mean(taus)) if taus else None
        halves = [v["real_split_half_tau"] for v in entry["by_budget"].values() if v["real_split_half_tau"] is not None]
        entry["real_split_half_tau"] = float(np.mean(halves)) if halves else None
        out["instances"][instance] = entry
    suite: dict[str, Any] = {"by_budget": {}}
    for b in used:
        names = sorted(set(means[b]["real"]) & set(means[b]["emulated"]))
        rv = {s: float(np.mean(means[b]["real"][s])) for s in names}
        ev = {s: float(np.mean(means[b]["emulated"][s])) for s in names}
        split = [[float(np.mean(means[b][h][s])) for s in names] for h in ("half0", "half1")] \
            if all(s in means[b]["half0"] for s in names) else None
        suite["by_budget"][str(b)] = {"tau": _tau([rv[s] for s in names], [ev[s] for s in names]),
                                      "real_split_half_tau": _tau(*split) if split else None, "real": rv,
                                      "emulated": ev, "difference": {s: ev[s] - rv[s] for s in names}}
    taus = [v["tau"] for v in suite["by_budget"].values() if v["tau"] is not None]
    suite["ranking_kendall_tau"] = float(np.mean(taus)) if taus else None
    out["suite"] = suite
    return out


# --------------------------------------------------------------------------- model families
def _lightgbm(x: np.ndarray, y: np.ndarray, axes: Sequence[str]) -> Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return Models.fit(x, y, axes).predict


def _forest(kind: str) -> Callable[[np.ndarray, np.ndarray], Callable]:
    def fit(x: np.ndarray, y: np.ndarray, axes: Sequence[str]) -> Callable:
        from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor, RandomForestClassifier,
                                      RandomForestRegressor)

        regressor, classifier = ((RandomForestRegressor, RandomForestClassifier) if kind == "rf"
                                 else (ExtraTreesRegressor, ExtraTreesClassifier))
        finite = np.isfinite(y)
        reg = regressor(n_estimators=200, min_samples_leaf=2, max_features=0.5, random_state=0, n_jobs=1
                        ).fit(x[finite], y[finite])
        clf = classifier(n_estimators=200, min_samples_leaf=2, max_features=0.5, random_state=0, n_jobs=1
                         ).fit(x, finite) if 0 < finite.sum() < finite.size else None
        p = float(finite.all())
        return lambda q: (reg.predict(q), clf.predict_proba(q)[:, list(clf.classes_).index(True)]
                          if clf is not None else np.full(len(q), p))
    return fit


def _gp_ensemble(x: np.ndarray, y: np.ndarray, axes: Sequence[str], members: int = 3, size: int = 250) -> Callable:
    """``members`` GP regressions (Matern-5/2 with one length-scale per axis, white noise) on random subsets of
    ``size`` rows, averaged: of the finite scores' normal scores, and of the 0/1 feasibility labels (a GP
    classifier costs minutes here; GPs cost ``n^3``: subsets keep them usable)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

    from surrogate.emulator.model import gaussianised

    rng = np.random.default_rng(0)
    d = x.shape[1]
    finite = np.flatnonzero(np.isfinite(y))

    def gp(rows: np.ndarray, target: np.ndarray, seed: int) -> GaussianProcessRegressor:
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(np.full(d, 0.5), (1e-2, 1e2), nu=2.5) + WhiteKernel(0.1, (1e-4, 1.0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed).fit(x[rows], target)

    z = np.full(len(y), np.nan)
    z[finite] = gaussianised(y[finite])
    scores = [gp(pick, z[pick], k) for k, pick in
              enumerate(rng.choice(finite, min(size, finite.size), replace=False) for _ in range(members))] \
        if finite.size >= 5 else []
    labels = [gp(pick, np.isfinite(y[pick]).astype(float), k) for k, pick in
              enumerate(rng.choice(len(y), min(size, len(y)), replace=False) for _ in range(members))]

    def predict(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.mean([m.predict(q) for m in scores], axis=0) if scores else np.zeros(len(q))
        return mean, np.clip(np.mean([m.predict(q) for m in labels], axis=0), 0.0, 1.0)
    return predict


FAMILIES: dict[str, Callable[[np.ndarray, np.ndarray, Sequence[str]], Callable]] = {
    "lightgbm": _lightgbm, "lightgbm-plain": lambda x, y, axes: _lightgbm(x, y, ()),
    "random-forest": _forest("rf"), "extra-trees": _forest("et"), "gp-ensemble": _gp_ensemble,
}
"""Fit ``(x, y, axes)``, return ``predict(q) -> (mean, P(feasible))``. ``lightgbm`` is the emulator's own model (on
:func:`~surrogate.emulator.model.features`); ``lightgbm-plain`` the same on the plain encoding, as are the others."""


def compare_families(rows: pd.DataFrame, instance: Instance, families: Sequence[str] = tuple(FAMILIES),
                     folds: int = 5, train_rows: int | None = None) -> dict[str, dict[str, Any]]:
    """Out-of-sample fidelity of each model family on one instance's rows, with the seconds to fit and the
    milliseconds to predict 1,000 configurations.

    ``folds`` seeded folds (every row predicted once, by a model that did not see it: the per-instance held-out
    sets are small, a few dozen finite scores, so one 20% split alone is too noisy to choose a family by);
    ``folds=1``: the 80/20 split :func:`~surrogate.emulator.model.fit_instance` measures the emulator on.
    ``train_rows``: fit on a seeded random subset of that many of each split's training rows (a learning curve).
    """
    space = SearchSpace(instance.space)
    x = encode_rows(rows, space)
    y = rows["score"].to_numpy(dtype=float)
    if folds <= 1:
        splits = [holdout_split(len(y), instance.id)]
    else:
        order = np.random.default_rng(zlib.crc32(instance.id.encode())).permutation(len(y))
        parts = np.array_split(order, folds)
        splits = [(np.sort(np.concatenate(parts[:k] + parts[k + 1:])), np.sort(parts[k])) for k in range(folds)]
    if train_rows is not None:
        splits = [(np.sort(np.random.default_rng(0).permutation(train)[:train_rows]), test) for train, test in splits]
    tested = np.sort(np.concatenate([test for _, test in splits]))
    probe = space.snap(np.random.default_rng(1).random((1000, len(space))))
    out = {}
    for name in families:
        mean, p = np.zeros(len(y)), np.zeros(len(y))
        began = time.perf_counter()
        for train, test in splits:
            predict = FAMILIES[name](x[train], y[train], space.names)
            mean[test], p[test] = predict(x[test])
        fit_s = (time.perf_counter() - began) / len(splits)
        predict(probe)
        began = time.perf_counter()
        predict(probe)
        m, q, t = mean[tested], p[tested], y[tested]
        out[name] = {**fidelity(t, m, q, calibrated_threshold(q, float(np.mean(~np.isfinite(t))))), "fit_s": fit_s,
                     "predict_ms_1000": 1e3 * (time.perf_counter() - began)}
        print(f"  {instance.id} {name}: Spearman {_show(out[name]['spearman'])}, AUC "
              f"{_show(out[name]['feasibility_auc'])} ({fit_s:.1f} s a fit)", file=sys.stderr)
    return out


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def medians(per_instance: Mapping[str, Mapping[str, Any]], keys: Sequence[str]) -> dict[str, float | None]:
    """Median over instances of each of ``keys`` (None values left out)."""
    out = {}
    for key in keys:
        values = [v[key] for v in per_instance.values() if v.get(key) is not None]
        out[key] = float(np.median(values)) if values else None
    return out
