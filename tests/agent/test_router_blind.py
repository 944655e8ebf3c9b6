"""The router on a third, blind routing set (tests/agent/data/routing_blind.txt, issue 23).

Why a third set: the first (routing_utterances.txt) tuned the router's examples, and the second
(routing_heldout.txt) was then used to tune it too, so neither is held out any more. This one was
written blind to the router's word lists and to both sets' utterances, labelled before the router
was run on it, and measured once: 334/349 = 95.7 %, with three safety failures (a deferred request,
"maybe later you could push the pink cube left, not now", and a hypothetical one about two
cylinders moved the robot; "quit it" did not stop it). The router was then changed for those
classes (requests for later or hypothetical ones are asked back, several objects at once are asked
back, one more stop idiom), so this set too is a development set now: 337/349 = 96.6 %, and every
safety property holds. A later round for all three development sets (spelling correction, "don't
forget to ..." not negating, "not the red cube - ..." excluding an object, an object named first,
capability questions answered with help) took it to 349/349 = 100 %. A fourth set, written blind
to these changes, gives the next honest number.

Parsing and scoring are the held-out test's own (imported, not copied), so the two numbers mean
the same thing. The safety properties are asserted strictly: no non-command moves the robot, every
ambiguous command is answered with a question, every stop request stops.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.router import Route
from tests.agent import routing_sets
from tests.agent import test_router_heldout as heldout
from tests.agent.test_router_heldout import (  # noqa: F401 - collected here, on this set's results
    test_every_ambiguous_command_is_answered_with_a_question, test_no_non_command_moves_the_robot,
    test_stop_requests_always_stop)

DATA = Path(__file__).parent / "data" / "routing_blind.txt"

# Issue 23 asks for >= 0.97 routed right (heldout.ISSUE_THRESHOLD). Blind, this set scored 95.7 %;
# as a development set it is at 100 % now (349/349). The floor guards against regressions with room
# for a few lines; the bar is judged on a set written blind to the router.
ACCURACY_FLOOR = 0.985


def load_cases() -> list[heldout.Case]:
    """The held-out test's parser, pointed at this set's file."""
    return heldout.load_cases(DATA)


@pytest.fixture(scope="module")
def results() -> list[tuple[heldout.Case, Route]]:
    return routing_sets.route_all(load_cases())


def test_the_set_is_big_and_covers_every_route():
    routing_sets.check_coverage(load_cases(), heldout.KINDS)


def test_routing_accuracy(results):
    heldout.assert_accuracy(results, ACCURACY_FLOOR, "blind")
