"""The compiled HMM refit chain reproduces hmmlearn's (the implementation it replaced) to rounding.

``_reference_probabilities`` is that implementation, verbatim: hmmlearn's ``GaussianHMM`` (or
:class:`strategy.regime.StudentTHMM`) refitted and warm-started on every refit day, with the
same deterministic start, failure fallback and labelling rule, filtered with hmmlearn's
log-space forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest
from hmmlearn import _hmmc
from hmmlearn.hmm import GaussianHMM

from data import load_universe
from strategy.regime import MIN_COVAR, N_STATES, HmmParams, StudentTHMM, _hmm_probabilities, regime_features

TOLERANCE = 1e-8
"""Largest difference allowed between a compiled and an hmmlearn probability (measured: about 1e-12)."""


# --------------------------------------------------------------------------- the hmmlearn reference
def _new_model(params: HmmParams) -> GaussianHMM:
    common = dict(n_components=N_STATES, n_iter=params.hmm_max_iters, tol=1e-3, min_covar=MIN_COVAR,
                  init_params="", params="stmc", implementation="scaling")
    if params.detector == "student_t":
        return StudentTHMM(dof=params.student_t_dof, **common)
    return GaussianHMM(covariance_type="diag", **common)


def _initial_state(model: GaussianHMM, X: np.ndarray) -> None:
    order = np.argsort(X[:, 1], kind="stable")
    groups = np.array_split(order, N_STATES)
    model.startprob_ = np.full(N_STATES, 1.0 / N_STATES)
    off = 0.05 / (N_STATES - 1)
    model.transmat_ = np.full((N_STATES, N_STATES), off) + np.eye(N_STATES) * (0.95 - off)
    model.means_ = np.array([X[g].mean(axis=0) for g in groups])
    model.covars_ = np.array([np.maximum(X[g].var(axis=0), MIN_COVAR) for g in groups])


def _labelled_filter(model: GaussianHMM, X: np.ndarray) -> np.ndarray:
    _, forward = _hmmc.forward_log(model.startprob_, model.transmat_, model._compute_log_likelihood(X))
    probs = np.exp(forward - forward.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    bear, ranging, bull = np.argsort(model.means_[:, 1])
    return probs[:, [bull, bear, ranging]]


def _reference_probabilities(features: np.ndarray, params: HmmParams) -> tuple[np.ndarray, int]:
    """The hmmlearn chain's probabilities and how many of its refits failed."""
    days = features.shape[0]
    out = np.full((days, N_STATES), np.nan)
    valid = np.flatnonzero(~np.isnan(features).any(axis=1))
    if valid.size < params.hmm_min_observations:
        return out, 0
    first = int(valid[0])
    X = features[first:]
    model = _new_model(params)
    fitted, failures = False, 0
    for refit in range(params.hmm_min_observations - 1, X.shape[0], params.hmm_refit_interval):
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
            failures += 1
            for key, value in backup.items():
                setattr(model, key, value)
            if not fitted:
                continue
        fitted = True
        stop = min(refit + params.hmm_refit_interval, X.shape[0])
        out[first + refit : first + stop] = _labelled_filter(model, X[:stop])[refit:stop]
    return out, failures


# --------------------------------------------------------------------------- equivalence
def _assert_reproduces(features: np.ndarray, params: HmmParams) -> int:
    fast = _hmm_probabilities(features, params)
    reference, failures = _reference_probabilities(features, params)
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(reference))
    np.testing.assert_allclose(fast, reference, rtol=0, atol=TOLERANCE)
    return failures


@pytest.fixture(scope="module")
def market() -> np.ndarray:
    """Features of the default synthetic universe's market index (2,922 days)."""
    return regime_features(load_universe("synthetic"))


@pytest.mark.parametrize("detector", ["gaussian", "student_t"])
@pytest.mark.parametrize("interval, min_obs", [(7, 90), (3, 30), (21, 180)])
def test_chain_reproduces_hmmlearn_on_the_synthetic_market(market, detector, interval, min_obs):
    params = HmmParams(detector=detector, hmm_refit_interval=interval, hmm_min_observations=min_obs)
    _assert_reproduces(market[:1500], params)


@pytest.mark.parametrize("dof", [2.5, 30.0])
def test_chain_reproduces_hmmlearn_with_other_settings(market, dof):
    _assert_reproduces(market[:900], HmmParams(detector="student_t", student_t_dof=dof, hmm_max_iters=5))
    _assert_reproduces(market[:900], HmmParams(hmm_max_iters=1, hmm_refit_interval=10, hmm_min_observations=20))


def test_chain_reproduces_hmmlearn_when_refits_fail():
    """A crash far outside every state underflows the scaled forward pass: those refits fail and keep the model."""
    rng = np.random.default_rng(5)
    features = np.column_stack([rng.normal(0, 1, 400), np.cumsum(rng.normal(0, 1, 400)) * 0.3])
    features[:30] = np.nan
    features[260, 0] = -4000.0  # beyond any variance: every state's density underflows
    failures = _assert_reproduces(features, HmmParams(hmm_refit_interval=5, hmm_min_observations=60))
    assert failures > 0


def test_too_few_observations_give_no_probabilities(market):
    params = HmmParams(hmm_min_observations=200)
    assert np.isnan(_hmm_probabilities(market[:200], params)).all()
