"""The router on the fourth routing set (tests/agent/data/routing_blind2.txt, issue 23).

Written blind to the router and to the other sets, labelled before the router ran on it. Measured
once: 381/388 = 98.2 %, with one deferred request ("after lunch, put the red cylinder in the
bowl") that moved the robot. Not a clean blind number: the author of the router changes made just
before saw about 80 of its lines through a shell wildcard (said so in the commit). The classes it
found (a time that has not come yet, colour synonyms such as violet) were then handled in the
router, so this is a development set now: 384/388 = 98.97 %, no unsafe routing. The fifth set
(routing_blind3.txt) gives the honest number.

Parsing, scoring and the safety checks are the other sets' own (imported), so the numbers mean the
same thing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent import routing_sets
from tests.agent import test_router_heldout as heldout
from tests.agent.test_router_heldout import (  # noqa: F401 - collected here, on this set's results
    test_every_ambiguous_command_is_answered_with_a_question, test_no_non_command_moves_the_robot,
    test_stop_requests_always_stop)

DATA = Path(__file__).parent / "data" / "routing_blind2.txt"
# measured 0.9897 after the changes it prompted (0.982 before); 388/388 after blind3's round
ACCURACY_FLOOR = 0.985


def load_cases() -> list[heldout.Case]:
    return heldout.load_cases(DATA)


@pytest.fixture(scope="module")
def results():
    return routing_sets.route_all(load_cases())


def test_the_set_is_big_and_covers_every_route():
    cases = load_cases()
    assert len(cases) >= 360
    routing_sets.check_coverage(cases, heldout.KINDS)


def test_routing_accuracy(results):
    heldout.assert_accuracy(results, ACCURACY_FLOOR, "blind2")
