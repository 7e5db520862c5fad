"""Which searchers replay bit for bit when the numeric libraries take other SIMD code paths?

A searcher run replays exactly on one machine (tested), but the full comparison's seed 0 did not replay between
an AVX2 (AMD EPYC) and an AVX-512 (Intel Xeon) container (docs/log/2026-11-runs-log.md, "Reproducibility across CPUs"). This
script isolates the searchers' own arithmetic: it runs every registered searcher (seed 0) on one emulated
``real-v1`` instance -- an objective whose scores are LightGBM tree sums, checked here to be the same on both
paths -- once with each library's default (widest) code path and once with every library held to AVX2:

* numpy: ``NPY_DISABLE_CPU_FEATURES`` switches off its AVX-512 dispatch targets (exp, log, sums);
* OpenBLAS (numpy's and scipy's: GP/CMA-ES linear algebra): ``OPENBLAS_CORETYPE=Haswell``;
* torch (optuna-gp, the PPO policies): ``ATEN_CPU_CAPABILITY=avx2`` and MKL held to AVX2
  (``MKL_ENABLE_INSTRUCTIONS``, ``MKL_CBWR``).

Each mode runs in a fresh process (the libraries read these variables when they load). The report says, per
searcher, whether the two traces (configurations and scores, in order) are identical, and where they first differ.
A searcher identical under both paths does not depend on AVX-512 kernels; one that differs will not replay between
an AVX-512 and an AVX2 machine. (Holding the libraries to AVX2 on an AVX-512 machine does not make it an AMD one:
other differences, e.g. MKL's vendor checks, remain, so "identical" here is necessary, not sufficient.)

    python scripts/simd_replay_check.py [--budget 30] [--instance ID] [--searchers ...] [--hold numpy openblas torch]
                                        [--json FILE]

``--hold`` names the libraries held to AVX2 in the second run (default all three): holding one at a time shows
which library a searcher's divergence comes from.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

AVX2_ONLY = {
    "numpy": {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    "openblas": {"OPENBLAS_CORETYPE": "Haswell"},
    "torch": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "MKL_CBWR": "AVX2"},
}
"""Per library, the environment that holds it to its AVX2 code paths."""

DEFAULT_INSTANCE = "bybit-perp-liq30-2022-05"


def _trace(problem, searcher: str, budget: int) -> dict:
    """Run ``searcher`` (seed 0) on ``problem``: its trace (configurations and scores, in order) and wall time."""
    import policies
    from env import Objective
    from policies.base import make, run

    assert searcher in policies.SEARCHERS, searcher
    objective = Objective(problem, budget, searcher=searcher, seed=0)
    began = time.perf_counter()
    run(make(searcher), objective, 0)
    rows = [json.dumps([r.params, repr(r.score)], sort_keys=True) for r in objective.history]
    return {"rows": rows, "wall_s": round(time.perf_counter() - began, 1)}


def _fingerprint(problem) -> str:
    """A hash of ``problem``'s scores at 256 seeded points (equal hashes: the objective is the same on both paths)."""
    import numpy as np

    probe = problem.space.snap(np.random.default_rng(0).random((256, len(problem.space))))
    scores = np.array([problem.evaluate(problem.space.decode(u)).score for u in probe])
    return hashlib.sha256(scores.tobytes()).hexdigest()[:16]


def code_paths() -> str:
    """What this process's numpy, OpenBLAS and torch chose: the widest numpy target on, OpenBLAS cores, torch's
    capability."""
    import torch
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
    from threadpoolctl import threadpool_info

    numpy_on = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    blas = sorted({f"{i['internal_api']}:{i.get('architecture')}" for i in threadpool_info() if i["user_api"] == "blas"})
    return f"numpy {numpy_on[-1] if numpy_on else 'baseline'}, {', '.join(blas)}, torch {torch.backends.cpu.get_cpu_capability()}"


def _child(args: argparse.Namespace) -> None:
    import warnings

    from surrogate.emulator import suite_problems

    warnings.simplefilter("ignore")
    problem = suite_problems("real-v1", instances=[args.instance])[0]
    out = {"paths": code_paths(), "objective": _fingerprint(problem),
           "searchers": {name: _trace(problem, name, args.budget) for name in args.searchers}}
    Path(args.child).write_text(json.dumps(out))


def _run_mode(args: argparse.Namespace, extra_env: dict[str, str], path: Path) -> dict:
    env = {**os.environ, **extra_env}
    command = [sys.executable, __file__, "--child", str(path), "--instance", args.instance, "--budget",
               str(args.budget), "--searchers", *args.searchers]
    subprocess.run(command, env=env, check=True)
    return json.loads(path.read_text())


def held_environment(libraries: list[str]) -> dict[str, str]:
    """The variables that hold ``libraries`` to AVX2; numpy is told to switch off only the targets this CPU has
    (on an AVX2 machine holding numpy changes nothing)."""
    from numpy._core._multiarray_umath import __cpu_features__

    env = {k: v for lib in libraries for k, v in AVX2_ONLY[lib].items()}
    if "NPY_DISABLE_CPU_FEATURES" in env:
        wide = [t for t in env["NPY_DISABLE_CPU_FEATURES"].split() if __cpu_features__.get(t)]
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(wide)
        if not wide:
            del env["NPY_DISABLE_CPU_FEATURES"]
    return env


def _first_difference(a: list[str], b: list[str]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def main() -> int:
    import policies

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=30)
    parser.add_argument("--instance", default=DEFAULT_INSTANCE, help="a real-v1 instance with a committed emulator")
    parser.add_argument("--searchers", nargs="+", default=sorted(policies.SEARCHERS))
    parser.add_argument("--hold", nargs="+", choices=sorted(AVX2_ONLY), default=sorted(AVX2_ONLY),
                        help="the libraries held to AVX2 in the second run")
    parser.add_argument("--json", type=Path, help="also write the per-searcher result here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        wide = _run_mode(args, {}, Path(folder) / "default.json")
        narrow = _run_mode(args, held_environment(args.hold), Path(folder) / "avx2.json")
    same_objective = wide["objective"] == narrow["objective"]
    print(f"instance {args.instance} (emulated), budget {args.budget}, seed 0; objective identical on both paths: "
          f"{same_objective}\ndefault: {wide['paths']}\nheld to AVX2 ({' '.join(args.hold)}): {narrow['paths']}\n")
    print("| searcher | same trace on both paths | first differing evaluation | wall s default / AVX2 |")
    print("|---|---|---|---|")
    result = {}
    for name in args.searchers:
        a, b = wide["searchers"][name], narrow["searchers"][name]
        first = _first_difference(a["rows"], b["rows"])
        result[name] = {"identical": first is None, "first_difference": first, "wall_s": [a["wall_s"], b["wall_s"]]}
        print(f"| {name} | {'yes' if first is None else 'no'} | {'' if first is None else first} | "
              f"{a['wall_s']} / {b['wall_s']} |")
    if args.json:
        args.json.write_text(json.dumps({"instance": args.instance, "budget": args.budget,
                                         "held": args.hold,
                                         "paths": {"default": wide["paths"], "avx2": narrow["paths"]},
                                         "objective_identical": same_objective, "searchers": result}, indent=1))
    return 0 if same_objective else 1


if __name__ == "__main__":
    sys.exit(main())
