"""Problem instances and suites: contract 2.0 splits, shipped suites, bad input, sealing per instance."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import textwrap

import numpy as np
import pytest

from conftest import random_universe
from data import load_universe
from data.candles import Candles
from env import Objective
from instances import Problem
from harness import DEFAULT_SPLIT, Split, WindowError, evaluate, evaluate_holdout
from instances import Instance, InstanceError, find_instance, load_suite
from instances.suite import SUITES_DIR
from runs import evaluate as evaluate_cli
from runs import instances as instances_cli
from strategy.gem import gem_fit, gem_portfolio
from strategy.params import GemParams


# --------------------------------------------------------------------------- contract 2.0: the split is an argument
def _long(days: int = 400) -> Candles:
    base = random_universe(seed=3, days=days, tokens=3, gaps=False)
    return dataclasses.replace(base, dates=np.datetime64("2023-01-01") + np.arange(days), name="long")


def test_evaluate_cuts_at_the_splits_search_end_and_the_holdout_sees_only_its_window():
    candles = _long()
    split = Split("2023-03-01", "2023-08-31", holdout_start="2023-09-01", holdout_end="2023-11-30", warmup_days=30)
    seen: list[np.datetime64] = []

    def spying_fit(c, params):
        seen.append(c.dates[-1])
        return gem_fit(c, params)

    result = evaluate(GemParams(), candles, spying_fit, gem_portfolio, split=split)
    assert max(seen) == np.datetime64("2023-08-31") and result.first_day == "2023-03-01"
    assert result.last_day == "2023-08-31" and not result.holdout
    with pytest.raises(WindowError, match="sealed holdout"):
        evaluate(GemParams(), candles, gem_fit, gem_portfolio, split=split, end="2023-09-15")
    seen.clear()
    held = evaluate_holdout(GemParams(), candles, spying_fit, gem_portfolio, split=split)
    assert held.holdout and (held.first_day, held.last_day) == ("2023-09-01", "2023-11-30")
    assert max(seen) == np.datetime64("2023-11-30") and held.base["days"] == 91


def test_a_split_refuses_overlapping_or_reversed_windows():
    with pytest.raises(WindowError, match="overlap"):
        Split("2023-01-01", "2023-06-30", holdout_start="2023-06-30")
    with pytest.raises(WindowError, match="before it starts"):
        Split("2023-06-01", "2023-01-01")
    with pytest.raises(WindowError, match="warmup_days"):
        Split("2023-01-01", "2023-06-30", warmup_days=-1)
    assert DEFAULT_SPLIT.holdout_start == dt.date(2026, 1, 1)


def test_sealed_candles_hold_no_later_day_no_later_listing_and_no_seed():
    full = load_universe("synthetic-small", seed=3)
    assert full.meta["seed"] == 3 and any(d > "2023-12-31" for d in full.meta["listed"].values())
    cut = full.sealed("2023-12-31", name="an-instance")
    assert cut.dates[-1] == np.datetime64("2023-12-31") and cut.name == "an-instance"
    assert set(cut.meta) <= {"kinds", "listed", "delisted"}  # no seed, no universe name to regenerate it
    assert all(d <= "2023-12-31" for key in ("listed", "delisted") for d in cut.meta[key].values())
    assert cut.listed.any(axis=0).all()  # a token that lists later is not even named
    later = [t for t, d in full.meta["listed"].items() if d > "2023-12-31"]
    assert later and not set(later) & set(cut.tokens)


# --------------------------------------------------------------------------- shipped suites
def test_real_v1_lists_walk_forward_instances_on_two_venues(shared_data, capsys):
    assert instances_cli.main(["--suite", "real-v1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 16 and len({r["universe"] for r in rows}) >= 2 and len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        assert {"id", "universe", "search", "holdout", "tokens"} <= set(row)
        search_end, (holdout_start, holdout_end) = dt.date.fromisoformat(row["search"][1]), map(
            dt.date.fromisoformat, row["holdout"])
        assert holdout_start > search_end and (holdout_end - holdout_start).days + 1 >= 180
        assert row["tokens"] >= 5
    starts = sorted({r["search"][0] for r in rows if r["venue"] == "binance-spot"})
    assert all((dt.date.fromisoformat(b) - dt.date.fromisoformat(a)).days in range(180, 185)
               for a, b in zip(starts, starts[1:]))  # rolled forward every six months


def test_synthetic_v1_has_eight_independent_draws(capsys):
    assert instances_cli.main(["--suite", "synthetic-v1", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 8 and len({r["seed"] for r in rows}) == len(rows)
    assert len({r["fingerprint"] for r in rows}) == len(rows)


def test_evaluate_an_instance_from_the_shell(capsys):
    assert evaluate_cli.main(["--instance", "synthetic-v1-01", "--params", '{"bull.top_n": 10}']) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["window"] == ["2023-01-01", "2024-12-31"] and not result["holdout"]
    assert evaluate_cli.main(["--instance", "synthetic-v1-01", "--holdout"]) == 0
    held = json.loads(capsys.readouterr().out)
    assert held["window"] == ["2025-01-01", "2025-06-30"] and held["holdout"]


def test_real_instance_from_the_shell(shared_data, capsys):
    assert evaluate_cli.main(["--instance", "binance-spot-2021-07", "--params", "{}"]) == 0
    assert json.loads(capsys.readouterr().out)["window"] == ["2021-07-01", "2023-06-30"]


def test_liquid_subsets_are_chosen_with_data_known_at_the_search_start(shared_data):
    instance = find_instance("bybit-perp-liq30-2022-05")
    tokens = instance.search_candles().tokens
    assert len(tokens) == 30
    full = instance.universe_candles()
    cut = dataclasses.replace(instance, universe=str(shared_data / "bybit_perp_daily.csv.gz"))
    assert tokens == cut.search_candles().tokens  # same data, same choice
    before = full.between(None, instance.split.search_start - dt.timedelta(days=1))
    listed_before = set(np.asarray(before.tokens)[before.listed[-1]])
    assert set(tokens) <= listed_before


# --------------------------------------------------------------------------- bad input: one line, exit 2, nothing written
SUITE = """
name = "mine"
[defaults]
universe = "synthetic-small"
seed = 1
[[instance]]
id = "ok"
search = ["2023-01-01", "2024-12-31"]
holdout = ["2025-01-01", "2025-06-30"]
"""


@pytest.mark.parametrize("change, message", [
    ('search = ["2015-01-01", "2016-12-31"]\nholdout = ["2017-01-01", "2017-06-30"]', "instance 'bad': search: starts 2015-01-01, outside the data"),
    ('search = ["2025-01-01", "2026-12-31"]\nholdout = ["2027-01-01", "2028-06-30"]', "instance 'bad': holdout: ends 2028-06-30, after the data"),
    ('search = ["2023-01-01", "2024-12-31"]\nholdout = ["2025-01-01", "2025-03-31"]', "instance 'bad': holdout: 2025-01-01..2025-03-31 is 90 days; at least 180"),
    ('search = ["2023-01-01", "2024-12-31"]\nholdout = ["2024-12-01", "2025-06-30"]', "instance 'bad': holdout: holdout starts (2024-12-01) before the search window ends"),
    ('serach = ["2023-01-01", "2024-12-31"]\nholdout_days = 181', "instance 'bad': serach: unknown field"),
    ('search = ["2023-01-01", "2024-12-31"]\nholdout_days = 181\nspace = "jiont"', "instance 'bad': space: unknown space 'jiont'"),
    ('search = ["2023-01-01", "2024-13-31"]\nholdout_days = 181', "instance 'bad': search: not an ISO date"),
])
def test_a_bad_instance_is_one_line_naming_instance_and_field(tmp_path, capsys, change, message):
    path = tmp_path / "mine.toml"
    path.write_text(SUITE + '[[instance]]\nid = "bad"\n' + change + "\n")
    before = sorted(tmp_path.iterdir())
    assert instances_cli.main(["--suite", str(path), "--describe"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: suite mine: ") and message in err, err
    assert sorted(tmp_path.iterdir()) == before  # nothing written (no pool file)


def test_unknown_instance_and_broken_suite_files(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(SUITE)
    assert instances_cli.main(["--suite", str(path), "--instances", "nope"]) == 2
    assert "unknown instance 'nope'; known: ok" in capsys.readouterr().err
    assert evaluate_cli.main(["--instance", "nope"]) == 2
    assert "unknown instance 'nope'" in capsys.readouterr().err
    path.write_text(SUITE.replace('id = "ok"', 'id = "ok'))
    assert instances_cli.main(["--suite", str(path)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    path.write_text(SUITE + SUITE.split("[[instance]]")[1].join(["[[instance]]", ""]))
    assert instances_cli.main(["--suite", str(path)]) == 2
    assert "instance 'ok': id: used twice" in capsys.readouterr().err


def test_a_missing_data_file_says_how_to_fetch_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEMSEARCH_DATA", str(tmp_path / "nowhere"))
    assert instances_cli.main(["--suite", "real-v1", "--instances", "bybit-perp-2021-05"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "python -m data.fetch bybit" in err and "GEMSEARCH_DATA" in err


def test_every_shipped_suite_parses():
    names = sorted(p.stem for p in SUITES_DIR.glob("*.toml"))
    assert {"real-v1", "synthetic-v1"} <= set(names)
    for name in names:
        assert load_suite(name).instances


# --------------------------------------------------------------------------- sealing per instance
def test_nothing_a_searcher_reaches_yields_the_instances_holdout():
    instance = find_instance("synthetic-v1-02")
    problem = Problem.from_instance(instance)
    objective = Objective(problem, budget=2)
    objective(problem.space.base)
    end = np.datetime64(instance.split.search_end, "D")
    candles = objective.problem.candles
    assert candles.dates[-1] == end and candles.name == instance.id
    assert "seed" not in candles.meta and "universe" not in candles.meta
    with pytest.raises(ValueError):
        load_universe(candles.name)  # the name regenerates nothing
    assert candles.regimes is None or candles.regimes.size == candles.n_days
    for name in ("open", "high", "low", "close", "volume"):
        array = getattr(candles, name)
        assert array.shape[0] == candles.n_days and (array.base is None or array.base.nbytes == array.nbytes)
    full = instance.holdout_candles()
    holdout_prices = full.between(instance.split.holdout_start, None).close
    assert not np.isin(holdout_prices[np.isfinite(holdout_prices)], candles.close).any()


def test_a_user_suite_runs_end_to_end(tmp_path, capsys):
    path = tmp_path / "mine.toml"
    path.write_text(textwrap.dedent(SUITE))
    assert instances_cli.main(["--suite", str(path), "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["id"] == "ok" and row["holdout"] == ["2025-01-01", "2025-06-30"]
    with pytest.raises(InstanceError, match="unknown instance"):
        load_suite(path).get("nope")
    assert Instance.default("synthetic-small").split == DEFAULT_SPLIT


# --------------------------------------------------------------------------- warm-up
def test_warm_up_covers_every_regime_setting_of_the_space_once():
    from instances.warm import warm_configurations
    from strategy.space import SearchSpace

    core = warm_configurations(SearchSpace("core"))
    assert len(core) == 6 * 5  # refit intervals x minimum observations, one detector
    joint = warm_configurations(SearchSpace("joint"))
    assert len(joint) == 2 * 6 * 5 + 1  # two HMMs x the grid, and ma200 once
    assert len({json.dumps(c, sort_keys=True) for c in joint}) == len(joint)


def test_warm_up_fills_the_disk_cache_that_later_evaluations_read(tmp_path, monkeypatch):
    from instances.warm import warm
    from strategy import regime

    monkeypatch.setenv("GEMSEARCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "short.toml"
    path.write_text(SUITE.replace('search = ["2023-01-01", "2024-12-31"]', 'search = ["2024-09-01", "2024-12-31"]')
                    .replace('seed = 1', 'seed = 1\nspace = "core"\nwarmup_days = 120'))
    instance = load_suite(path).get("ok")
    done = warm([instance], jobs=2)
    assert done["configurations"] == 30 and done["skipped"] is None
    chains = sorted((tmp_path / "cache").glob("regime-*.npy"))
    assert len(chains) == 3 * 30  # the search window and the audit's two truncated histories, per setting
    regime._PROBS.items.clear()
    problem = Problem.from_instance(instance)
    before = {p: p.stat().st_mtime_ns for p in chains}
    problem.evaluate(problem.space.params({"hmm.hmm_refit_interval": 21, "hmm.hmm_min_observations": 180}))
    assert sorted((tmp_path / "cache").glob("regime-*.npy")) == chains  # read, nothing new computed
    assert {p: p.stat().st_mtime_ns for p in chains} == before


def test_holdout_scoring_writes_nothing_a_later_search_could_read(tmp_path, monkeypatch):
    """The drivers score holdouts with the shared disk cache read-only: no regime chain computed from holdout
    prices is left where a later searcher's process could find it (and without the seal one would be)."""
    from runs.results import holdout_score
    from strategy import regime

    monkeypatch.setenv("GEMSEARCH_CACHE", str(tmp_path / "cache"))
    instance = find_instance("synthetic-v1-03")
    problem = Problem.from_instance(instance)
    values = problem.space.values(problem.space.params({"hmm.hmm_refit_interval": 14}))
    problem.evaluate(problem.space.params(values))  # the search side fills the cache
    searched = sorted((tmp_path / "cache").glob("regime-*.npy"))
    assert searched
    regime._PROBS.items.clear()
    held = holdout_score(instance, values, {})
    assert held["window"] == f"{instance.split.holdout_start}..{instance.split.holdout_end}"
    assert sorted((tmp_path / "cache").glob("regime-*.npy")) == searched
    regime._PROBS.items.clear()
    evaluate_holdout(problem.space.params(values), instance.holdout_candles(), problem.strategy.fit_fn,
                     problem.strategy.portfolio_fn, split=instance.split)  # unsealed: it would write
    assert len(sorted((tmp_path / "cache").glob("regime-*.npy"))) > len(searched)


def test_the_holdout_pool_scores_the_pool_points_on_the_holdout_as_the_report_scores_winners(tmp_path):
    """``build_pools(window="holdout")`` stores each point's holdout score: the score ``runs.compare`` gives a winner
    with the same parameters (one holdout evaluation, ``instances.pool.evaluate_on_holdout``); the search-window
    pool of the same points is another file, and an unknown window is refused."""
    from instances.pool import build_pools, current_rows, evaluate_points, pool_path, pool_points
    from runs.results import holdout_score

    instance = find_instance("synthetic-v1-03")
    path = pool_path(tmp_path / "s.toml", "holdout")
    assert path.name == "s.holdout-pool.parquet" and pool_path(tmp_path / "s.toml").name == "s.pool.parquet"
    rows = current_rows(build_pools([instance], path, size=2, window="holdout"), instance)
    assert list(rows["index"]) == [-1, 0, 1]
    for (index, values), score in zip(pool_points(instance, 2), rows["score"]):
        expected = holdout_score(instance, values, {})["score"]
        assert score == (-np.inf if expected == "-inf" else expected)
    search = evaluate_points(instance, pool_points(instance, 2)[:1])
    assert search[0]["index"] == -1 and search[0]["contract"] == rows["contract"].iloc[0]
    with pytest.raises(ValueError, match="window"):
        evaluate_points(instance, pool_points(instance, 1), window="future")


def test_a_generated_universe_is_fingerprinted_by_its_definition_and_generator_not_its_float_bytes(monkeypatch):
    """The synthetic generator's last bits differ between CPUs (AVX-512 vs AVX2): its instances' fingerprints hash
    the generator's identity (``data.synthetic.GENERATOR_ID``) instead of the candles, so stored pools and emulators serve every machine; a change of
    the generator or of the definition still changes the fingerprint. A data file keeps its byte hash."""
    import hashlib

    import instances.instance as module
    from instances import load_suite

    draw = load_suite("synthetic-v1").select(["synthetic-v1-04"])[0]
    digest = hashlib.sha256(json.dumps(draw.definition(), sort_keys=True).encode())
    digest.update(module.synthetic.GENERATOR_ID.encode())
    assert draw.fingerprint == digest.hexdigest()
    assert dataclasses.replace(draw, seed=draw.seed + 1).fingerprint != draw.fingerprint
    monkeypatch.setattr(module.synthetic, "GENERATOR_ID", "another generator")
    assert dataclasses.replace(draw).fingerprint != draw.fingerprint  # a new instance object: not cached
    monkeypatch.undo()
    from instances.pool import current_rows, pool_path, read_pool
    assert len(current_rows(read_pool(pool_path(SUITES_DIR / "synthetic-v1.toml")), draw)) == 201  # stored rows match

    try:
        market = find_instance("binance-spot-2019-01")
        candles = market.search_candles()
    except (InstanceError, OSError):
        pytest.skip("../shared/data is not here")
    digest = hashlib.sha256(json.dumps(market.definition(), sort_keys=True).encode())
    digest.update(candles.fingerprint.encode())
    assert market.fingerprint == digest.hexdigest()
