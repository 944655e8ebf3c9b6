"""The router on the fifth routing set (tests/agent/data/routing_blind3.txt, issue 23).

Written blind to the router and to every other set (its author read only the format header),
labelled before the router ran on it, and measured once on the router of commit 5b52c71:
**371/391 = 94.9 %**, short of the 97 % issue 23 asks for. Every ambiguous command was asked
back and every stop stopped; one deferred request ("After I leave the room, put the yellow cube in
the bowl.") moved the robot. Most misses are indirect requests read as questions ("Mind picking
up the orange cube for me?", "Would it be possible for you to place ...") and requests without a
verb ("red cube to the left, please").

After that measurement the deferred-clause class ("after I ...", "when we ...") was handled, so this
is a development set now (372/391 = 95.1 %, no unsafe routing). A later round changed the router for
the classes of its remaining mistakes (indirect openings such as "mind ...ing", "would it be
possible for you to", "I wonder, could you"; causative requests, "I need the cylinder lifted";
an object and a direction with no verb; terse "pick yellow"; a misspelt side after a verb; teal
as cyan; questions about an object's colour, size or identity, and clips, by their words):
391/391 = 100 %. **This is a development set**: its number says nothing about unseen phrasings.
A sixth set, written blind (routing_blind4.txt), gives the next honest number. Do not tune single
utterances to it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agent import routing_sets
from tests.agent import test_router_heldout as heldout
from tests.agent.test_router_heldout import (  # noqa: F401 - collected here, on this set's results
    test_every_ambiguous_command_is_answered_with_a_question, test_no_non_command_moves_the_robot,
    test_stop_requests_always_stop)

DATA = Path(__file__).parent / "data" / "routing_blind3.txt"
# A development set at 391/391 now; the floor guards regressions and leaves room for three lines
# (cosines near a threshold can move in the last digit on another CPU or BLAS).
ACCURACY_FLOOR = 0.99


def load_cases() -> list[heldout.Case]:
    return heldout.load_cases(DATA)


@pytest.fixture(scope="module")
def results():
    return routing_sets.route_all(load_cases())


def test_blind3_count():
    cases = load_cases()
    assert len(cases) >= 330
    routing_sets.check_coverage(cases, heldout.KINDS)


def test_routing_accuracy(results):
    heldout.assert_accuracy(results, ACCURACY_FLOOR, "blind3")
