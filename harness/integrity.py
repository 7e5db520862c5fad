"""Integrity of the contract: a version plus a fingerprint of the harness source.

``harness/CONTRACT.lock`` maps each contract version to the SHA-256 of the
harness's ``*.py`` files. The test suite fails when the source no longer matches
the fingerprint recorded for :data:`~harness.contract.CONTRACT_VERSION`, so a
behaviour change cannot slip in without a deliberate version bump:

    1. edit harness/, bump CONTRACT_VERSION in harness/contract.py
    2. python -m harness --record     (refuses to overwrite an existing version)
    3. note the change in docs/CONTRACT.md
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

from harness.contract import CONTRACT_VERSION

HARNESS_DIR = Path(__file__).resolve().parent
LOCK_PATH = HARNESS_DIR / "CONTRACT.lock"


def source_fingerprint() -> str:
    """SHA-256 over the harness's ``*.py`` files (sorted by name, newlines normalised)."""
    digest = hashlib.sha256()
    for path in sorted(HARNESS_DIR.glob("*.py")):
        digest.update(path.name.encode() + b"\0")
        digest.update(path.read_bytes().replace(b"\r\n", b"\n") + b"\0")
    return digest.hexdigest()


def recorded_fingerprints() -> dict[str, str]:
    """``{version: fingerprint}`` from ``CONTRACT.lock``."""
    return json.loads(LOCK_PATH.read_text())["versions"]


@lru_cache(maxsize=1)
def contract_id() -> str:
    """``"<version>+<first 12 hex of the source fingerprint>"``, stamped on every result."""
    return f"{CONTRACT_VERSION}+{source_fingerprint()[:12]}"
