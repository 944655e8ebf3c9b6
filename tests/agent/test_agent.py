"""The in-process agent on a real MuJoCo scene: answers from world state, commands through the
safety filter until success/timeout, stop, refusals; a scripted expert stands in for the policy."""

import numpy as np

from agent.agent import Agent, AgentConfig
from agent.world import SimWorld
from policy.base import BasePolicy
from sim.tabletop.experts import make_expert


class ExpertPolicy(BasePolicy):
    """The scripted expert behind the policy interface (one-action chunks): proves the command
    loop can succeed. It reads the sim, so it serves this one world's robot only."""

    def __init__(self, world):
        self.world = world
        self.expert = None
        self.resets = 0

    def reset(self):
        self.resets += 1
        self.expert = make_expert(self.world.unwrapped, seed=0)
        self.expert.reset()

    def predict_chunk(self, observations, instructions):
        assert len(observations) == 1
        return np.asarray(self.expert.act(observations[0]), np.float32)[None, None]


def test_agent_answers_and_commands():
    world = SimWorld("PickUp", seed=3, image_size=32, cameras=("agentview",))
    agent = Agent(world, policy=ExpertPolicy(world), config=AgentConfig(max_steps=60))
    target = next(o for o in world.objects())
    seen = agent.handle("what do you see?")
    assert seen.kind == "answer" and target.name in seen.text
    where = agent.handle(f"where is the {target.name}?")
    assert np.allclose(where.data["position_m"], target.position)
    banana = agent.handle("pick up the golden banana")
    assert banana.kind == "clarify" and "golden banana" in banana.text  # asked back, never moved
    done = agent.handle(f"pick up the {target.name}")
    assert done.kind == "done" and done.data["success"] and done.data["steps"] < 60
    assert agent.policy.resets == 1  # every command starts a fresh episode of the policy
    assert "succeeded" in agent.handle("what did the robot just do?").text
    assert len(world.memory) == world.steps + 1
    assert agent.handle("stop").kind == "stopped"
    world.close()


def test_stop_ends_a_running_command():
    world = SimWorld("Reach", seed=1, image_size=32, cameras=("agentview",))
    policy = ExpertPolicy(world)
    agent = Agent(world, policy=policy, on_step=lambda i, a: agent.stop() if i == 1 else None)
    target = next(o for o in world.objects())
    reply = agent.handle(f"touch the {target.name}")
    assert reply.kind == "stopped" and "operator" in reply.text and reply.data["steps"] == 2
    world.close()


class StillPolicy(BasePolicy):
    """Chunks of four zero moves, of which the checkpoint plays two (replan=2)."""

    def __init__(self):
        self.calls = 0

    def predict_chunk(self, observations, instructions):
        self.calls += 1
        return np.zeros((len(observations), 4, 7), np.float32)

    def describe(self):
        return {"replan": 2}


def test_commands_play_chunks_through_the_executor():
    world = SimWorld("Reach", seed=1, image_size=32, cameras=("agentview",))
    policy = StillPolicy()
    agent = Agent(world, policy=policy, config=AgentConfig(max_steps=6))
    target = next(o for o in world.objects())
    reply = agent.handle(f"touch the {target.name}")
    assert reply.kind == "stopped" and "timeout" in reply.text and reply.data["steps"] == 6
    assert policy.calls == 3  # two actions of each chunk, then a new model call
    world.close()


class BrokenStateWorld(SimWorld):
    """A real scene whose proprioception reports NaN from the third step on (a dead joint encoder)."""

    def step(self, action):
        out = super().step(action)
        if self.steps >= 2:
            self.obs = {**self.obs, "state": np.full_like(self.obs["state"], np.nan)}
        return out


def test_nan_state_stops_the_command_and_the_reply_says_why():
    world = BrokenStateWorld("Reach", seed=1, image_size=32, cameras=("agentview",))
    policy = StillPolicy()
    moves = []
    agent = Agent(world, policy=policy, config=AgentConfig(max_steps=10), on_step=lambda i, a: moves.append(a))
    target = next(o for o in world.objects())
    reply = agent.handle(f"touch the {target.name}")
    assert reply.kind == "stopped"
    assert "NaN" in reply.text and "state" in reply.text and "could not act" in reply.text
    assert reply.data["steps"] == 2 and len(moves) == 2  # no action after the bad state arrived
    assert policy.calls == 1  # the bad observation never reached the model
    world.close()
