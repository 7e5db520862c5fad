"""Evaluate one configuration from the shell and print the result as JSON.

    python -m runs.evaluate --data bear-basket --strategy bear --params '{"top_n": 3}'
    python -m runs.evaluate --data ../shared/data/bear_portfolio_candles.csv --end 2022-09-26 \\
        --strategy bear --params params.json
    python -m runs.evaluate --instance binance-spot-2021-07 --params '{"bull.top_n": 10}'
    python -m runs.evaluate --instance binance-spot-2021-07 --holdout    # the instance's holdout window

With ``--instance`` (a shipped suite's id, or one of ``--suite PATH``) the universe, windows, space
and strategy are the instance's; ``--params`` then takes flat ``{"block.field": value}`` values of its
space (or nested blocks), missing ones at the defaults. ``--holdout`` scores the instance's holdout:
for the user, never for a searcher.

Prints ``{"score": ..., "reason": ..., "base": {...}, "stress": {...}, "contract": ...}``: score
``"-inf"`` for a hard rejection, and then ``reason`` names the harness gate(s) that rejected it
(``"annualised return below -50%"``, ``"stress Calmar below 0"``, both joined by ``"; "`` when both
fire; ``instances.pool.rejection_gates``); ``reason`` is ``null`` for a finite score. Bad parameters or data:
exit code 2 and a one-line error on stderr. The harness never imports the strategy: this thin
driver injects it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from data import load_universe
from harness import SEARCH_END, SEARCH_START, WARMUP_DAYS, evaluate, evaluate_holdout
from instances import find_instance
from instances.pool import rejection_gates
from strategy import STRATEGIES
from strategy.space import SearchSpace


def parse_params(text: str) -> dict[str, Any]:
    """A JSON object given inline or as a path to a JSON file."""
    source = Path(text)
    raw = source.read_text() if not text.lstrip().startswith("{") and source.is_file() else text
    try:
        params = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--params is neither a JSON object nor a readable JSON file: {exc}") from None
    if not isinstance(params, dict):
        raise ValueError("--params must be a JSON object of parameter names to values")
    return params


def result_json(result) -> dict[str, Any]:
    """``result.to_json()`` with ``"reason"`` after the score (``instances.pool.rejection_gates``, joined; None when finite)."""
    document = result.to_json()
    reason = "; ".join(rejection_gates(result.base, result.stress)) if result.rejected else None
    return {"score": document.pop("score"), "reason": reason, **document}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--instance", help="a problem instance id (docs/reference/instances.md); replaces --data, --seed, "
                        "--start, --end, --warmup-days and --strategy")
    parser.add_argument("--suite", help="the suite file holding --instance (default: the shipped suites)")
    parser.add_argument("--holdout", action="store_true", help="with --instance: score its holdout window instead")
    parser.add_argument("--data", help="a named universe (synthetic (default), synthetic-small, bear-basket) or a "
                        "data file/folder")
    parser.add_argument("--seed", type=int, help="market draw of a synthetic universe (default 0)")
    parser.add_argument("--start", help=f"first scored day (default {SEARCH_START})")
    parser.add_argument("--end", help=f"last scored day (default and maximum {SEARCH_END})")
    parser.add_argument("--warmup-days", type=int, help=f"history before --start the fits may use (default {WARMUP_DAYS})")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), help="bear (default) or ensemble")
    parser.add_argument("--params", default="{}", help="JSON object or JSON file; missing fields take the defaults")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.instance is None and (args.suite or args.holdout):
        parser.error("--suite and --holdout need --instance")
    try:
        if args.instance is not None:
            result = _evaluate_instance(args, parser)
        else:
            strategy = STRATEGIES[args.strategy or "bear"]
            params = strategy.params_from_dict(parse_params(args.params))
            candles = load_universe(args.data or "synthetic", seed=args.seed or 0)
            result = evaluate(params, candles, strategy.fit_fn, strategy.portfolio_fn, start=args.start or SEARCH_START,
                              end=args.end or SEARCH_END, warmup_days=WARMUP_DAYS if args.warmup_days is None
                              else args.warmup_days)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result_json(result), indent=2))
    return 0


def _evaluate_instance(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """Score ``--params`` on the instance's search window (or, with ``--holdout``, its holdout)."""
    given = [f"--{name.replace('_', '-')}" for name in ("data", "seed", "start", "end", "warmup_days", "strategy")
             if getattr(args, name) is not None]
    if given:
        parser.error(f"--instance fixes the universe, windows and strategy; drop {' '.join(given)}")
    instance = find_instance(args.instance, args.suite)
    instance.check(min_holdout_days=0)
    strategy = STRATEGIES[instance.strategy]
    values = parse_params(args.params)
    space = SearchSpace(instance.space)
    flat = all(isinstance(key, str) and "." in key for key in values)
    params = space.params(values) if flat and values else strategy.params_from_dict(values)
    if args.holdout:
        return evaluate_holdout(params, instance.holdout_candles(), strategy.fit_fn, strategy.portfolio_fn,
                                split=instance.split)
    return evaluate(params, instance.search_candles(), strategy.fit_fn, strategy.portfolio_fn, split=instance.split)


if __name__ == "__main__":
    sys.exit(main())
