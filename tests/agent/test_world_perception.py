"""The agent's world answers from perception by default: what the scene perceiver finds in the
cameras' RGB-D frames matches the simulator's truth, and the ground-truth path stays for debugging."""

import numpy as np
import pytest

from agent.agent import Agent
from agent.world import SimWorld
from common.errors import UserError


def test_perceived_objects_match_the_simulator():
    world = SimWorld("PickUp", seed=5, image_size=128, cameras=("agentview", "wrist"))
    try:
        assert world.world_source == "perception"
        seen, truth = world.objects(), world.ground_truth_objects()
        assert sorted(o.name for o in seen) == sorted(o.name for o in truth)
        assert len(seen) == 4
        for o in seen:
            true = next(t for t in truth if t.name == o.name)
            assert np.linalg.norm(o.position - true.position) < 0.02, o.name
        assert world.source == "agent-view and wrist cameras at t=0.0 s"
        assert "depth" not in " ".join(world.obs)  # depth is perception's alone, not the policy's
        reply = Agent(world).handle("what do you see?")
        assert reply.text.endswith("(from the agent-view and wrist cameras at t=0.0 s).")
    finally:
        world.close()


def test_a_small_world_perceives_at_its_own_size():
    world = SimWorld("PickUp", seed=2, image_size=32, cameras=("agentview",))
    try:
        assert sorted(o.name for o in world.objects()) == ["orange cube", "yellow cylinder"]
        assert world.obs["agentview"].shape == (32, 32, 3)
        assert world.source == "agent-view camera at t=0.0 s"
    finally:
        world.close()


def test_ground_truth_still_answers():
    world = SimWorld("PickUp", seed=5, image_size=32, cameras=("agentview",), world_source="ground-truth")
    try:
        assert world.source == "simulator state"
        assert sorted(o.name for o in world.objects()) == sorted(
            ["green cube", "red cube", "red cylinder", "yellow cylinder"])
    finally:
        world.close()


def test_an_unknown_world_source_is_one_line():
    with pytest.raises(UserError) as err:
        SimWorld("PickUp", world_source="oracle")
    assert "\n" not in str(err.value) and "perception" in str(err.value)


def test_no_view_of_the_table_is_an_empty_list_and_says_so():
    world = SimWorld("PickUp", seed=0, image_size=128, cameras=("agentview",))
    try:
        world._depth = {}  # the depth image went missing for this observation
        world._percept = None
        assert world.objects() == [] and world.receptacles() == []
        assert "no depth" in world.view_problem()
        agent = Agent(world)
        seen = agent.handle("what do you see?").text
        assert seen.startswith("I can't see the table: ") and "no depth" in seen
        assert agent.handle("where is the red cube?").text == seen  # no stale answer either
    finally:
        world.close()
