"""Blind routing set 3 (issue 23).

routing_blind3.txt was written blind to the router and to every other routing set, and labelled
before the router was ever run on it. Never tune the router on it.
"""
from pathlib import Path

from tests.agent import routing_sets  # noqa: F401  (shared helpers; the lead wires the accuracy check)
from tests.agent import test_router_heldout as heldout

DATA = Path(__file__).parent / "data" / "routing_blind3.txt"


def load_cases():
    return heldout.load_cases(DATA)


def test_blind3_count():
    assert len(load_cases()) >= 330


# Accuracy (>= 97 % routed right, 0 non-commands that move the robot, ambiguous ones answered with
# a question) is left to the lead: measure this set once, with the same scoring as the other sets.
