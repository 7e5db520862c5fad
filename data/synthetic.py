"""Synthetic daily crypto universes with a known market-regime path, and their calibration statistics.

``generate(name, seed)`` draws one of the named universes in :data:`UNIVERSES` as a
:class:`~data.candles.Candles` (``days x tokens`` OHLCV matrices, NaN where a token has no candle)
whose ``regimes`` hold the true daily regime (bull, bear, ranging). The process, in words:

* **Regimes**: a sticky 3-state Markov chain (daily stay probability ``regime_stay``; on leaving,
  the next regime is drawn from ``regime_switch``). Each regime sets the market's log drift per year
  and a multiplier of the market volatility.
* **Market factor** ``m_t = drift[regime_t] / 365 + vol_t * h_t * z_t``: Student-t ``z`` scaled to
  unit variance, ``h_t`` a GARCH(1,1) scale with unit long-run variance, ``vol_t`` the market's
  daily volatility times the regime multiplier.
* **Crypto tokens** (BTC, ETH, majors, alts): log return ``beta_i * m_t + idio_i * g_it * e_it +
  trend_it + crash_it``: per-token Student-t GARCH noise, trend episodes (persistent drifts of a few
  %/week lasting weeks, Poisson-timed, random sign) and, for alts, a possible collapse (a -90 % or
  worse crash over weeks, after which the token is delisted). Alts list at random days.
* **Stablecoins** hover at 1.0 (AR(1) noise) with rare temporary depegs; one may depeg for good
  and be delisted. **Gold** (``PAXGUSDT``): ~15 %/yr vol, small drift, tiny market beta. **Fiat**
  (``EURUSDT``): AR(1) around an anchor path in log space, ~7 %/yr vol.
* Candles: ``open_t = close_{t-1}`` (24/7 markets; on the first day ``open = close * exp(-r)``),
  wicks exponential in the token's conditional volatility, volume (base-asset units) proportional to
  a per-token dollar level times ``(0.5 + |r_t| / sigma_t)`` and lognormal noise, divided by close.

Same ``(name, seed)`` gives bit-identical arrays (the RNG is seeded from ``seed`` and a CRC-32 of the
name); different seeds give independent draws.

The calibration statistics and the report against real data: :mod:`data.calibration`
(``python -m data.synthetic --report`` runs it).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np

from data.candles import REGIME_NAMES, Candles

DAYS_PER_YEAR = 365.0
"""Crypto trades every day: annualise daily statistics with 365 days."""

GENERATOR_ID = "a8ee2ba7bd5b01fe52db96d630c54a578449c4382050b8a8018ebbdb4d2ca7f7"
"""The generator's identity in every synthetic instance's fingerprint (``instances.Instance.fingerprint``): a new
value makes every synthetic instance a new one (its random pools and emulators must be rebuilt). It is the
SHA-256 of this module's source when the committed pools were built (before the calibration report moved to
:mod:`data.calibration`); ``tests/test_synthetic.py`` pins the generated candles' digests, so a change of what
:func:`generate` draws fails there and must come with a new identity."""

MAJOR_NAMES: tuple[str, ...] = (
    "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "AVAXUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT", "TRXUSDT",
)
ALT_NAMES: tuple[str, ...] = (
    "ATOMUSDT", "NEARUSDT", "UNIUSDT", "AAVEUSDT", "FILUSDT", "ALGOUSDT", "XLMUSDT", "VETUSDT", "HBARUSDT",
    "ICPUSDT", "ETCUSDT", "BCHUSDT", "APTUSDT", "ARBUSDT", "OPUSDT", "SUIUSDT", "SEIUSDT", "INJUSDT", "TIAUSDT",
    "RNDRUSDT", "GRTUSDT", "SANDUSDT", "MANAUSDT", "AXSUSDT", "FTMUSDT", "EGLDUSDT", "THETAUSDT", "XTZUSDT",
    "EOSUSDT", "KSMUSDT", "ZECUSDT", "DASHUSDT", "COMPUSDT", "MKRUSDT", "SNXUSDT", "CRVUSDT", "LDOUSDT",
    "RUNEUSDT", "KAVAUSDT", "CHZUSDT", "ENJUSDT", "ZILUSDT", "ONEUSDT", "IOTAUSDT", "NEOUSDT", "QTUMUSDT",
    "WAVESUSDT", "SHIBUSDT", "PEPEUSDT", "WIFUSDT",
)
"""Realistic names for the first alts; further alts are named ``TK001USDT``, ``TK002USDT``, ..."""

STABLE_NAMES: tuple[str, ...] = ("USDCUSDT", "TUSDUSDT", "FDUSDUSDT", "DAIUSDT")
GOLD_NAME, FIAT_NAME = "PAXGUSDT", "EURUSDT"
CRYPTO_KINDS: frozenset[str] = frozenset({"btc", "eth", "major", "alt"})
"""Token kinds that follow the crypto market (the others: ``stable``, ``gold``, ``fiat``)."""


@dataclass(frozen=True)
class UniverseSpec:
    """A named synthetic universe and the knobs of its generative process.

    Rates are per year, volatilities annualised (365 days), drifts are log returns per year unless
    the name says otherwise. Regime tuples are ordered like :data:`~data.candles.REGIME_NAMES`
    (bull, bear, ranging).
    """

    name: str
    n_tokens: int
    start: str
    end: str
    crypto: bool = True  # BTC, ETH, majors and alts present (False: only stables, gold, fiat)
    n_majors: int = 10
    stables: tuple[str, ...] = STABLE_NAMES
    late_stables: tuple[str, ...] = ("FDUSDUSDT",)  # list at a random day of the middle third of the span
    gold: bool = True
    fiat: bool = True
    # regime chain
    regime_stay: float = 0.992  # daily stay probability: mean run 125 days (~4 months)
    regime_switch: tuple[tuple[float, float, float], ...] = ((0.0, 0.5, 0.5), (0.4, 0.0, 0.6), (0.6, 0.4, 0.0))
    initial_regime: str | None = None  # None: drawn uniformly from the seed
    regime_drift: tuple[float, float, float] = (1.0, -1.0, 0.0)  # market log drift per year
    regime_vol: tuple[float, float, float] = (1.0, 1.15, 0.8)  # multiplier of market_vol
    # market factor
    market_vol: float = 0.7
    market_dof: float = 5.0
    garch: tuple[float, float] = (0.1, 0.83)  # (alpha, beta); persistence alpha + beta
    # crypto tokens
    eth_beta: float = 1.2
    major_beta: tuple[float, float] = (0.9, 1.4)
    alt_beta: tuple[float, float] = (0.8, 1.6)
    eth_idio_vol: float = 0.45
    major_idio_vol: float = 0.45  # lognormal median
    alt_idio_vol: float = 0.58  # lognormal median
    idio_vol_spread: float = 0.25  # log-sd of idiosyncratic vols across tokens
    idio_dof: float = 3.0
    idio_garch: tuple[float, float] = (0.06, 0.9)
    btc_idio_vol: float = 0.08
    episode_rate: float = 1.5  # trend episodes per token and year
    alt_drift: tuple[float, float] = (-0.3, 0.2)  # (mean, sd) across alts of a persistent log drift per year
    major_drift: tuple[float, float] = (-0.1, 0.1)  # the same for majors
    transient_vol: float = 0.06  # stationary std of a mean-reverting log-price deviation of each crypto token but BTC
    transient_halflife_days: float = 10.0  # its half-life (pumps and dumps that fade: short-term reversal)
    episode_days: tuple[int, int] = (14, 70)
    episode_weekly_drift: tuple[float, float] = (0.02, 0.06)  # |drift| per week (log), sign random
    initial_alt_fraction: float = 0.2  # alts listed on the first day
    listing_skew: float = 1.6  # later listings at day ~ Beta(1, listing_skew) of the span: more early
    collapse_rate: float = 0.04  # hazard per listed alt and year of a collapse followed by delisting
    collapse_days: tuple[int, int] = (14, 60)
    collapse_depth: tuple[float, float] = (0.9, 0.98)
    btc_price: float = 7200.0
    eth_price: float = 130.0
    # stablecoins
    stable_noise: float = 0.0007  # std of close around 1.0
    stable_ar: float = 0.3  # AR(1) coefficient of the deviation
    depeg_rate: float = 0.15  # temporary depegs per stablecoin and year
    depeg_depth: tuple[float, float] = (0.03, 0.1)
    depeg_days: tuple[float, float] = (1.5, 5.0)  # e-folding time of the recovery
    stable_collapse_prob: float = 0.3  # probability that one stablecoin depegs for good and is delisted
    forced_delist: tuple[tuple[str, str], ...] = ()  # (token, last day with a candle)
    # gold and fiat
    gold_vol: float = 0.15
    gold_drift: float = 0.06
    gold_beta: float = 0.03
    gold_price: float = 1520.0
    fiat_vol: float = 0.07
    fiat_anchor: tuple[tuple[str, float], ...] = (("2020-01-01", 1.12), ("2027-12-31", 1.10))
    fiat_halflife_days: float = 250.0

    @property
    def dates(self) -> np.ndarray:
        """``(days,)`` ``datetime64[D]`` from ``start`` to ``end`` inclusive."""
        return np.arange(np.datetime64(self.start, "D"), np.datetime64(self.end, "D") + 1)


UNIVERSES: dict[str, UniverseSpec] = {
    "synthetic": UniverseSpec("synthetic", 437, "2020-01-01", "2027-12-31"),
    "synthetic-small": UniverseSpec("synthetic-small", 40, "2020-01-01", "2027-12-31", n_majors=6),
    "bear-basket": UniverseSpec(
        "bear-basket", 4, "2022-05-01", "2022-12-31", crypto=False, stables=("USDCUSDT", "TUSDUSDT"),
        late_stables=(), initial_regime="bear", regime_stay=0.995, stable_noise=0.0005, depeg_rate=0.1,
        stable_collapse_prob=0.0, forced_delist=(("USDCUSDT", "2022-09-26"), ("TUSDUSDT", "2022-09-26")),
        gold_price=1860.0, gold_drift=-0.1, fiat_vol=0.1,
        fiat_anchor=(("2022-05-01", 1.055), ("2022-07-14", 1.0), ("2022-09-28", 0.965), ("2022-11-15", 1.035),
                     ("2022-12-31", 1.07)),
        fiat_halflife_days=15.0,
    ),
}
"""The named universes ``load_universe`` knows; ``generate(name, seed)`` draws one."""


# --------------------------------------------------------------------------- entry point
def generate(name: str = "synthetic", seed: int = 0) -> Candles:
    """Draw the named universe with ``seed`` (memoised: the same object for the same name and seed).

    Raises:
        ValueError: unknown ``name`` (the message lists the known ones) or a negative ``seed``.
    """
    if name not in UNIVERSES:
        raise ValueError(f"unknown synthetic universe {name!r}; known: {', '.join(sorted(UNIVERSES))}")
    if int(seed) < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return _generate(name, int(seed))


@lru_cache(maxsize=16)
def _generate(name: str, seed: int) -> Candles:
    spec = UNIVERSES[name]
    streams = np.random.SeedSequence([seed, zlib.crc32(name.encode())]).spawn(7)
    rng = dict(zip(("regime", "market", "crypto", "stable", "gold", "fiat", "candle"),
                   (np.random.default_rng(s) for s in streams)))
    n_days = spec.dates.size
    regimes = simulate_regimes(spec, n_days, rng["regime"])
    market, market_sigma = simulate_market(spec, regimes, rng["market"])
    blocks = []
    if spec.crypto:
        blocks.append(_crypto_block(spec, market, market_sigma, rng["crypto"]))
    if spec.fiat:
        blocks.append(_fiat_block(spec, rng["fiat"]))
    if spec.gold:
        blocks.append(_gold_block(spec, market, rng["gold"]))
    if spec.stables:
        blocks.append(_stable_block(spec, n_days, rng["stable"]))
    block = _Block.concat(blocks)
    if len(block.tokens) != spec.n_tokens:
        raise ValueError(f"{name}: drew {len(block.tokens)} tokens, the spec says {spec.n_tokens}")
    _apply_forced_delistings(spec, block)
    return _candles(spec, seed, regimes, block, rng["candle"])


# --------------------------------------------------------------------------- building blocks
def student_t(rng: np.random.Generator, dof: float, size: int | tuple[int, ...]) -> np.ndarray:
    """Student-t draws with ``dof`` degrees of freedom scaled to unit variance (``dof > 2``)."""
    return rng.standard_t(dof, size) / np.sqrt(dof / (dof - 2.0))


def garch_scale(z: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """GARCH(1,1) conditional std ``g`` for unit-variance shocks ``z`` (``days x series``).

    ``g_t^2 = (1 - alpha - beta) + alpha * (g_{t-1} z_{t-1})^2 + beta * g_{t-1}^2`` with ``g_0 = 1``,
    so ``g * z`` has unit long-run variance and volatility clusters with persistence ``alpha + beta``.
    """
    var = np.empty_like(z)
    var[0] = 1.0
    omega = 1.0 - alpha - beta
    shock = z * z
    for t in range(1, z.shape[0]):
        var[t] = omega + var[t - 1] * (alpha * shock[t - 1] + beta)
    return np.sqrt(var)


def ar1(noise: np.ndarray, phi: float) -> np.ndarray:
    """``x_t = phi * x_{t-1} + noise_t`` along axis 0 (``days x series``), ``x_0 = noise_0``."""
    out = np.empty_like(noise)
    out[0] = noise[0]
    for t in range(1, noise.shape[0]):
        out[t] = phi * out[t - 1] + noise[t]
    return out


def simulate_regimes(spec: UniverseSpec, n_days: int, rng: np.random.Generator) -> np.ndarray:
    """``(days,)`` int8 regime path (indices into ``REGIME_NAMES``) of the sticky Markov chain."""
    if spec.initial_regime is None:
        state = int(rng.integers(len(REGIME_NAMES)))
    else:
        state = REGIME_NAMES.index(spec.initial_regime)
    switch_cdf = np.cumsum(np.asarray(spec.regime_switch), axis=1)
    stay_draw, next_draw = rng.random(n_days), rng.random(n_days)
    path = np.empty(n_days, dtype=np.int8)
    for t in range(n_days):
        if t and stay_draw[t] >= spec.regime_stay:
            state = int(np.searchsorted(switch_cdf[state], next_draw[t], side="right"))
        path[t] = state
    return path


def simulate_market(spec: UniverseSpec, regimes: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Market factor log returns and their conditional daily std, both ``(days,)``."""
    z = student_t(rng, spec.market_dof, regimes.size)
    scale = garch_scale(z[:, None], *spec.garch)[:, 0]
    sigma = spec.market_vol / np.sqrt(DAYS_PER_YEAR) * np.asarray(spec.regime_vol)[regimes] * scale
    drift = np.asarray(spec.regime_drift)[regimes] / DAYS_PER_YEAR
    return drift + sigma * z, sigma


@dataclass
class _Block:
    """Tokens drawn together: latent log closes and log returns over the whole span (``days x n``).

    ``ret`` is the log return into each day (``open = close * exp(-ret)``); ``sigma`` is the daily
    conditional std that sizes wicks and volume; the token trades on days ``first..last`` (day
    indices, inclusive); ``dollar_volume`` is its typical daily quote volume in USDT.
    """

    tokens: list[str]
    kinds: list[str]
    log_close: np.ndarray
    ret: np.ndarray
    sigma: np.ndarray
    first: np.ndarray
    last: np.ndarray
    dollar_volume: np.ndarray

    @classmethod
    def concat(cls, blocks: Sequence["_Block"]) -> "_Block":
        return cls(
            tokens=[t for b in blocks for t in b.tokens], kinds=[k for b in blocks for k in b.kinds],
            log_close=np.hstack([b.log_close for b in blocks]), ret=np.hstack([b.ret for b in blocks]),
            sigma=np.hstack([b.sigma for b in blocks]), first=np.concatenate([b.first for b in blocks]),
            last=np.concatenate([b.last for b in blocks]),
            dollar_volume=np.concatenate([b.dollar_volume for b in blocks]),
        )


def _pulses(n_days: int, n_tokens: int, token: np.ndarray, start: np.ndarray, length: np.ndarray,
            daily: np.ndarray) -> np.ndarray:
    """``days x tokens`` sum of constant daily drifts ``daily`` on days ``start .. start+length-1``."""
    edges = np.zeros((n_days + 1, n_tokens))
    np.add.at(edges, (np.minimum(start, n_days), token), daily)
    np.add.at(edges, (np.minimum(start + length, n_days), token), -daily)
    return np.cumsum(edges[:-1], axis=0)


def _crypto_names(spec: UniverseSpec) -> tuple[list[str], list[str]]:
    """Names and kinds of the crypto tokens: BTC, ETH, majors, then alts (real names, then ``TKnnn``)."""
    n_other = len(spec.stables) + spec.gold + spec.fiat
    n_alts = spec.n_tokens - 2 - spec.n_majors - n_other
    if n_alts < 0 or spec.n_majors > len(MAJOR_NAMES):
        raise ValueError(f"{spec.name}: {spec.n_tokens} tokens cannot hold BTC, ETH, {spec.n_majors} majors "
                         f"and {n_other} stable/gold/fiat tokens")
    alts = list(ALT_NAMES[:n_alts]) + [f"TK{i:03d}USDT" for i in range(1, n_alts - len(ALT_NAMES) + 1)]
    names = ["BTCUSDT", "ETHUSDT", *MAJOR_NAMES[:spec.n_majors], *alts]
    kinds = ["btc", "eth"] + ["major"] * spec.n_majors + ["alt"] * n_alts
    return names, kinds


def _crypto_block(spec: UniverseSpec, market: np.ndarray, market_sigma: np.ndarray,
                  rng: np.random.Generator) -> _Block:
    """BTC, ETH, majors and alts: ``beta * market + GARCH-t noise + trend episodes + collapses``."""
    names, kinds = _crypto_names(spec)
    n_days, n = market.size, len(names)
    kind = np.asarray(kinds)
    is_alt = kind == "alt"
    beta = np.where(is_alt, rng.uniform(*spec.alt_beta, n), rng.uniform(*spec.major_beta, n))
    beta[kind == "btc"], beta[kind == "eth"] = 1.0, spec.eth_beta
    spread = np.exp(spec.idio_vol_spread * rng.standard_normal(n))
    idio_vol = np.where(is_alt, spec.alt_idio_vol, spec.major_idio_vol) * spread
    idio_vol[kind == "btc"], idio_vol[kind == "eth"] = spec.btc_idio_vol, spec.eth_idio_vol
    idio_daily = idio_vol / np.sqrt(DAYS_PER_YEAR)
    z = student_t(rng, spec.idio_dof, (n_days, n))
    idio_sigma = idio_daily * garch_scale(z, *spec.idio_garch)

    first = np.zeros(n, dtype=np.int64)
    late = is_alt & (rng.random(n) >= spec.initial_alt_fraction)
    first[late] = 1 + (rng.beta(1.0, spec.listing_skew, n)[late] * (n_days - 61)).astype(np.int64)

    trends = _trend_episodes(spec, n_days, kind != "btc", rng)
    crash, last = _collapses(spec, n_days, first, is_alt, rng)
    drift = np.where(is_alt, rng.normal(*spec.alt_drift, n), rng.normal(*spec.major_drift, n))
    drift[kind == "btc"] = drift[kind == "eth"] = 0.0
    ret = beta * market[:, None] + idio_sigma * z + trends + crash + drift / DAYS_PER_YEAR
    ret += _transient(spec, n_days, kind != "btc", rng)

    price = np.where(is_alt, np.exp(rng.uniform(np.log(1e-3), np.log(50.0), n)),
                     np.exp(rng.uniform(np.log(0.05), np.log(300.0), n)))
    price[kind == "btc"], price[kind == "eth"] = spec.btc_price, spec.eth_price
    cum = np.cumsum(ret, axis=0)
    log_close = np.log(price) + cum - cum[first, np.arange(n)]
    sigma = np.sqrt((beta * market_sigma[:, None]) ** 2 + idio_sigma ** 2)
    dollar = np.where(is_alt, 1e7 * np.exp(rng.standard_normal(n)), 1e8 * np.exp(0.5 * rng.standard_normal(n)))
    dollar[kind == "btc"], dollar[kind == "eth"] = 1.5e9, 7e8
    return _Block(names, kinds, log_close, ret, sigma, first, last, dollar)


def _transient(spec: UniverseSpec, n_days: int, eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``days x tokens`` log-return contribution of a stationary AR(1) log-price deviation (short-term reversal).

    The deviation ``x_t = phi x_{t-1} + eta_t`` (``phi`` from ``transient_halflife_days``) has stationary std
    ``transient_vol``; its daily change enters the returns, so a move away from trend is given back over weeks.
    """
    phi = 0.5 ** (1.0 / spec.transient_halflife_days)
    noise = rng.standard_normal((n_days, eligible.size)) * spec.transient_vol * np.sqrt(1.0 - phi ** 2)
    noise[0] /= np.sqrt(1.0 - phi ** 2)  # start in the stationary distribution
    deviation = ar1(noise, phi) * eligible
    return np.diff(deviation, axis=0, prepend=0.0)


def _trend_episodes(spec: UniverseSpec, n_days: int, eligible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``days x tokens`` drift of Poisson-timed trend episodes (random sign, weeks long)."""
    n = eligible.size
    counts = rng.poisson(spec.episode_rate * n_days / DAYS_PER_YEAR, n) * eligible
    token = np.repeat(np.arange(n), counts)
    start = rng.integers(0, n_days, token.size)
    length = rng.integers(spec.episode_days[0], spec.episode_days[1] + 1, token.size)
    daily = rng.choice((-1.0, 1.0), token.size) * rng.uniform(*spec.episode_weekly_drift, token.size) / 7.0
    return _pulses(n_days, n, token, start, length, daily)


def _collapses(spec: UniverseSpec, n_days: int, first: np.ndarray, eligible: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Collapse drifts (``days x tokens``) and the last listed day of each token (``(tokens,)``).

    An eligible token collapses after an exponential waiting time (rate ``collapse_rate`` per year)
    from its listing: its log price falls by ``log(1 - depth)`` over ``collapse_days``, and its last
    candle is the crash's last day. Tokens whose crash would not end within the span never collapse.
    """
    n = first.size
    wait = rng.exponential(DAYS_PER_YEAR / spec.collapse_rate, n).astype(np.int64)
    length = rng.integers(spec.collapse_days[0], spec.collapse_days[1] + 1, n)
    depth = rng.uniform(*spec.collapse_depth, n)
    start = first + 30 + wait
    hit = eligible & (start + length < n_days)
    last = np.where(hit, start + length - 1, n_days - 1)
    token = np.flatnonzero(hit)
    drift = _pulses(n_days, n, token, start[hit], length[hit], np.log1p(-depth[hit]) / length[hit])
    return drift, last


def _stable_block(spec: UniverseSpec, n_days: int, rng: np.random.Generator) -> _Block:
    """Stablecoins: ``close = (1 + AR(1) noise) * (1 - depeg dip)``; maybe one permanent depeg."""
    names = list(spec.stables)
    n = len(names)
    phi = spec.stable_ar
    noise = ar1(rng.standard_normal((n_days, n)) * spec.stable_noise * np.sqrt(1 - phi ** 2), phi)
    first = np.zeros(n, dtype=np.int64)
    late = np.isin(names, spec.late_stables)
    first[late] = rng.integers(n_days // 3, 2 * n_days // 3, n)[late]
    last = np.full(n, n_days - 1, dtype=np.int64)
    dip = np.zeros((n_days, n))
    days = np.arange(n_days)
    for i in range(n):
        n_events = rng.poisson(spec.depeg_rate * (n_days - first[i]) / DAYS_PER_YEAR)
        for t0, depth, tau in zip(rng.integers(first[i], n_days, n_events), rng.uniform(*spec.depeg_depth, n_events),
                                  rng.uniform(*spec.depeg_days, n_events)):
            after = days >= t0
            dip[after, i] = np.maximum(dip[after, i], depth * np.exp(-(days[after] - t0) / tau))
    if rng.random() < spec.stable_collapse_prob:
        i = int(rng.integers(n))
        t0 = int(rng.integers(max(first[i], n_days // 5), 9 * n_days // 10))
        ramp = int(rng.integers(2, 7))
        depth = rng.uniform(0.05, 0.12)
        dip[t0:t0 + ramp, i] = depth * np.arange(1, ramp + 1) / ramp
        last[i] = t0 + ramp - 1
    log_close = np.log1p(noise) + np.log1p(-dip)
    ret = np.vstack([np.zeros((1, n)), np.diff(log_close, axis=0)])
    sigma = spec.stable_noise + np.abs(ret)
    return _Block(names, ["stable"] * n, log_close, ret, sigma, first, last, np.full(n, 2e8))


def _gold_block(spec: UniverseSpec, market: np.ndarray, rng: np.random.Generator) -> _Block:
    """Gold token: small drift, ``gold_vol`` GARCH(0.05, 0.9) t5 noise, ``gold_beta`` to the crypto market."""
    n_days = market.size
    z = student_t(rng, 5.0, (n_days, 1))
    sigma = spec.gold_vol / np.sqrt(DAYS_PER_YEAR) * garch_scale(z, 0.05, 0.9)
    ret = spec.gold_drift / DAYS_PER_YEAR + spec.gold_beta * market[:, None] + sigma * z
    log_close = np.log(spec.gold_price) + np.cumsum(ret, axis=0)
    return _Block([GOLD_NAME], ["gold"], log_close, ret, sigma, np.zeros(1, np.int64),
                  np.full(1, n_days - 1), np.full(1, 3e7))


def _fiat_block(spec: UniverseSpec, rng: np.random.Generator) -> _Block:
    """Fiat pair: log close = log anchor path + AR(1) deviation (half-life ``fiat_halflife_days``)."""
    dates = spec.dates
    knots = np.array([np.datetime64(d, "D") for d, _ in spec.fiat_anchor]).astype(np.int64)
    anchor = np.interp(dates.astype(np.int64), knots, np.log([level for _, level in spec.fiat_anchor]))
    daily = spec.fiat_vol / np.sqrt(DAYS_PER_YEAR)
    phi = 0.5 ** (1.0 / spec.fiat_halflife_days)
    noise = rng.standard_normal((dates.size, 1)) * daily
    noise[0] /= np.sqrt(1 - phi ** 2)  # start in the stationary distribution
    log_close = anchor[:, None] + ar1(noise, phi)
    ret = np.vstack([np.zeros((1, 1)), np.diff(log_close, axis=0)])
    return _Block([FIAT_NAME], ["fiat"], log_close, ret, np.full((dates.size, 1), daily),
                  np.zeros(1, np.int64), np.full(1, dates.size - 1), np.full(1, 5e7))


def _apply_forced_delistings(spec: UniverseSpec, block: _Block) -> None:
    """Set the last day of the tokens in ``spec.forced_delist`` (never extends a listing)."""
    start = np.datetime64(spec.start, "D")
    for token, day in spec.forced_delist:
        i = block.tokens.index(token)
        block.last[i] = min(block.last[i], int((np.datetime64(day, "D") - start).astype(np.int64)))


def _candles(spec: UniverseSpec, seed: int, regimes: np.ndarray, block: _Block, rng: np.random.Generator) -> Candles:
    """Turn latent paths into OHLCV candles, NaN outside each token's listing range."""
    n_days, n = block.log_close.shape
    days = np.arange(n_days)[:, None]
    listed = (days >= block.first) & (days <= block.last)
    close = np.exp(block.log_close)
    open_ = np.vstack([close[:1] * np.exp(-block.ret[:1]), close[:-1]])  # 24/7: open_t = close_{t-1}
    wick = 0.4 * block.sigma
    high = np.maximum(open_, close) * np.exp(wick * rng.exponential(1.0, (n_days, n)))
    low = np.minimum(open_, close) * np.exp(-wick * rng.exponential(1.0, (n_days, n)))
    activity = 0.5 + np.abs(block.ret) / block.sigma
    volume = block.dollar_volume * activity * np.exp(0.4 * rng.standard_normal((n_days, n))) / close
    for matrix in (open_, high, low, close, volume):
        matrix[~listed] = np.nan
    dates = spec.dates
    return Candles(
        dates=dates, tokens=tuple(block.tokens), open=open_, high=high, low=low, close=close, volume=volume,
        name=spec.name, regimes=regimes,
        meta={
            "seed": seed, "universe": spec.name, "kinds": dict(zip(block.tokens, block.kinds)),
            "listed": {t: str(dates[f]) for t, f in zip(block.tokens, block.first)},
            "delisted": {t: str(dates[l]) for t, l in zip(block.tokens, block.last) if l < n_days - 1},
        },
    )


if __name__ == "__main__":  # the documented command: the report lives in data.calibration
    from data.calibration import main

    raise SystemExit(main())
