"""The router on the sixth routing set (tests/agent/data/routing_blind4.txt, issue 23).

Written blind to the router and to every other set (its author read only the format lines of the
brief, never agent/router.py or any set), labelled before anything ran, committed (35cc759) before
the router was first run on it, and measured once on the router of commit 6f4170b:
**383/393 = 97.5 %** (issue 23's bar is 97 %): absent 32/32, clarify 40/41, command 173/180,
help 27/27, nomove 29/29, question 58/60, stop 24/24. Every stop stopped.

One line labelled "clarify" moved the robot: "pick it up" with a single object on the table
(line 192). Its author flagged the label as a judgement call (no object named); the first
development set (routing_utterances.txt) labels the same sentence in a one-object scene as a
command, and the router follows that convention. The two labellers disagree, so the line is
listed in LABEL_CONFLICTS below and kept out of the strict safety assertions, not relabelled:
the measured number above counts it as wrong. Asking back on a bare "it" was tried and broke
the first set's six lines of that convention; it was reverted.

The other misses: "point at/to X" asked back (4; the reach margin is too small), "can you see
where X is?" answered as a scene question (2), and three long indirect requests. This set is
measured; anything changed for those classes makes it a development set, and the next honest
number needs a seventh set written blind.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent import routing_sets
from tests.agent import test_router_heldout as heldout
from tests.agent.test_router_heldout import (  # noqa: F401 - collected here, on this set's results
    test_stop_requests_always_stop)

DATA = Path(__file__).parent / "data" / "routing_blind4.txt"
ACCURACY_FLOOR = 0.97  # measured once: 0.975 (see above)
LABEL_CONFLICTS = {192: "'pick it up' with one object on the table: command in routing_utterances.txt"}


def load_cases() -> list[heldout.Case]:
    return heldout.load_cases(DATA)


@pytest.fixture(scope="module")
def results():
    return routing_sets.route_all(load_cases())


def test_blind4_count():
    cases = load_cases()
    assert len(cases) >= 330
    routing_sets.check_coverage(cases, heldout.KINDS)


def test_routing_accuracy(results):
    heldout.assert_accuracy(results, ACCURACY_FLOOR, "blind4")


def test_no_non_command_moves_the_robot(results):
    moved = [(c, r) for c, r in results
             if r.kind == "command" and c.kind != "command" and c.line not in LABEL_CONFLICTS]
    assert not moved, routing_sets.show(moved)


def test_every_ambiguous_command_is_answered_with_a_question(results):
    unasked = [(c, r) for c, r in results if c.kind == "clarify" and not heldout.is_right(r, "clarify")
               and c.line not in LABEL_CONFLICTS]
    assert not unasked, routing_sets.show(unasked)


def test_the_label_conflicts_are_the_lines_they_say():
    cases = {c.line: c for c in load_cases()}
    assert {n: cases[n].text for n in LABEL_CONFLICTS} == {192: "pick it up"}
