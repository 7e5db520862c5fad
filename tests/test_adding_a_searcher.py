"""docs/tutorial/adding-a-searcher.md's example searcher, run exactly as the page shows it: exact budget, determinism, resume."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest

from env import Objective, SyntheticTask, TrialStore
from env.records import params_key
from policies.base import SEARCHERS, make, run
from strategy.space import SearchSpace

PAGE = Path(__file__).resolve().parents[1] / "docs" / "tutorial" / "adding-a-searcher.md"
NAME = "local-walk-doc-test"
SPACE = SearchSpace("joint")
BUDGET = 40


def _example_code() -> str:
    """The page's first Python code block that registers a searcher."""
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    code = next(b for b in blocks if "@register(" in b)
    assert code.count('@register("local-walk")') == 1
    return code.replace('@register("local-walk")', f"@register({NAME!r})")


@pytest.fixture(scope="module")
def searcher_name():
    SEARCHERS.pop(NAME, None)
    module = types.ModuleType("local_walk_doc_test")
    exec(compile(_example_code(), str(PAGE), "exec"), module.__dict__)
    assert SEARCHERS[NAME].__name__ == "LocalWalk"
    yield NAME
    SEARCHERS.pop(NAME, None)


class Interrupt(Exception):
    pass


class Crashing:
    """``SyntheticTask`` seed 3 (rejects about a tenth of the space) that raises on its ``at``-th evaluation."""

    def __init__(self, at: int | None = None) -> None:
        self.task, self.space, self.at, self.calls = SyntheticTask(SPACE, seed=3), SPACE, at, 0

    def evaluate(self, params):
        self.calls += 1
        if self.calls == self.at:
            raise Interrupt
        return self.task.evaluate(params)


def _trace(history) -> list[tuple[str, float]]:
    return [(params_key(r.params), r.score) for r in history]


def _objective(store: TrialStore | None = None, problem=None, budget: int = BUDGET) -> Objective:
    return Objective(problem or SyntheticTask(SPACE, seed=3), budget=budget, searcher=NAME, seed=0, store=store)


def test_the_example_spends_the_budget_exactly_and_is_deterministic(searcher_name):
    first = _objective()
    run(make(searcher_name), first, 0)
    assert first.used == BUDGET and first.remaining == 0
    assert [r.eval_index for r in first.history] == list(range(BUDGET))
    assert len({params_key(r.params) for r in first.history}) == BUDGET  # never pays twice
    assert first.history[0].params == {a.name: a.default for a in SPACE.axes}
    assert first.best.score > first.history[0].score  # it does walk somewhere better
    second = _objective()
    run(make(searcher_name), second, 0)
    assert _trace(second.history) == _trace(first.history)
    other = _objective()
    run(make(searcher_name), other, 1)
    assert _trace(other.history) != _trace(first.history)


def test_the_example_resumes_exactly_after_a_kill(searcher_name, tmp_path: Path):
    def store() -> TrialStore:
        return TrialStore(f"journal:{tmp_path}/trials.log", "exp", NAME, 0, SPACE)

    with pytest.raises(Interrupt):
        run(make(searcher_name), _objective(store(), Crashing(at=25)), 0)
    resumed = _objective(store())
    assert resumed.used == 24
    run(make(searcher_name), resumed, 0)
    uninterrupted = _objective()
    run(make(searcher_name), uninterrupted, 0)
    assert _trace(resumed.history) == _trace(uninterrupted.history)


def test_the_example_stops_when_everything_is_a_duplicate(searcher_name):
    """With a zero step every walk re-proposes the best configuration: it stops after the duplicate streak."""
    objective = _objective(budget=10_000)
    run(make(searcher_name, step=0.0, patience=10**9), objective, 0)
    assert objective.used == 1 and objective.cache_hits == 1000


def test_the_pages_import_line_is_the_registrys_own():
    """Pasting the page's line into ``policies/__init__.py`` must register every searcher it registers today (the
    line once lacked ``design``, and pasting it unregistered ``sobol``)."""
    registry = Path(__file__).resolve().parents[1] / "policies" / "__init__.py"
    (line,) = [x for x in registry.read_text().splitlines() if x.startswith("from policies import ")]
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    shown = [x for b in blocks for x in b.splitlines() if x.startswith("from policies import ")]
    assert shown == [line]
