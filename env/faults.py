"""Fault injection for the crash-safety tests: die like ``kill -9`` at a chosen point.

``GEMSEARCH_KILL_AT=POINT:N`` (comma-separated for several) makes this process
SIGKILL itself the ``N``-th time it passes :func:`point` ``POINT``. Unset (always,
outside the tests) it costs one dictionary lookup. Points:

* ``evaluated``: a real evaluation finished, nothing stored yet;
* ``study-written``: the Optuna trial is written, the TSV row is not;
* ``taken-back``: a work item was failed (``env.leases``: a dead worker's, or
  this one's when stopping), its replacement not yet queued.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_passed: Counter[str] = Counter()


def point(name: str) -> None:
    spec = os.environ.get("GEMSEARCH_KILL_AT")
    if not spec:
        return
    _passed[name] += 1
    for item in spec.split(","):
        where, _, count = item.partition(":")
        if where == name and _passed[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
