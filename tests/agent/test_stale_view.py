"""The agent never presents an old view as the table now: with a ``PerceivedWorld`` (the ROS
graph's world) whose last list is older than ``max_view_age_s``, commands are refused before the
policy is asked and scene questions say the table is not in view; a fresh list lifts both."""

import numpy as np

from agent.agent import Agent, AgentConfig
from agent.world import PerceivedWorld, SimWorld
from perception.scene import OK, SceneObject, ScenePercept
from policy.base import BasePolicy


class CountingPolicy(BasePolicy):
    def __init__(self) -> None:
        self.calls = 0

    def predict_chunk(self, observations, instructions):
        self.calls += 1
        return np.zeros((len(observations), 1, 7), np.float32)


def test_a_stale_view_refuses_a_command():
    now = [100.0]
    world = PerceivedWorld(clock=lambda: now[0])
    policy = CountingPolicy()
    agent = Agent(world, policy=policy, config=AgentConfig(max_view_age_s=1.0))
    red = SceneObject(1, "red", "cube", (0.5, 0.1, 0.02), (0.04, 0.04, 0.04))
    world.update(ScenePercept(OK, 95.0, (red,), sources=("agentview",)))  # 5 s old
    reply = agent.handle("pick up the red cube")
    assert reply.kind == "refused" and "5.0 s old" in reply.text and policy.calls == 0
    where = agent.handle("where is the red cube?")
    assert "can't see the table" in where.text and "cm" not in where.text
    world.update(ScenePercept(OK, 99.6, (red,), sources=("agentview",)))  # 0.4 s old: current
    assert agent.check_command(agent_route(agent, "pick up the red cube")) is None
    assert "50 cm in front" in agent.handle("where is the red cube?").text


def agent_route(agent, text):
    from agent.router import route

    return route(text, *agent._vocabulary(), world=agent.world)


def test_sim_world_view_is_never_stale():
    world = SimWorld("Reach", seed=0, image_size=64, cameras=("agentview",))
    try:
        assert world.view_age_s() == 0.0 and not world.view_problem()
    finally:
        world.close()
