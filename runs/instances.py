"""List, describe and warm up the problem instances of a suite.

    python -m runs.instances --suite real-v1 [--json]              # the instances (ids, windows, tokens)
    python -m runs.instances --suite real-v1 --describe [--jobs 2]  # + market moves, defaults, 200 random configs
    python -m runs.instances --suite real-v1 --holdout-pool --jobs 2  # the same configs on each holdout (reports)
    python -m runs.instances --suite my-suite.toml --instances ID ID
    python -m runs.instances warm binance-spot-2021-07 [ID ...] [--suite S] --jobs 2   # regime chains, once

``--describe`` evaluates each instance's random pool (``instances.pool``: the defaults plus 200 seeded
uniform configurations of its space) with the real harness, once: the rows are stored beside the suite
file and reused while the instance, its data and the contract are unchanged. ``--holdout-pool`` scores the same
configurations on each instance's holdout, for the reports' out-of-sample ranks (``stats.pool_rank``);
no searcher reads it. Exit codes: 0 done, 2 bad
suite, instance or data (one line naming the suite, the instance and the field; nothing written).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any, Sequence

from instances import InstanceError, find_instance, load_suite
from instances.warm import warm
from instances.pool import POOL_SIZE, build_pools, current_rows, describe, pool_path, pool_summary
from stats import json_safe


def listing(instance) -> dict[str, Any]:
    """One instance as a JSON object (``tokens``: tokens with a candle in the search window)."""
    split = instance.split
    window = instance.search_candles().between(split.search_start, split.search_end)
    return {"id": instance.id, "universe": instance.universe, "seed": instance.seed, "venue": instance.venue,
            "search": [str(split.search_start), str(split.search_end)],
            "holdout": [str(split.holdout_start), str(split.holdout_end)], "warmup_days": split.warmup_days,
            "tokens": int(window.listed.any(axis=0).sum()), "days": int(window.n_days), "space": instance.space,
            "strategy": instance.strategy, "fingerprint": instance.fingerprint[:16]}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else ("-inf" if value == -math.inf else f"{value:.3f}")
    if isinstance(value, list):
        return "..".join(value)
    return str(value)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


DESCRIBE_COLUMNS = ("id", "tokens", "days", "search", "holdout", "btc_return_search", "btc_return_holdout",
                    "defaults_score", "random_reject_share", "random_median", "random_best")


HOLDOUT_COLUMNS = ("holdout_defaults_score", "holdout_random_reject_share", "holdout_random_median",
                   "holdout_random_best")


def warm_main(argv: list[str]) -> int:
    """``warm ID [ID ...] [--suite S] [--jobs N]``: fill the disk cache with the instances' regime chains."""
    parser = argparse.ArgumentParser(prog="python -m runs.instances warm", description=warm.__doc__)
    parser.add_argument("ids", nargs="+", metavar="ID", help="instance ids (of --suite, or of the shipped suites)")
    parser.add_argument("--suite", help="the suite holding the ids (default: the shipped suites)")
    parser.add_argument("--jobs", type=int, default=1, help="processes")
    args = parser.parse_args(argv)
    try:
        chosen = [find_instance(i, args.suite) for i in args.ids]
        for instance in chosen:
            instance.check(min_holdout_days=0)
    except InstanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = warm(chosen, jobs=args.jobs)
    print(done["skipped"] or f"warmed {len(chosen)} instance(s): {done['configurations']} regime settings in "
          f"{done['seconds']:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["warm"]:
        return warm_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m runs.instances", description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", required=True, help="a shipped suite (real-v1, synthetic-v1) or a suite file")
    parser.add_argument("--instances", nargs="+", metavar="ID", help="only these instances")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    parser.add_argument("--describe", action="store_true",
                        help=f"add market moves, the defaults' score and {POOL_SIZE} random configurations (cached)")
    parser.add_argument("--holdout-pool", action="store_true",
                        help=f"also score the {POOL_SIZE} random configurations and the defaults on each instance's "
                        "holdout (cached in <suite>.holdout-pool.parquet; for the reports, never for a searcher)")
    parser.add_argument("--jobs", type=int, default=1, help="processes evaluating random pools (--describe)")
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
        chosen = suite.select(args.instances)
        for instance in chosen:
            instance.check()
        rows = [listing(instance) for instance in chosen]
        if args.describe:
            path = pool_path(suite.path)
            frame = build_pools(chosen, path, jobs=args.jobs,
                                progress=lambda done: print(f"pool of {done} stored in {path}", file=sys.stderr))
            rows = [{**row, **describe(instance, current_rows(frame, instance))} for row, instance in zip(rows, chosen)]
        if args.holdout_pool:
            path = pool_path(suite.path, "holdout")
            frame = build_pools(chosen, path, jobs=args.jobs, window="holdout",
                                progress=lambda done: print(f"holdout pool of {done} stored in {path}", file=sys.stderr))
            rows = [{**row, **{f"holdout_{k}": v for k, v in pool_summary(current_rows(frame, instance)).items()}}
                    for row, instance in zip(rows, chosen)]
    except InstanceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(json_safe(rows), indent=1, allow_nan=False))
    else:
        columns = DESCRIBE_COLUMNS if args.describe else ("id", "venue", "tokens", "days", "search", "holdout")
        columns = (*columns, *HOLDOUT_COLUMNS) if args.holdout_pool else columns
        print(f"{suite.name}: {suite.description}\n")
        print(table(rows, columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
