"""The router on its hand-written development set (tests/agent/data/routing_utterances.txt): >= 97 %
routed right, no non-command moves the robot, and every ambiguous command is answered with a question.

A development set, not a held-out one: no line of it is a router example, but the router's examples
were tuned after seeing its results (95.2 % before, 99.4 % after; 99.0 % once the later sets had
changed the router, and 310/310 = 100 % after the round that took all three development sets to
>= 97 %: spelling correction, statements and unsupported verbs never moving, "hold up the cube").
The sets written blind to the router later are tests/agent/test_router_heldout.py and
test_router_blind.py; a fresh blind set measures it honestly."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.router import Route
from tests.agent import routing_sets
from tests.agent.routing_sets import COLORS, Case

DATA = Path(__file__).parent / "data" / "routing_utterances.txt"
# Measured 310/310 = 100 % (and 100 % of the unseen wordings) on this development set; the floor
# leaves room for a line or two, and stays above the 0.97.
ACCURACY_FLOOR = 0.99


def load_cases() -> list[Case]:
    return routing_sets.load_cases(DATA, "\t")


def is_right(r: Route, expected: str) -> bool:
    words = expected.split()
    kind = words[0]
    if kind == "help":
        return r.kind in ("chat", "unknown")
    if kind == "clarify":
        return r.kind == "clarify" and r.question.endswith("?")
    if kind == "question":
        return r.kind == "question" and (len(words) == 1 or r.topic == words[1])
    if kind == "stop":
        return r.kind == "stop"
    assert kind == "command", expected
    family, colour, shape = words[1:4]
    extra = dict(w.split("=") for w in words[4:])
    return (r.kind == "command" and r.family == family and r.target == f"{colour} {shape}"
            and r.side == extra.get("side", "") and r.receptacle == extra.get("rec", ""))


@pytest.fixture(scope="module")
def results():
    return routing_sets.route_all(load_cases())


def test_the_set_is_big_and_covers_every_route():
    routing_sets.check_coverage(load_cases(), {"command", "question", "clarify", "stop", "help"},
                                targets_on_table=False)



def seen_wording(case: Case) -> bool:
    """Whether the utterance, colours and shapes aside, is word for word one of the router's
    examples (short canonical forms such as "stop" or "pick up the <object>" are bound to be)."""
    from agent.router import EXAMPLES, delexicalise, normalise

    seen = {delexicalise(normalise(e)) for texts in EXAMPLES.values() for e in texts}
    return delexicalise(normalise(case.text), COLORS) in seen


def test_routing_accuracy(results):
    wrong = [(c, r) for c, r in results if not is_right(r, c.label)]
    accuracy = 1 - len(wrong) / len(results)
    print(f"\nrouting: {len(results) - len(wrong)}/{len(results)} right ({accuracy:.1%})\n" + routing_sets.show(wrong))
    assert accuracy >= ACCURACY_FLOOR, routing_sets.show(wrong)
    # and on the utterances whose wording is none of the router's examples (most of the set)
    unseen = [(c, r) for c, r in results if not seen_wording(c)]
    unseen_right = sum(is_right(r, c.label) for c, r in unseen)
    print(f"unseen wording: {unseen_right}/{len(unseen)} right ({unseen_right / len(unseen):.1%})")
    assert len(unseen) >= 0.7 * len(results)
    assert unseen_right / len(unseen) >= ACCURACY_FLOOR


def test_no_non_command_moves_the_robot(results):
    moved = [(c, r) for c, r in results if r.kind == "command" and not c.label.startswith("command")]
    assert not moved, routing_sets.show(moved)


def test_every_ambiguous_command_is_answered_with_a_question(results):
    unasked = [(c, r) for c, r in results if c.label == "clarify" and not is_right(r, "clarify")]
    assert not unasked, routing_sets.show(unasked)


def test_stop_requests_always_stop(results):
    missed = [(c, r) for c, r in results if c.label == "stop" and r.kind != "stop"]
    assert not missed, routing_sets.show(missed)


def test_a_command_keeps_the_operators_own_words(results):
    for c, r in results:
        assert r.text == c.text.strip()
