"""The policy node on real rclpy: actions stamped like their images, bad images dropped, the watchdog
stops the robot when a remote inference server dies and resumes when it returns."""

import json

import numpy as np
import pytest
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import String

from policy.base import BasePolicy
from ros_nodes.convert import image_to_msg
from ros_nodes.policy_node import PolicyNode
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ros_nodes.services import PolicyService
from ros_nodes.zmq_client import InferenceClient, RemotePolicy
from ros_nodes.zmq_server import InferenceServer, ServerConfig
from tests.ros_nodes.conftest import restartable_endpoint, spin_until


class BrightnessPolicy(BasePolicy):
    """Deterministic one-action chunks: dx = mean brightness of the agent view, gripper closes on 'pick'."""

    def __init__(self):
        self.resets = 0
        self.calls = 0

    def predict_chunk(self, observations, instructions):
        self.calls += len(observations)
        return np.stack([[[o["agentview"].mean() / 255.0, 0, 0, 0, 0, 0, float("pick" in i)]]
                         for o, i in zip(observations, instructions)]).astype(np.float32)

    def reset(self):
        self.resets += 1


class ChunkOfThree(BasePolicy):
    """Chunks whose action j moves j+1 cm in x; the checkpoint plays 2 of each 3 (replan=2)."""

    def __init__(self):
        self.calls = 0

    def predict_chunk(self, observations, instructions):
        self.calls += 1
        chunk = np.zeros((len(observations), 3, 7), np.float32)
        chunk[:, :, 0] = [0.01, 0.02, 0.03]
        return chunk

    def describe(self):
        return {"replan": 2}


class Robot:
    """The test's side of the topics: publishes camera images, records commands."""

    def __init__(self, ros, cameras=("agentview",)):
        self.node = ros.create_node("test_robot")
        self.img_pubs = {c: self.node.create_publisher(Image, f"camera/{c}/image_raw", SENSOR_QOS) for c in cameras}
        self.instr_pub = self.node.create_publisher(String, "robot/instruction", LATCHED_QOS)
        self.twists, self.grips, self.status = [], [], []
        self.node.create_subscription(TwistStamped, "robot/cmd_twist", self.twists.append, RELIABLE_QOS)
        self.node.create_subscription(JointState, "robot/cmd_gripper", self.grips.append, RELIABLE_QOS)
        self.node.create_subscription(String, "policy/status", lambda m: self.status.append(json.loads(m.data)),
                                      RELIABLE_QOS)

    def publish(self, value: int, stamp, cameras=("agentview",)):
        for c in cameras:
            self.img_pubs[c].publish(image_to_msg(np.full((8, 8, 3), value, np.uint8), stamp, c))


def make_node(policy, **params):
    """A policy node with parameters set the way a launcher sets them (overrides)."""
    return PolicyNode(policy, parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])


def wire(ros, node, instruction: str):
    """The node under test and a fake robot on one executor, with the instruction published."""
    robot = Robot(ros)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(robot.node)
    robot.instr_pub.publish(String(data=instruction))
    return robot, ex


def test_observation_mode_answers_each_image_once_with_its_stamp(ros):
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview"], mode="observation")
    robot, ex = wire(ros, node, "pick up the red cube")
    assert spin_until(ex, lambda: node.instruction == "pick up the red cube")
    stamp = robot.node.get_clock().now().to_msg()
    assert spin_until(ex, lambda: (robot.publish(51, stamp), len(robot.twists) >= 1)[1], timeout_s=10)
    calls_after_first = backend.calls
    robot.publish(51, stamp)  # a re-sent observation: answered again, not re-predicted
    spin_until(ex, lambda: len(robot.twists) >= 2, timeout_s=3)
    twist = robot.twists[0]
    assert (twist.header.stamp.sec, twist.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)
    assert twist.twist.linear.x == pytest.approx(0.2, abs=1e-6)
    assert spin_until(ex, lambda: len(robot.grips) >= 1)
    assert robot.grips[0].position[0] == 1.0 and robot.grips[0].name == ["gripper"]
    assert backend.calls == calls_after_first
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_node_plays_chunks_through_the_executor_with_the_policys_replan(ros):
    policy = ChunkOfThree()
    node = make_node(policy, cameras=["agentview"], mode="observation")
    robot, ex = wire(ros, node, "go")
    assert spin_until(ex, lambda: node.instruction == "go")
    played = []
    for n in range(1, 4):
        stamp = robot.node.get_clock().now().to_msg()

        def answered():
            robot.publish(10 * n, stamp)
            return [t for t in robot.twists if (t.header.stamp.sec, t.header.stamp.nanosec) == (stamp.sec, stamp.nanosec)]

        assert spin_until(ex, answered, timeout_s=10)
        played.append(round(answered()[0].twist.linear.x, 3))
    # Two actions of each chunk, then a fresh chunk: 1, 2, 1 cm, from two model calls.
    assert played == [0.01, 0.02, 0.01]
    assert policy.calls == 2
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_reset_is_acked_every_time_but_handled_once(ros):
    """A lock-step sim re-sends an unacknowledged reset; each copy is acknowledged, but only the
    first resets the model (a late copy mid-episode would drop the action chunk being played)."""
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview"], mode="observation")
    robot, ex = wire(ros, node, "push")
    episode = robot.node.create_publisher(String, "sim/episode", LATCHED_QOS)
    event = json.dumps({"event": "reset", "episode": 3, "seed": 103, "instruction": "pick it", "stamp": [0, 0]})

    def acks():
        return [s for s in robot.status if s.get("state") == "reset" and s.get("episode") == 3]

    assert spin_until(ex, lambda: node.instruction == "push")
    assert spin_until(ex, lambda: (episode.publish(String(data=event)), len(acks()) >= 1)[1])
    resets = backend.resets
    assert resets >= 1 and node.instruction == "pick it"
    assert spin_until(ex, lambda: (episode.publish(String(data=event)), len(acks()) >= 4)[1])
    assert backend.resets == resets
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_a_stopped_observation_is_retried_when_resent(ros):
    """Lock-step: an observation answered with a stop (here: no instruction yet) is not marked done,
    so the sim's re-sent copy gets a real action once the instruction arrives (no deadlock)."""
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview"], mode="observation")
    robot = Robot(ros)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(robot.node)
    stamp = robot.node.get_clock().now().to_msg()
    assert spin_until(ex, lambda: (robot.publish(51, stamp), any(s["state"] == "stopped" for s in robot.status))[1])
    assert backend.calls == 0
    robot.instr_pub.publish(String(data="pick up the cube"))
    assert spin_until(ex, lambda: (robot.publish(51, stamp), backend.calls >= 1)[1])
    assert spin_until(ex, lambda: any(t.header.stamp.sec == stamp.sec and t.header.stamp.nanosec == stamp.nanosec
                                      and t.twist.linear.x > 0.1 for t in robot.twists))
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_malformed_images_are_dropped_and_node_keeps_running(ros):
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview"], mode="observation")
    robot, ex = wire(ros, node, "push")
    assert spin_until(ex, lambda: node.instruction == "push")
    bad = image_to_msg(np.zeros((8, 8, 3), np.uint8))
    bad.step = 3  # too small for 8 RGB pixels
    worse = image_to_msg(np.zeros((8, 8, 3), np.uint8))
    worse.encoding = "yuv422"

    def send_bad():
        robot.img_pubs["agentview"].publish(bad)
        robot.img_pubs["agentview"].publish(worse)
        return node.dropped >= 2

    assert spin_until(ex, send_bad)
    stamp = robot.node.get_clock().now().to_msg()
    assert spin_until(ex, lambda: (robot.publish(255, stamp), len(robot.twists) >= 1)[1])
    assert robot.twists[-1].twist.linear.x == pytest.approx(1.0)
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_watchdog_stops_when_server_dies_and_resumes(ros):
    server = InferenceServer([PolicyService(BrightnessPolicy())],
                             ServerConfig(endpoint=restartable_endpoint())).start()
    endpoint = server.endpoint
    backend = RemotePolicy(InferenceClient(endpoint, timeout_ms=100))
    node = make_node(backend, cameras=["agentview"], mode="timer", rate_hz=20.0, deadline_ms=200.0)
    robot, ex = wire(ros, node, "go")

    def feed_and(check):
        def step():
            robot.publish(128, robot.node.get_clock().now().to_msg())
            return check()
        return step

    assert spin_until(ex, feed_and(lambda: any(s["state"] == "running" for s in robot.status)))
    assert robot.twists[-1].twist.linear.x > 0.4
    server.stop()
    n = len(robot.twists)
    assert spin_until(ex, feed_and(lambda: any(s["state"] == "stopped" and "model" in s["reason"]
                                               for s in robot.status)))
    # After the stop, every command is a zero twist (the gripper is held, not opened).
    assert spin_until(ex, feed_and(lambda: len(robot.twists) > n + 2))
    assert robot.twists[-1].twist.linear.x == 0.0
    server = InferenceServer([PolicyService(BrightnessPolicy())], ServerConfig(endpoint=endpoint)).start()
    robot.status.clear()
    assert spin_until(ex, feed_and(lambda: any(s["state"] == "running" for s in robot.status)), timeout_s=15)
    assert spin_until(ex, feed_and(lambda: robot.twists[-1].twist.linear.x > 0.4))
    server.stop()
    ex.shutdown()
    node.close()
    node.destroy_node()
    robot.node.destroy_node()


def test_watchdog_stops_when_images_go_stale(ros):
    node = make_node(BrightnessPolicy(), cameras=["agentview"], mode="timer", rate_hz=20.0, deadline_ms=150.0)
    robot, ex = wire(ros, node, "go")
    assert spin_until(ex, lambda: (robot.publish(200, robot.node.get_clock().now().to_msg()),
                                   any(s["state"] == "running" for s in robot.status))[1])
    # No more images: within the deadline (plus a tick) the node must report a stale stop.
    assert spin_until(ex, lambda: any(s["state"] == "stopped" and "images" in s["reason"] for s in robot.status),
                      timeout_s=5)
    assert robot.twists[-1].twist.linear.x == 0.0
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_nan_state_stops_the_robot_with_the_reason(ros):
    """Observation mode with proprioception: a joint state with a NaN is refused (no action, a zero
    twist) and the reason is published and logged; the next sane state acts again."""
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview"], mode="observation", use_state=True)
    robot, ex = wire(ros, node, "pick it")
    joints = robot.node.create_publisher(JointState, "robot/joint_states", SENSOR_QOS)
    assert spin_until(ex, lambda: node.instruction == "pick it")

    def observe(value, position):
        stamp = robot.node.get_clock().now().to_msg()
        state = JointState()
        state.header.stamp = stamp
        state.position = position
        return stamp, state, lambda: (robot.publish(value, stamp), joints.publish(state))

    stamp, _, send = observe(200, [0.1, float("nan"), 0.3])
    assert spin_until(ex, lambda: (send(), any(s["state"] == "stopped" and "refused" in s["reason"]
                                               for s in robot.status))[1])
    reason = next(s["reason"] for s in robot.status if s["state"] == "stopped" and "refused" in s["reason"])
    assert "NaN" in reason
    assert backend.calls == 0  # the model never saw it
    assert all(t.twist.linear.x == 0.0 for t in robot.twists)  # only stops were sent
    stamp, _, send = observe(200, [0.1, 0.2, 0.3])
    assert spin_until(ex, lambda: (send(), any(t.twist.linear.x > 0.5 for t in robot.twists))[1])
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


def test_incomplete_observation_sets_are_bounded_and_future_stamps_dropped(ros):
    from ros_nodes.policy_node import PENDING_MAX

    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview", "wrist"], mode="observation")
    robot, ex = wire(ros, node, "go")
    robot.img_pubs["wrist"] = robot.node.create_publisher(Image, "camera/wrist/image_raw", SENSOR_QOS)
    assert spin_until(ex, lambda: node.instruction == "go")
    clock = robot.node.get_clock()
    sent = []

    def one_camera():  # the wrist camera is dead: every agentview frame starts a set that never completes
        stamp = clock.now().to_msg()
        sent.append(stamp)
        robot.publish(100, stamp)
        return node.expired >= 10

    assert spin_until(ex, one_camera)
    assert len(node._pending) <= PENDING_MAX
    assert backend.calls == 0
    future = clock.now().to_msg()
    future.sec += 30
    assert spin_until(ex, lambda: (robot.publish(100, future, ("agentview", "wrist")), node.future_stamps >= 2)[1])
    assert backend.calls == 0 and not robot.twists
    stamp = clock.now().to_msg()  # both cameras, a sane stamp: answered
    assert spin_until(ex, lambda: (robot.publish(100, stamp, ("agentview", "wrist")), len(robot.twists) >= 1)[1])
    ex.shutdown()
    node.destroy_node()
    robot.node.destroy_node()


class LongChunks(BasePolicy):
    """Eight-action chunks (400 ms at 20 Hz) that move forward: plenty left in the queue at a kill."""

    def predict_chunk(self, observations, instructions):
        chunk = np.zeros((len(observations), 8, 7), np.float32)
        chunk[:, :, 0] = 0.5
        return chunk


def test_killing_the_server_stops_the_robot_within_the_deadline_every_time(ros):
    """10 kills of a real inference server at random points of the chunk being played: each time the
    robot gets a zero twist within the 200 ms deadline of the kill, and moves again on restart."""
    import random
    import time

    deadline_ms = 200.0
    server = InferenceServer([PolicyService(LongChunks())], ServerConfig(endpoint=restartable_endpoint())).start()
    endpoint = server.endpoint
    backend = RemotePolicy(InferenceClient(endpoint, timeout_ms=150))
    node = make_node(backend, cameras=["agentview"], mode="timer", rate_hz=20.0, deadline_ms=deadline_ms)
    robot, ex = wire(ros, node, "go")
    arrivals = []  # (monotonic arrival, linear.x) of every command the robot received
    robot.node.create_subscription(TwistStamped, "robot/cmd_twist",
                                   lambda m: arrivals.append((time.monotonic(), m.twist.linear.x)), RELIABLE_QOS)

    def feed(check):
        def step():
            robot.publish(128, robot.node.get_clock().now().to_msg())
            return check()
        return step

    rng = random.Random(0)
    latencies = []
    try:
        for trial in range(10):
            if trial:
                server = InferenceServer([PolicyService(LongChunks())], ServerConfig(endpoint=endpoint)).start()
            mark = len(arrivals)
            # Moving again after the (re)start: several forward commands in a row.
            assert spin_until(ex, feed(lambda: sum(x > 0.4 for _, x in arrivals[mark:]) >= 4), timeout_s=20), trial
            end = time.monotonic() + rng.uniform(0.0, 0.4)  # anywhere in the 8-action chunk
            spin_until(ex, feed(lambda: time.monotonic() > end), timeout_s=1)
            mark = len(arrivals)
            killed = time.monotonic()
            server.stop()
            assert spin_until(ex, feed(lambda: any(x == 0.0 for _, x in arrivals[mark:])), timeout_s=5), trial
            stopped = next(t for t, x in arrivals[mark:] if x == 0.0)
            latencies.append(stopped - killed)
    finally:
        server.stop()
        print(f"stop latency after kill (ms): {sorted(round(x * 1000) for x in latencies)}")
        ex.shutdown()
        node.close()
        node.destroy_node()
        robot.node.destroy_node()
    assert len(latencies) == 10
    assert max(latencies) < deadline_ms / 1000.0, latencies
