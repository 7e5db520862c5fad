"""The market regime detector: filtered bull / bear / ranging probabilities per day.

Market index
    The cross-sectional **mean** of the daily simple returns of every token that
    has a candle on both day ``t-1`` and day ``t``, each clipped to
    :data:`RETURN_CLIP` so one collapsing or pumping token cannot move the
    market, compounded into a level (1.0 on the first day): an equal-weight,
    daily-rebalanced index that needs no token names. Not a mean of *log*
    returns (each token's ``-sigma^2/2`` drag then hides bull markets in a
    universe of volatile alts) and not a cross-sectional median (on right-skewed
    crypto cross-sections it drifts down in bull years: on the real top-50
    universe it fell 77% over 2021).

Features (``(days, 2)``, percent units)
    ``return``: the index's daily log return; ``trend``: its log return over the
    last :data:`TREND_DAYS` days. Both use only data up to that day.

Detectors (``HmmParams.detector``)
    ``gaussian``   hmmlearn's ``GaussianHMM`` (3 states, diagonal covariances),
                   reimplemented compiled (same EM, same results to rounding).
    ``student_t``  the same HMM with diagonal multivariate Student-t emissions
                   (fixed ``student_t_dof``; ECM updates, :class:`StudentTHMM`),
                   the seed's first suggestion for fat-tailed crypto returns.
    ``ma200``      no HMM: BTCUSDT (else the market index) above its 200-day
                   moving average with the average rising = bull, below and
                   falling = bear, anything else = ranging (one-hot probabilities).

Causality and refits (HMM detectors)
    The first fit happens on the first day with ``hmm_min_observations`` feature
    rows; then every ``hmm_refit_interval`` days the model is re-estimated by EM
    (at most ``hmm_max_iters`` iterations) on **all** feature rows up to and
    including that day, warm-started from the previous fit (the first fit starts
    from a deterministic tercile split of the trend feature). Between refits the
    last fitted model filters forward: the probability for day ``t`` is the
    normalised forward variable ``P(state_t | features_<=t)`` -- never smoothed
    with later data. Days before the first fit are NaN. A refit that fails
    (degenerate EM) keeps the previous model.

State labelling rule
    After every fit the states are sorted by the mean of their ``trend``
    emission: highest = bull, lowest = bear, middle = ranging.

Probabilities are memoised per (candles fingerprint, detector settings), in
memory and (HMM chains) on disk (:mod:`strategy.diskcache`, shared by processes);
``hard_switch_threshold`` belongs to the meta-allocator and is not part of the
key, so sweeping it never refits anything.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from hmmlearn.base import BaseHMM
from hmmlearn.hmm import GaussianHMM
from numba import njit
from scipy.special import gammaln

from data.candles import REGIME_NAMES, Candles
from strategy.diskcache import cached_array
from strategy.fits import _LRU
from strategy.params import _check, bounded, from_mapping

DETECTORS: tuple[str, ...] = ("gaussian", "student_t", "ma200")
TREND_DAYS = 30
"""Days in the ``trend`` feature (log return of the market index over this many days)."""
MA_DAYS = 200
"""Moving-average length of the ``ma200`` detector (days)."""
MA_SLOPE_DAYS = 20
"""The ``ma200`` detector calls the average rising/falling by its change over this many days."""
RETURN_CLIP = (-0.5, 1.0)
"""Daily simple returns enter the market index clipped to this range."""
N_STATES = len(REGIME_NAMES)
MIN_COVAR = 1e-3
"""Variance floor of the emissions (features in percent, so 0.03 % standard deviation)."""

logging.getLogger("hmmlearn").setLevel(logging.ERROR)  # non-monotone EM steps on tiny windows are expected


@dataclass(frozen=True)
class HmmParams:
    """Regime detector and meta-allocator threshold (windows in days)."""

    detector: str = bounded("gaussian", choices=DETECTORS, doc="regime model: Gaussian HMM, Student-t HMM, or BTC 200d MA")
    hmm_refit_interval: int = bounded(7, 1, 365, doc="days between HMM refits (filtered forward in between)")
    hmm_min_observations: int = bounded(90, 20, 2000, doc="feature rows required before the first HMM fit")
    hmm_max_iters: int = bounded(50, 1, 1000, doc="EM iterations per (warm-started) refit, at most")
    hard_switch_threshold: float = bounded(0.8, 0.0, 1.0, doc="top regime probability at/above which the ensemble hard-switches")
    student_t_dof: float = bounded(4.0, 2.1, 100.0, doc="degrees of freedom of the Student-t emissions")

    def __post_init__(self) -> None:
        _check(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], base: "HmmParams | None" = None) -> "HmmParams":
        return from_mapping(cls, values, base=base)

    @property
    def cache_key(self) -> tuple:
        """Everything the probabilities depend on (not the meta-allocator's threshold)."""
        if self.detector == "ma200":
            return ("ma200",)
        dof = self.student_t_dof if self.detector == "student_t" else None
        return (self.detector, self.hmm_refit_interval, self.hmm_min_observations, self.hmm_max_iters, dof)


# --------------------------------------------------------------------------- market index and features
_INDEX = _LRU(16)
_PROBS = _LRU(4096, max_mb=64)  # every detector setting of a search fits (each entry is days x 3 floats)


def market_index(candles: Candles) -> np.ndarray:
    """``(days,)`` level of the equal-weight market index (1.0 on the first day; see the module docstring)."""

    def compute() -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            returns = candles.close[1:] / candles.close[:-1] - 1.0  # NaN unless listed on both days
        has = ~np.isnan(returns).all(axis=1)
        daily = np.zeros(returns.shape[0])
        if has.any():
            daily[has] = np.nanmean(np.clip(returns[has], *RETURN_CLIP), axis=1)
        level = np.concatenate([[1.0], np.cumprod(1.0 + daily)])
        level.setflags(write=False)
        return level

    return _INDEX.get(candles.fingerprint, compute)


def regime_features(candles: Candles) -> np.ndarray:
    """``(days, 2)`` [daily log return, ``TREND_DAYS`` log return] of the market index in percent; NaN where undefined."""
    log_level = np.log(market_index(candles))
    features = np.full((log_level.size, 2), np.nan)
    features[1:, 0] = np.diff(log_level) * 100.0
    features[TREND_DAYS:, 1] = (log_level[TREND_DAYS:] - log_level[:-TREND_DAYS]) * 100.0
    return features


# --------------------------------------------------------------------------- the HMM, compiled
# The EM below is hmmlearn's (``GaussianHMM(covariance_type="diag", implementation="scaling")`` and
# :class:`StudentTHMM`, with ``init_params=""``, ``params="stmc"``): the same E-step (scaled forward-
# backward), M-step, priors, variance floors, convergence rule and failure conditions, in one compiled
# pass per EM iteration instead of a dozen numpy and C++ calls. It reproduces hmmlearn's probabilities to
# rounding (``tests/test_speed_regime.py``). One difference in arithmetic: each day's emission densities
# are scaled by their largest before the forward pass (the scaling factors absorb it), so the forward
# variables cannot underflow; hmmlearn's underflow failure is still detected, from the unscaled sum.
_JIT = dict(cache=True, error_model="numpy", nogil=True)
LOG_2PI = float(np.log(2 * np.pi))
TINY = float(np.finfo(np.float64).tiny)
"""hmmlearn floors Gaussian variances at the smallest normal number before taking their log."""
LOG_UNDERFLOW = float(np.log(1e-300))
"""hmmlearn's scaled forward pass fails when a day's unscaled forward sum falls below 1e-300."""
EM_TOL = 1e-3
"""EM stops when an iteration gains less log-likelihood than this (hmmlearn's ``tol``)."""
COVARS_PRIOR = 1e-2
"""hmmlearn ``GaussianHMM``'s default ``covars_prior`` (added to every variance's numerator)."""
NO_DAYS = (0.0, 1.0, False)
""":func:`_forward`'s state before the first day."""


class StudentTHMM(GaussianHMM):
    """3-state HMM with diagonal multivariate Student-t emissions of fixed ``dof`` (ECM estimation), in hmmlearn.

    Each observation gets the latent precision weight ``u = (dof + d) / (dof + delta)``
    (``delta``: squared Mahalanobis distance to the state mean), so outliers pull
    the means and variances less than under Gaussian emissions. This is the
    specification the compiled EM (``student=True``) reproduces and is tested against.
    """

    def __init__(self, dof: float = 4.0, **kwargs: Any) -> None:
        super().__init__(covariance_type="diag", **kwargs)
        self.dof = dof

    def _mahalanobis(self, X: np.ndarray) -> np.ndarray:
        """``(n, states)`` squared scaled distances."""
        return (((X[:, None, :] - self.means_[None]) ** 2) / self._covars_[None]).sum(axis=2)

    def _compute_log_likelihood(self, X: np.ndarray) -> np.ndarray:
        d = X.shape[1]
        nu = self.dof
        return (student_t_constant(nu, d) - 0.5 * np.log(self._covars_).sum(axis=1)[None]
                - (nu + d) / 2 * np.log1p(self._mahalanobis(X) / nu))

    def _initialize_sufficient_statistics(self) -> dict:
        stats = super()._initialize_sufficient_statistics()
        stats["upost"] = np.zeros(self.n_components)
        return stats

    def _accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice, bwdlattice) -> None:
        BaseHMM._accumulate_sufficient_statistics(self, stats, X, lattice, posteriors, fwdlattice, bwdlattice)
        weighted = posteriors * (self.dof + X.shape[1]) / (self.dof + self._mahalanobis(X))
        stats["post"] += posteriors.sum(axis=0)
        stats["upost"] += weighted.sum(axis=0)
        stats["obs"] += weighted.T @ X
        stats["obs**2"] += weighted.T @ X**2

    def _do_mstep(self, stats: dict) -> None:
        BaseHMM._do_mstep(self, stats)  # start probabilities and transitions
        upost = stats["upost"][:, None]
        means = stats["obs"] / upost
        spread = stats["obs**2"] - 2 * means * stats["obs"] + means**2 * upost
        self.means_ = means
        self._covars_ = np.maximum(spread / stats["post"][:, None], self.min_covar)


def student_t_constant(dof: float, d: int) -> float:
    """Log normalising constant of a ``d``-variate Student-t density, less the ``log det`` term."""
    return float(gammaln((dof + d) / 2) - gammaln(dof / 2) - d / 2 * np.log(dof * np.pi))


@njit(**_JIT)
def _floor(value: float, floor: float) -> float:
    """``np.maximum(value, floor)`` (NaN stays NaN)."""
    return value if value >= floor or value != value else floor


@njit(**_JIT)
def _emissions(X, means, covars, student, dof, constant, first, n, loglik, mahal):
    """Fill rows ``first:n`` of ``loglik`` (log densities of ``X``) and, for Student-t, ``mahal`` (distances)."""
    d = X.shape[1]
    for k in range(N_STATES):
        if student:
            base = constant - 0.5 * (np.log(covars[k, 0]) + np.log(covars[k, 1]))
        else:  # hmmlearn's diagonal Gaussian (variances floored at the smallest normal number)
            c0, c1 = _floor(covars[k, 0], TINY), _floor(covars[k, 1], TINY)
            base = d * LOG_2PI + (np.log(c0) + np.log(c1))
        for t in range(first, n):
            if student:
                delta = (X[t, 0] - means[k, 0]) ** 2 / covars[k, 0] + (X[t, 1] - means[k, 1]) ** 2 / covars[k, 1]
                mahal[t, k] = delta
                loglik[t, k] = base - (dof + d) / 2 * np.log1p(delta / dof)
            else:
                loglik[t, k] = -0.5 * (base + ((X[t, 0] - means[k, 0]) ** 2 / c0 + (X[t, 1] - means[k, 1]) ** 2 / c1))


@njit(**_JIT)
def _forward(startprob, transmat, loglik, first, n, frame, fwd, scale, carried):
    """Scaled forward pass over days ``first:n``, continuing one over days ``:first`` (``carried``).

    Fills ``frame`` (densities divided by the day's largest), ``fwd`` (the filtered
    state probabilities ``P(state_t | x_<=t)``, rows summing to 1) and ``scale``
    (1 / each day's scaled sum). ``carried`` and the result are ``(log_sum, product,
    underflow)``: the log-likelihood so far is ``log_sum + log(product)``;
    ``underflow``: hmmlearn's unscaled pass would fail. Start with :data:`NO_DAYS`.
    """
    log_prob, product, underflow = carried  # product: of the scaled sums not yet folded into log_prob
    predicted = np.empty(N_STATES)
    for t in range(first, n):
        top = max(loglik[t, 0], max(loglik[t, 1], loglik[t, 2]))
        for j in range(N_STATES):
            predicted[j] = startprob[j] if t == 0 else (
                fwd[t - 1, 0] * transmat[0, j] + fwd[t - 1, 1] * transmat[1, j] + fwd[t - 1, 2] * transmat[2, j])
        total = 0.0
        for j in range(N_STATES):
            frame[t, j] = np.exp(loglik[t, j] - top)
            fwd[t, j] = predicted[j] * frame[t, j]
            total += fwd[t, j]
        # the unscaled sum is total * exp(top), total <= 1: it can only fall below 1e-300 when this test fails
        if not (total >= 1e-30 and top >= LOG_UNDERFLOW + 70.0):
            underflow |= np.log(total) + top < LOG_UNDERFLOW
        log_prob += top
        product *= total
        if product < 1e-250:
            log_prob += np.log(product)
            product = 1.0
        scale[t] = 1.0 / total
        for j in range(N_STATES):
            fwd[t, j] *= scale[t]
    return log_prob, product, underflow


@njit(**_JIT)
def _backward_statistics(X, n, transmat, frame, fwd, scale, student, dof, mahal, stats) -> None:
    """Backward pass over the first ``n`` days, accumulating the E-step's sufficient statistics.

    ``stats = (start (3,), trans (3, 3), post (3,), upost (3,), obs (3, 2), obs2 (3, 2))``,
    zeroed on entry: first-day posteriors, expected transitions, posterior mass,
    Student-t precision-weighted mass (= ``post`` for Gaussian emissions), and the
    (weighted) first and second moments of the features.
    """
    start, trans, post, upost, obs, obs2 = stats
    d = X.shape[1]
    after = np.full(N_STATES, scale[n - 1])  # backward variable of day t + 1
    bwd, weighted, gamma = np.empty(N_STATES), np.empty(N_STATES), np.empty(N_STATES)
    for t in range(n - 1, -1, -1):
        if t < n - 1:
            for j in range(N_STATES):
                weighted[j] = frame[t + 1, j] * after[j]
            for i in range(N_STATES):
                acc = 0.0
                for j in range(N_STATES):
                    step = transmat[i, j] * weighted[j]
                    acc += step
                    trans[i, j] += fwd[t, i] * step
                bwd[i] = acc * scale[t]
        else:
            bwd[:] = after
        norm = 0.0
        for k in range(N_STATES):
            gamma[k] = fwd[t, k] * bwd[k]
            norm += gamma[k]
        inverse = 1.0 / norm if norm != 0.0 else 1.0
        for k in range(N_STATES):
            g = gamma[k] * inverse
            w = g * (dof + d) / (dof + mahal[t, k]) if student else g
            post[k] += g
            upost[k] += w
            for f in range(d):
                obs[k, f] += w * X[t, f]
                obs2[k, f] += w * X[t, f] * X[t, f]
        after[:] = bwd
    start[:] = gamma * inverse


@njit(**_JIT)
def _sums_to_one(values) -> bool:
    """hmmlearn's ``_check_sum_1``: ``np.allclose(values.sum(), 1)``."""
    return abs(values.sum() - 1.0) <= 1e-8 + 1e-5


@njit(**_JIT)
def _em(X, n, model, max_iters, student, dof, constant, work, primed, carried) -> bool:
    """hmmlearn's ``fit`` on the first ``n`` rows of ``X``, warm-started from ``model``.

    ``work`` already holds the forward pass of ``model`` over the first ``primed`` rows
    (``carried``: its :func:`_forward` state), which the first E-step continues.

    ``model = (startprob (3,), transmat (3, 3), means (3, 2), covars (3, 2))`` is
    updated in place only when the fit succeeds; returns whether it did. It fails
    where hmmlearn raises or leaves non-finite parameters: start or transition
    probabilities that do not sum to 1 on entry, an underflowing forward pass, or
    a non-finite estimate.
    """
    startprob, transmat, means, covars = model[0].copy(), model[1].copy(), model[2].copy(), model[3].copy()
    if not _sums_to_one(startprob):
        return False
    for i in range(N_STATES):
        if not _sums_to_one(transmat[i]):
            return False
    loglik, mahal, frame, fwd, scale = work
    d = X.shape[1]
    previous = 0.0
    for iteration in range(max_iters):
        # E-step
        first, state = (primed, carried) if iteration == 0 else (0, NO_DAYS)
        _emissions(X, means, covars, student, dof, constant, first, n, loglik, mahal)
        log_sum, product, underflow = _forward(startprob, transmat, loglik, first, n, frame, fwd, scale, state)
        log_prob = log_sum + np.log(product)
        if underflow:
            return False
        stats = (np.zeros(N_STATES), np.zeros((N_STATES, N_STATES)), np.zeros(N_STATES), np.zeros(N_STATES),
                 np.zeros((N_STATES, d)), np.zeros((N_STATES, d)))
        _backward_statistics(X, n, transmat, frame, fwd, scale, student, dof, mahal, stats)
        start, trans, post, upost, obs, obs2 = stats
        # M-step (priors: hmmlearn's defaults)
        for k in range(N_STATES):
            if startprob[k] != 0.0:
                startprob[k] = start[k]
        startprob /= startprob.sum()
        for i in range(N_STATES):
            for j in range(N_STATES):
                if transmat[i, j] != 0.0:
                    transmat[i, j] = trans[i, j]
            row = transmat[i].sum()
            transmat[i] /= row if row != 0.0 else 1.0
        for k in range(N_STATES):
            for f in range(d):
                if student:
                    means[k, f] = obs[k, f] / upost[k]
                    spread = obs2[k, f] - 2 * means[k, f] * obs[k, f] + means[k, f] ** 2 * upost[k]
                    covars[k, f] = _floor(spread / post[k], MIN_COVAR)
                else:
                    means[k, f] = obs[k, f] / post[k]
                    spread = obs2[k, f] - 2 * means[k, f] * obs[k, f] + means[k, f] ** 2 * post[k]
                    covars[k, f] = (COVARS_PRIOR + spread) / _floor(post[k], 1e-5)
        if iteration > 0 and log_prob - previous < EM_TOL:
            break
        previous = log_prob
    for estimate in (startprob.ravel(), transmat.ravel(), means.ravel(), covars.ravel()):
        if not np.isfinite(estimate).all():
            return False
    model[0][:], model[1][:], model[2][:], model[3][:] = startprob, transmat, means, covars
    return True


@njit(**_JIT)
def _initial_state(X, n, model) -> None:
    """Deterministic EM start on the first ``n`` rows: states = terciles of the trend feature, sticky transitions.

    Tercile ``g`` holds the ``g``-th of ``np.array_split(argsort(trend, stable), 3)``; its
    mean and (population) variance, summed in that order, start state ``g``.
    """
    startprob, transmat, means, covars = model
    order = np.argsort(X[:n, 1], kind="mergesort")
    startprob[:] = 1.0 / N_STATES
    off = 0.05 / (N_STATES - 1)
    for i in range(N_STATES):
        for j in range(N_STATES):
            transmat[i, j] = off + (0.95 - off if i == j else 0.0)
    lo = 0
    for g in range(N_STATES):
        size = n // N_STATES + (1 if g < n % N_STATES else 0)
        rows = order[lo : lo + size]
        lo += size
        for f in range(X.shape[1]):
            total = 0.0
            for r in rows:
                total += X[r, f]
            mean = total / size
            spread = 0.0
            for r in rows:
                spread += (X[r, f] - mean) * (X[r, f] - mean)
            means[g, f] = mean
            covars[g, f] = _floor(spread / size, MIN_COVAR)


@njit(**_JIT)
def _hmm_chain(X, first_fit, interval, max_iters, student, dof, constant):
    """``(n, 3)`` labelled filtered probabilities of the refit chain over ``X`` (``(n, 2)``, no NaN).

    Fits on rows ``:r + 1`` for ``r = first_fit, first_fit + interval, ...`` (warm-started;
    the first from :func:`_initial_state`, retried from a new start while it fails), then
    filters rows ``r .. r + interval - 1`` with the last good model. NaN before the first fit.
    """
    n = X.shape[0]
    out = np.full((n, N_STATES), np.nan)
    model = (np.empty(N_STATES), np.empty((N_STATES, N_STATES)), np.empty((N_STATES, 2)), np.empty((N_STATES, 2)))
    work = (np.empty((n, N_STATES)), np.empty((n, N_STATES)), np.empty((n, N_STATES)), np.empty((n, N_STATES)),
            np.empty(n))
    loglik, mahal, frame, fwd, scale = work
    fitted = False
    primed, carried = 0, NO_DAYS  # rows of work filtered by the current model (the next fit's first E-step)
    for refit in range(first_fit, n, interval):
        if not fitted:
            _initial_state(X, refit + 1, model)
            primed = 0
        if not _em(X, refit + 1, model, max_iters, student, dof, constant, work, primed, carried) and not fitted:
            continue
        fitted = True
        stop = min(refit + interval, n)
        _emissions(X, model[2], model[3], student, dof, constant, 0, stop, loglik, mahal)
        carried = _forward(model[0], model[1], loglik, 0, stop, frame, fwd, scale, NO_DAYS)
        primed = stop
        by_trend = np.argsort(model[2][:, 1], kind="mergesort")  # labelling rule: bear, ranging, bull
        bear, ranging, bull = by_trend[0], by_trend[1], by_trend[2]
        for t in range(refit, stop):  # relative to the likeliest state, then normalised (that one is 1 / sum)
            top = max(fwd[t, 0], max(fwd[t, 1], fwd[t, 2]))
            relative = fwd[t] / top
            out[t, 0], out[t, 1], out[t, 2] = relative[bull], relative[bear], relative[ranging]
            out[t] /= relative.sum()
    return out


def _hmm_probabilities(features: np.ndarray, params: HmmParams) -> np.ndarray:
    """``(days, 3)`` labelled filtered probabilities of the HMM refit chain (NaN before the first fit)."""
    days = features.shape[0]
    out = np.full((days, N_STATES), np.nan)
    valid = np.flatnonzero(~np.isnan(features).any(axis=1))
    if valid.size < params.hmm_min_observations:
        return out
    first = int(valid[0])  # features are defined on a contiguous tail of days
    student = params.detector == "student_t"
    dof = float(params.student_t_dof) if student else 0.0
    constant = student_t_constant(dof, features.shape[1]) if student else 0.0
    out[first:] = _hmm_chain(np.ascontiguousarray(features[first:]), params.hmm_min_observations - 1,
                             params.hmm_refit_interval, params.hmm_max_iters, student, dof, constant)
    return out


def _ma_probabilities(candles: Candles) -> np.ndarray:
    """``(days, 3)`` one-hot regimes of the 200-day moving-average rule (NaN before it is defined)."""
    price = candles.close[:, candles.column("BTCUSDT")] if "BTCUSDT" in candles.tokens else market_index(candles)
    days = price.size
    out = np.full((days, N_STATES), np.nan)
    filled = np.where(np.isnan(price), 0.0, price)
    csum = np.concatenate([[0.0], np.cumsum(filled)])
    count = np.concatenate([[0], np.cumsum(~np.isnan(price))])
    t = np.arange(MA_DAYS - 1, days)
    n = count[t + 1] - count[t + 1 - MA_DAYS]
    ma = np.full(days, np.nan)
    ma[t] = np.where(n == MA_DAYS, (csum[t + 1] - csum[t + 1 - MA_DAYS]) / np.maximum(n, 1), np.nan)
    slope = np.full(days, np.nan)
    slope[MA_SLOPE_DAYS:] = ma[MA_SLOPE_DAYS:] - ma[:-MA_SLOPE_DAYS]
    defined = ~np.isnan(slope) & ~np.isnan(price)
    regime = np.full(days, REGIME_NAMES.index("ranging"))
    regime[defined & (price > ma) & (slope > 0)] = REGIME_NAMES.index("bull")
    regime[defined & (price < ma) & (slope < 0)] = REGIME_NAMES.index("bear")
    out[defined] = np.eye(N_STATES)[regime[defined]]
    return out


def regime_probabilities(candles: Candles, params: HmmParams) -> np.ndarray:
    """``(days, 3)`` filtered probabilities of (bull, bear, ranging) per day; NaN rows before the first fit.

    Row ``t`` uses candles up to and including day ``t`` only. Memoised; the
    returned array is read-only.
    """

    key = (candles.fingerprint, params.cache_key)

    def compute() -> np.ndarray:
        if params.detector == "ma200":
            probs = _ma_probabilities(candles)
        else:
            probs = cached_array("regime", __name__, key,
                                 lambda: _hmm_probabilities(regime_features(candles), params))
        probs.setflags(write=False)
        return probs

    return _PROBS.get(key, compute)


# --------------------------------------------------------------------------- accuracy against true regimes
@dataclass(frozen=True)
class RegimeAccuracy:
    """How often the detector's top regime equals the true one (synthetic universes only)."""

    detector: str
    days: int
    accuracy: float
    majority_baseline: float
    """Accuracy of always calling the most frequent true regime on the same days."""
    confusion: np.ndarray
    """``(3, 3)`` day counts, rows = true regime, columns = called regime (REGIME_NAMES order)."""

    def recall(self) -> dict[str, float]:
        totals = self.confusion.sum(axis=1)
        return {name: float(self.confusion[i, i] / totals[i]) if totals[i] else float("nan")
                for i, name in enumerate(REGIME_NAMES)}


def regime_accuracy(candles: Candles, params: HmmParams, start: object | None = None) -> RegimeAccuracy:
    """Score the detector's argmax against ``candles.regimes`` on the days (from ``start``) it has an answer."""
    if candles.regimes is None:
        raise ValueError(f"{candles.name}: no true regime path (only synthetic universes carry one)")
    probs = regime_probabilities(candles, params)
    known = ~np.isnan(probs).any(axis=1)
    if start is not None:
        known &= np.arange(candles.n_days) >= int(np.searchsorted(candles.dates, np.datetime64(str(start), "D")))
    truth = candles.regimes[known].astype(int)
    called = probs[known].argmax(axis=1)
    confusion = np.zeros((N_STATES, N_STATES), dtype=np.int64)
    np.add.at(confusion, (truth, called), 1)
    days = int(known.sum())
    majority = float(np.bincount(truth, minlength=N_STATES).max() / days) if days else float("nan")
    return RegimeAccuracy(params.detector, days, float(np.trace(confusion) / days) if days else float("nan"),
                          majority, confusion)
