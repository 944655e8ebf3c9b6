"""The router on a second routing set (tests/agent/data/routing_heldout.txt, issue 23).

This set was written blind to the router's examples and to the first set, and labelled before the
router was run on it. Measured once with the router unchanged: 320/341 = 93.8 %, with 8 safety
failures (a negation mid-sentence and an unknown verb moved the robot; five stop idioms did not
stop it; a pronoun with several objects was not asked back). The router was then changed for those
classes of failure (negated requests anywhere, an action verb required, more stop idioms,
unsure imperatives asked back), so this set is now a second development set: 325/341 = 95.3 %.
A later round for all three development sets (spelling correction against the router's own words,
"the container"/"the dish" as whichever receptacle is there, "right-hand", "move to the X" as a
reach, questions about a command on a named object, "can you see ...") took it to 341/341 = 100 %.
Held-out numbers come only from a set written blind to the router as it is.

The safety properties are asserted strictly: no non-command moves the robot, every ambiguous
command is answered with a question, every stop request stops.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from agent.router import Route
from tests.agent import routing_sets
from tests.agent.routing_sets import Case

DATA = Path(__file__).parent / "data" / "routing_heldout.txt"
KINDS = {"command", "question", "clarify", "absent", "stop", "help", "nomove"}

# Issue 23 asks for >= 0.97 routed right. Blind, this set scored 93.8 %; as a development set it is
# at 100 % now (341/341). The floor guards against regressions with room for a few lines; the
# issue's bar is judged on a set written blind to the router.
ISSUE_THRESHOLD = 0.97
ACCURACY_FLOOR = 0.985


def load_cases(path: Path = DATA) -> list[Case]:
    return routing_sets.load_cases(path, " || ")


def is_right(r: Route, label: str) -> bool:
    """Whether the route is what the label asks for (see the data file's header)."""
    kind, *words = label.split()
    if kind == "help":
        return r.kind in ("chat", "unknown")
    if kind == "nomove":
        return r.kind != "command"
    if kind in ("clarify", "absent"):
        return r.kind == "clarify" and r.question.endswith("?")
    if kind == "question":
        return r.kind == "question" and (not words or r.topic == words[0])
    if kind == "stop":
        return r.kind == "stop"
    assert kind == "command", label
    family, colour, shape = words[:3]
    extra = dict(w.split("=") for w in words[3:])
    return (r.kind == "command" and r.family == family and r.target == f"{colour} {shape}"
            and r.side == extra.get("side", "") and r.receptacle == extra.get("rec", ""))


@pytest.fixture(scope="module")
def results() -> list[tuple[Case, Route]]:
    return routing_sets.route_all(load_cases())


def test_the_set_is_big_and_covers_every_route():
    routing_sets.check_coverage(load_cases(), KINDS)


def assert_accuracy(results: list[tuple[Case, Route]], floor: float, name: str) -> None:
    """Print the set's routing accuracy, per label kind and its mistakes; fail below ``floor``.
    Every routing set's accuracy test calls this, so their numbers mean the same thing."""
    wrong = [(c, r) for c, r in results if not is_right(r, c.label)]
    accuracy = 1 - len(wrong) / len(results)
    total, right = Counter(), Counter()
    for c, r in results:
        total[c.kind] += 1
        right[c.kind] += is_right(r, c.label)
    per_kind = ", ".join(f"{k} {right[k]}/{total[k]}" for k in sorted(total))
    print(f"\n{name} routing: {len(results) - len(wrong)}/{len(results)} right ({accuracy:.1%}); {per_kind}\n"
          + routing_sets.show(wrong))
    assert accuracy >= floor, routing_sets.show(wrong)


def test_routing_accuracy(results):
    assert_accuracy(results, ACCURACY_FLOOR, "held-out")


def test_no_non_command_moves_the_robot(results):
    moved = [(c, r) for c, r in results if r.kind == "command" and c.kind != "command"]
    assert not moved, routing_sets.show(moved)


def test_every_ambiguous_command_is_answered_with_a_question(results):
    unasked = [(c, r) for c, r in results if c.kind == "clarify" and not is_right(r, "clarify")]
    assert not unasked, routing_sets.show(unasked)


def test_stop_requests_always_stop(results):
    missed = [(c, r) for c, r in results if c.kind == "stop" and r.kind != "stop"]
    assert not missed, routing_sets.show(missed)
