"""Gaussian-process surrogate of ``ensemble_score`` over the unit-encoded search space.

* Regression: scikit-learn ``GaussianProcessRegressor`` with a Matern-5/2 kernel
  with one length-scale per axis (ARD), a constant amplitude and a white-noise
  term, on standardised targets (``normalize_y``), fitted on the *finite* scores.
* Feasibility: the ``-inf`` region (hard rejections) is modelled separately by a
  ``GaussianProcessClassifier`` (same kernel family) giving ``P(feasible | x)``.
  Why not impute rejections with the worst finite score (Optuna's GPSampler
  clips that way)? A rejection is a cliff, not a low value: imputing it distorts
  the regression near the boundary, while a classifier learns where the cliff is
  and the acquisition discounts it (expected improvement x P(feasible)).
  With only one class observed the probability is that class's (1 or 0 smoothed).
* Acquisition: expected improvement over the best finite score, times
  ``P(feasible)``; optimised over mixed int/categorical/continuous axes by scoring
  many snapped random candidates plus local perturbations of the best points.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from strategy.space import SearchSpace


@dataclass(frozen=True)
class Prediction:
    """Surrogate output at ``n`` points: mean and std of the score, and ``P(feasible)``."""

    mean: np.ndarray
    std: np.ndarray
    feasible: np.ndarray


class GPSurrogate:
    """GP regression on finite scores + GP classification of feasibility, over ``[0, 1]^d``."""

    def __init__(self, space: SearchSpace, seed: int = 0, restarts: int = 2) -> None:
        self.space = space
        self.seed = seed
        self.restarts = restarts
        self.regressor: GaussianProcessRegressor | None = None
        self.classifier: GaussianProcessClassifier | None = None
        self.p_constant = 1.0
        self.best = -np.inf

    def _kernel(self, d: int, noise: bool):
        kernel = ConstantKernel(1.0, (1e-3, 1e3)) * Matern(length_scale=np.full(d, 0.5), length_scale_bounds=(1e-2, 1e2), nu=2.5)
        return kernel + WhiteKernel(1e-3, (1e-6, 1e-1)) if noise else kernel

    def fit(self, x: np.ndarray, y: np.ndarray, like: "GPSurrogate | None" = None) -> "GPSurrogate":
        """Fit on ``x`` ``(n, d)`` unit points and ``y`` ``(n,)`` scores (``-inf`` = rejected).

        ``like``: a fitted surrogate whose kernel hyperparameters are reused as
        they are (no optimisation: one Cholesky per model, milliseconds instead
        of seconds once ``n`` is in the hundreds). A model ``like`` lacks is
        optimised as usual.
        """
        x = np.asarray(x, dtype=float)
        y = np.asarray(y, dtype=float)
        feasible = np.isfinite(y)
        d = x.shape[1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", UserWarning)
            if feasible.sum() >= 2:
                tuned = like.regressor.kernel_ if like is not None and like.regressor is not None else None
                self.regressor = GaussianProcessRegressor(
                    tuned if tuned is not None else self._kernel(d, noise=True), normalize_y=True, n_restarts_optimizer=self.restarts,
                    random_state=self.seed, optimizer=None if tuned is not None else "fmin_l_bfgs_b",
                ).fit(x[feasible], y[feasible])
                self.best = float(y[feasible].max())
            else:
                self.regressor = None
                self.best = float(y[feasible].max()) if feasible.any() else -np.inf
            if 0 < feasible.sum() < feasible.size:
                tuned = like.classifier.kernel_ if like is not None and like.classifier is not None else None
                self.classifier = GaussianProcessClassifier(
                    tuned if tuned is not None else self._kernel(d, noise=False), random_state=self.seed,
                    optimizer=None if tuned is not None else "fmin_l_bfgs_b",
                ).fit(x, feasible.astype(int))
            else:
                self.classifier = None
                # Laplace-smoothed share of feasible points when only one class was seen
                self.p_constant = (feasible.sum() + 1.0) / (feasible.size + 2.0)
        return self

    def predict(self, x: np.ndarray) -> Prediction:
        x = np.atleast_2d(np.asarray(x, dtype=float))
        if self.regressor is None:
            mean, std = np.zeros(len(x)), np.ones(len(x))
        else:
            mean, std = self.regressor.predict(x, return_std=True)
        feasible = self.classifier.predict_proba(x)[:, 1] if self.classifier is not None else np.full(len(x), self.p_constant)
        return Prediction(mean=mean, std=np.maximum(std, 1e-12), feasible=feasible)

    def expected_improvement(self, x: np.ndarray, xi: float = 0.0) -> np.ndarray:
        """EI over the best finite score, times ``P(feasible)`` (pure feasibility before any finite score)."""
        p = self.predict(x)
        if not np.isfinite(self.best):
            return p.feasible * p.std
        z = (p.mean - self.best - xi) / p.std
        ei = (p.mean - self.best - xi) * norm.cdf(z) + p.std * norm.pdf(z)
        return np.maximum(ei, 0.0) * p.feasible

    def propose(self, rng: np.random.Generator, x_seen: np.ndarray, n_random: int = 2048, n_local: int = 1024) -> np.ndarray:
        """The snapped unit point maximising the acquisition, not already in ``x_seen``."""
        d = len(self.space)
        candidates = [rng.random((n_random, d))]
        if len(x_seen):
            prediction = self.predict(x_seen).mean if self.regressor is not None else np.zeros(len(x_seen))
            top = x_seen[np.argsort(-prediction)[: min(8, len(x_seen))]]
            picks = top[rng.integers(0, len(top), n_local)]
            mask = rng.random((n_local, d)) < 3.0 / d  # perturb a few axes at a time
            candidates.append(np.where(mask, np.clip(picks + rng.normal(0, 0.15, (n_local, d)), 0, 1), picks))
        pool = np.unique(self.space.snap(np.vstack(candidates)), axis=0)
        if len(x_seen):
            seen = {row.tobytes() for row in np.round(self.space.snap(x_seen), 9) + 0.0}  # + 0.0: -0.0 equals 0.0
            pool = pool[[row.tobytes() not in seen for row in np.round(pool, 9) + 0.0]]
        if len(pool) == 0:
            return self.space.snap(rng.random((1, d)))[0]
        return pool[int(np.argmax(self.expected_improvement(pool)))]


def calibration(space: SearchSpace, x: np.ndarray, y: np.ndarray, train_fraction: float = 0.7, seed: int = 0) -> dict[str, float]:
    """Hold-out check of the surrogate: RMSE vs a constant predictor, 90% interval coverage, feasibility accuracy."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    cut = int(len(y) * train_fraction)
    train, test = order[:cut], order[cut:]
    model = GPSurrogate(space, seed=seed).fit(x[train], y[train])
    p = model.predict(x[test])
    finite_test = np.isfinite(y[test])
    finite_train = np.isfinite(y[train])
    constant = float(np.mean(y[train][finite_train])) if finite_train.any() else 0.0
    truth = y[test][finite_test]
    rmse = float(np.sqrt(np.mean((p.mean[finite_test] - truth) ** 2))) if finite_test.any() else float("nan")
    rmse_constant = float(np.sqrt(np.mean((constant - truth) ** 2))) if finite_test.any() else float("nan")
    inside = np.abs(p.mean[finite_test] - truth) <= 1.645 * p.std[finite_test]
    feasible_accuracy = float(np.mean((p.feasible >= 0.5) == finite_test))
    return {
        "n_train": float(cut), "n_test": float(len(test)), "rmse": rmse, "rmse_constant": rmse_constant,
        "coverage_90": float(np.mean(inside)) if finite_test.any() else float("nan"),
        "feasibility_accuracy": feasible_accuracy,
    }
