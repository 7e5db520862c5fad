"""Instance warm-up: compute every regime chain an instance's searches can need, once, before they start.

A new regime-detector setting (detector, refit interval, minimum observations) costs one HMM chain per
history the harness shows the strategy (the search window and the causality audit's two truncated
histories); a search over the joint space can meet every setting of its domain. Computed inside a
searcher's run, that time would be charged to whichever searcher asked first. :func:`warm` evaluates, in
``jobs`` processes, one configuration per setting of the space's domain (the space's defaults otherwise)
with the real harness, which stores each chain in the content-addressed disk cache
(:mod:`strategy.diskcache`) that every later process reads. The evaluations are thrown away (no budget is
spent); what they leave behind is the cache, keyed by the data's fingerprint and the code's hash, so a
warm cache can never serve a stale chain.
"""

from __future__ import annotations

import itertools
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Sequence

from instances.instance import Instance
from instances.problem import Problem
from strategy.diskcache import cache_dir
from strategy.space import SearchSpace

HMM_AXES = ("hmm.detector", "hmm.hmm_refit_interval", "hmm.hmm_min_observations")


def warm_configurations(space: SearchSpace) -> list[dict[str, Any]]:
    """One flat configuration per regime-detector setting the space can reach (other axes at the defaults).

    Axes the space does not search stay at its base; ``ma200`` ignores the HMM axes, so it appears once.
    """
    base = space.values(space.base)
    choices = []
    for name in HMM_AXES:
        if name in space.names:
            axis = space[name]
            choices.append([(name, v) for v in (axis.choices or (False, True))])
        else:
            choices.append([])
    configs, seen = [], set()
    for combo in itertools.product(*(c or [None] for c in choices)):
        values = {**base, **{k: v for k, v in (c for c in combo if c is not None)}}
        params = space.params(values)
        key = params.hmm.cache_key if params.switches.use_hmm else None
        if key not in seen:
            seen.add(key)
            configs.append(values)
    return configs


def _evaluate(instance: Instance, values: dict[str, Any]) -> float:
    began = time.perf_counter()
    problem = Problem.from_instance(instance)
    problem.evaluate(problem.space.params(values))
    return time.perf_counter() - began


def warm(instances: Sequence[Instance], jobs: int = 1) -> dict[str, Any]:
    """Warm the regime chains of ``instances`` (module docstring); returns counts and seconds.

    Does nothing (and says so) when the disk cache is off (``GEMSEARCH_CACHE=off``): each process
    would then compute the chains again.
    """
    if cache_dir() is None:
        return {"configurations": 0, "seconds": 0.0, "skipped": "GEMSEARCH_CACHE=off: nothing to warm"}
    work = [(instance, values) for instance in instances
            for values in warm_configurations(SearchSpace(instance.space))]
    began = time.perf_counter()
    if jobs <= 1:
        for instance, values in work:
            _evaluate(instance, values)
    else:
        with ProcessPoolExecutor(jobs) as pool:
            list(pool.map(_evaluate, *zip(*work)))
    return {"configurations": len(work), "seconds": time.perf_counter() - began, "skipped": None}
