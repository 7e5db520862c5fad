"""``scripts/simd_replay_check.py``: the two code-path runs and their comparison."""

from __future__ import annotations

import pytest

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import simd_replay_check  # noqa: E402


def test_first_difference_finds_the_first_unequal_row_or_a_length_change():
    assert simd_replay_check._first_difference(["a", "b"], ["a", "b"]) is None
    assert simd_replay_check._first_difference(["a", "b", "c"], ["a", "x", "c"]) == 1
    assert simd_replay_check._first_difference(["a", "b"], ["a"]) == 1


@pytest.mark.slow
def test_random_search_replays_with_numpy_held_to_avx2(tmp_path):
    out = tmp_path / "check.json"
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "simd_replay_check.py"), "--budget", "4",
                           "--searchers", "random", "--hold", "numpy", "--json", str(out)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["objective_identical"] and result["searchers"]["random"]["identical"]
    assert "numpy X86_V3" in result["paths"]["avx2"] or "numpy baseline" in result["paths"]["avx2"]
    assert "| random | yes |" in done.stdout
