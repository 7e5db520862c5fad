"""Shared test fixtures: the real data folder (``../shared/data``), skipped cleanly when absent."""

from __future__ import annotations

from pathlib import Path

import os
import tempfile

import numpy as np
import pytest

from data.candles import Candles

# every test session starts with an empty on-disk cache (strategy.diskcache): nothing computed by
# an earlier session or by a user run can answer a test
os.environ["GEMSEARCH_CACHE"] = tempfile.mkdtemp(prefix="gemsearch-test-cache-")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` next to the repository; tests needing it skip when it is missing."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} not present")
    return SHARED_DATA


def random_universe(seed: int = 0, days: int = 160, tokens: int = 6, gaps: bool = True) -> Candles:
    """A small random-walk universe with staggered listings, a delisting and a gap (for oracle tests)."""
    rng = np.random.default_rng(seed)
    log_ret = rng.normal(0.0005, 0.03, size=(days, tokens)) + rng.normal(0, 0.002, size=(1, tokens))
    close = 10.0 * np.exp(np.cumsum(log_ret, axis=0))
    open_ = np.vstack([close[:1], close[:-1]])
    spread = np.abs(rng.normal(0, 0.02, size=(days, tokens))) * close
    high = np.maximum(open_, close) + spread
    low = np.minimum(open_, close) - spread * 0.5
    volume = rng.uniform(1e3, 1e5, size=(days, tokens))
    if gaps:
        close[:20, 1] = np.nan  # listed late
        close[120:, 2] = np.nan  # delisted
        close[70, 3] = np.nan  # one missing candle
    for m in (open_, high, low, volume):
        m[np.isnan(close)] = np.nan
    dates = np.datetime64("2022-01-01") + np.arange(days)
    return Candles(dates=dates, tokens=tuple(f"T{i}USDT" for i in range(tokens)), open=open_, high=high, low=low,
                   close=close, volume=volume, name=f"random{seed}")


POSTGRES_SERVER = Path(__file__).resolve().parents[1] / "scripts" / "postgres-server"


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL storage URL: ``$GEMSEARCH_TEST_POSTGRES`` (started by ``.ci/run``), or a throwaway
    server started here with ``scripts/postgres-server``; skipped with the reason when neither is possible
    (a failure instead when ``GEMSEARCH_REQUIRE_POSTGRES`` is set, as in CI)."""
    url = os.environ.get("GEMSEARCH_TEST_POSTGRES")
    if url:
        yield url
        return
    import socket
    import subprocess

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    folder = tempfile.mkdtemp(prefix="gemsearch-postgres-")  # not under pytest's 0700 tmp: the server user must enter
    started = subprocess.run([str(POSTGRES_SERVER), "start", folder, str(port)], capture_output=True, text=True)
    if started.returncode != 0:
        reason = f"PostgreSQL could not start ({started.stderr.strip()[-400:]}); see scripts/postgres-server"
        if os.environ.get("GEMSEARCH_REQUIRE_POSTGRES"):
            pytest.fail(reason)
        pytest.skip(reason)
    try:
        yield started.stdout.strip()
    finally:
        subprocess.run([str(POSTGRES_SERVER), "stop", folder], capture_output=True)


class DiesAt:
    """``problem`` whose process "dies" on its evaluation number ``at`` (1-based): it raises ``error`` there
    (``KeyboardInterrupt`` by default, as ``kill -INT`` does). Every other attribute is ``problem``'s."""

    def __init__(self, problem, at: int, error: type[BaseException] = KeyboardInterrupt) -> None:
        self.problem, self.at, self.error, self.calls = problem, at, error, 0

    def __getattr__(self, name: str):
        return getattr(self.problem, name)

    def evaluate(self, params):
        self.calls += 1
        if self.calls == self.at:
            raise self.error("killed")
        return self.problem.evaluate(params)

