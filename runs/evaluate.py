"""Evaluate one configuration from the shell and print the result as JSON.

    python -m runs.evaluate --data bear-basket --strategy bear --params '{"top_n": 3}'
    python -m runs.evaluate --data ../shared/data/bear_portfolio_candles.csv --end 2022-09-26 \\
        --strategy bear --params params.json

Prints ``{"score": ..., "base": {...}, "stress": {...}, "contract": ...}`` (score
``"-inf"`` for a hard rejection). Bad parameters or data: exit code 2 and a
one-line error on stderr. The harness never imports the strategy: this thin
driver injects it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from data import load_universe
from harness import SEARCH_END, SEARCH_START, WARMUP_DAYS, evaluate
from strategy import STRATEGIES


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m runs.evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="synthetic",
                        help="a named universe (synthetic, synthetic-small, bear-basket) or a data file/folder")
    parser.add_argument("--seed", type=int, default=0, help="market draw of a synthetic universe (default 0)")
    parser.add_argument("--start", default=str(SEARCH_START), help=f"first scored day (default {SEARCH_START})")
    parser.add_argument("--end", default=str(SEARCH_END), help=f"last scored day (default and maximum {SEARCH_END})")
    parser.add_argument("--warmup-days", type=int, default=WARMUP_DAYS,
                        help=f"history before --start the fits may use (default {WARMUP_DAYS})")
    parser.add_argument("--strategy", choices=sorted(STRATEGIES), default="bear")
    parser.add_argument("--params", default="{}", help="JSON object or JSON file; missing fields take the defaults")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        strategy = STRATEGIES[args.strategy]
        params = strategy.params_from_dict(parse_params(args.params))
        candles = load_universe(args.data, seed=args.seed)
        result = evaluate(params, candles, strategy.fit_fn, strategy.portfolio_fn,
                          start=args.start, end=args.end, warmup_days=args.warmup_days)
    except (ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
