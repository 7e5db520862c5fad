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
    ``gaussian``   hmmlearn ``GaussianHMM`` (3 states, diagonal covariances).
    ``student_t``  the same HMM with diagonal multivariate Student-t emissions
                   (fixed ``student_t_dof``; ECM updates), the seed's first
                   suggestion for fat-tailed crypto returns.
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
from hmmlearn import _hmmc
from hmmlearn.base import BaseHMM
from hmmlearn.hmm import GaussianHMM
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
_PROBS = _LRU(512)  # every detector setting of a search fits (each entry is days x 3 floats)


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


# --------------------------------------------------------------------------- Student-t HMM
class StudentTHMM(GaussianHMM):
    """3-state HMM with diagonal multivariate Student-t emissions of fixed ``dof`` (ECM estimation).

    Each observation gets the latent precision weight ``u = (dof + d) / (dof + delta)``
    (``delta``: squared Mahalanobis distance to the state mean), so outliers pull
    the means and variances less than under Gaussian emissions.
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
        const = gammaln((nu + d) / 2) - gammaln(nu / 2) - d / 2 * np.log(nu * np.pi)
        return (const - 0.5 * np.log(self._covars_).sum(axis=1)[None]
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


# --------------------------------------------------------------------------- HMM filtering
def _new_model(params: HmmParams) -> GaussianHMM:
    common = dict(n_components=N_STATES, n_iter=params.hmm_max_iters, tol=1e-3, min_covar=MIN_COVAR,
                  init_params="", params="stmc", implementation="scaling")
    if params.detector == "student_t":
        return StudentTHMM(dof=params.student_t_dof, **common)
    return GaussianHMM(covariance_type="diag", **common)


def _initial_state(model: GaussianHMM, X: np.ndarray) -> None:
    """Deterministic EM start: states = terciles of the trend feature, sticky transitions."""
    order = np.argsort(X[:, 1], kind="stable")
    groups = np.array_split(order, N_STATES)
    model.startprob_ = np.full(N_STATES, 1.0 / N_STATES)
    model.transmat_ = np.full((N_STATES, N_STATES), 0.05 / (N_STATES - 1)) + np.eye(N_STATES) * (0.95 - 0.05 / (N_STATES - 1))
    model.means_ = np.array([X[g].mean(axis=0) for g in groups])
    model.covars_ = np.array([np.maximum(X[g].var(axis=0), MIN_COVAR) for g in groups])


def _labelled_filter(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    """``(n, 3)`` filtered probabilities of ``X`` under ``model``, columns in :data:`REGIME_NAMES` order."""
    log_frame = model._compute_log_likelihood(X)
    _, forward = _hmmc.forward_log(model.startprob_, model.transmat_, log_frame)
    forward = forward - forward.max(axis=1, keepdims=True)
    probs = np.exp(forward)
    probs /= probs.sum(axis=1, keepdims=True)
    by_trend = np.argsort(model.means_[:, 1])  # ascending: bear, ranging, bull
    bear, ranging, bull = by_trend
    return probs[:, [bull, bear, ranging]]


def _hmm_probabilities(features: np.ndarray, params: HmmParams) -> np.ndarray:
    days = features.shape[0]
    out = np.full((days, N_STATES), np.nan)
    valid = np.flatnonzero(~np.isnan(features).any(axis=1))
    if valid.size < params.hmm_min_observations:
        return out
    first = int(valid[0])  # features are defined on a contiguous tail of days
    X = features[first:]
    model = _new_model(params)
    fitted = False
    start = params.hmm_min_observations - 1  # index into X of the first fit day
    for refit in range(start, X.shape[0], params.hmm_refit_interval):
        train = X[: refit + 1]
        if not fitted:
            _initial_state(model, train)
        backup = {k: getattr(model, k).copy() for k in ("startprob_", "transmat_", "means_", "_covars_")}
        try:
            model.fit(train)
            ok = all(np.isfinite(getattr(model, k)).all() for k in backup)
        except ValueError:
            ok = False
        if not ok:
            for key, value in backup.items():
                setattr(model, key, value)
            if not fitted:
                continue
        fitted = True
        stop = min(refit + params.hmm_refit_interval, X.shape[0])
        out[first + refit : first + stop] = _labelled_filter(model, X[:stop])[refit:stop]
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
