"""``python -m harness [--record]``: check (or record) the contract fingerprint."""

from __future__ import annotations

import argparse
import json
import sys

from harness.contract import CONTRACT_VERSION
from harness.integrity import LOCK_PATH, recorded_fingerprints, source_fingerprint


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check or record the harness contract fingerprint.")
    parser.add_argument("--record", action="store_true",
                        help="record the current fingerprint for the current CONTRACT_VERSION (new versions only)")
    args = parser.parse_args(argv)
    current = source_fingerprint()
    versions = recorded_fingerprints() if LOCK_PATH.exists() else {}
    if args.record:
        if versions.get(CONTRACT_VERSION, current) != current:
            print(f"error: version {CONTRACT_VERSION} is already recorded with another fingerprint; "
                  "bump CONTRACT_VERSION in harness/contract.py first", file=sys.stderr)
            return 2
        versions[CONTRACT_VERSION] = current
        LOCK_PATH.write_text(json.dumps({"versions": versions}, indent=2) + "\n")
        print(f"recorded {CONTRACT_VERSION} {current}")
        return 0
    ok = versions.get(CONTRACT_VERSION) == current
    print(f"contract {CONTRACT_VERSION} fingerprint {current} {'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
