"""The policy node in async execution against a real ZeroMQ inference server on loopback whose every
reply takes 200 ms (four control periods at 20 Hz): the commands keep their rate (no stall at chunk
boundaries), killing the server still stops the robot within the deadline, and the robot moves
again when the server returns."""

import threading
import time

import numpy as np
from geometry_msgs.msg import TwistStamped

from policy.base import BasePolicy, ChunkDistribution
from ros_nodes.runtime import RELIABLE_QOS
from ros_nodes.services import PolicyService
from ros_nodes.zmq_client import InferenceClient, RemotePolicy
from ros_nodes.zmq_server import InferenceServer, ServerConfig
from tests.ros_nodes.conftest import restartable_endpoint, spin_until
from tests.ros_nodes.test_policy_node import make_node, wire

REPLY_S = 0.2
RATE_HZ = 20.0
# Chunks are >= 200 ms old when they arrive, and with one call at a time (RemotePolicy) the next
# is asked only when one has arrived: a chunk must stay playable (younger than 0.6 x deadline - a
# period) for two replies rounded up to ticks, 0.5 s at 200 ms. 1 s left one tick of margin (a
# stall at any reply over 250 ms); 1.2 s still stopped the robot twice in 2.5 s in one CI run of
# the whole suite (replies stretched past 350 ms in a process that had run 500 tests). 2 s covers
# replies up to about 550 ms; the kill below must still stop the robot within it.
DEADLINE_MS = 2000.0


class SlowForward(BasePolicy):
    """A slow model: every call takes 200 ms, then twelve forward actions (600 ms at 20 Hz), with
    the distribution behind them (the node's default ``guided`` blend asks the server for it):
    forward speed 0.5 or 0.6, equally likely."""

    def predict_chunk(self, observations, instructions):
        return self.predict_chunk_distribution(observations, instructions).actions

    def predict_chunk_distribution(self, observations, instructions):
        time.sleep(REPLY_S)
        chunk = np.zeros((len(observations), 12, 7), np.float32)
        chunk[:, :, 0] = 0.5
        values = np.zeros((7, 2), np.float32)
        values[0] = [0.5, 0.6]
        log_probs = np.full((*chunk.shape, 2), np.log(0.5), np.float32)
        return ChunkDistribution(chunk, log_probs, values)

    def describe(self):
        return {"distribution": True}


def serve(endpoint=None):
    endpoint = endpoint or restartable_endpoint()  # restarted on the same port below
    return InferenceServer([PolicyService(SlowForward())], ServerConfig(endpoint=endpoint)).start()


def test_async_node_keeps_its_rate_on_a_slow_server_and_stops_when_it_dies(ros):
    server = serve()
    endpoint = server.endpoint
    policy = RemotePolicy(InferenceClient(endpoint, timeout_ms=1000), distribution=True)
    node = make_node(policy, cameras=["agentview"], mode="timer", rate_hz=RATE_HZ,
                     deadline_ms=DEADLINE_MS, execution="async")
    robot, ex = wire(ros, node, "go")
    arrivals = []  # (monotonic arrival, linear.x) of every command
    robot.node.create_subscription(TwistStamped, "robot/cmd_twist",
                                   lambda m: arrivals.append((time.monotonic(), m.twist.linear.x)), RELIABLE_QOS)

    def feed(check):
        def step():
            robot.publish(128, robot.node.get_clock().now().to_msg())
            return check()
        return step

    try:
        assert spin_until(ex, feed(lambda: sum(x > 0.4 for _, x in arrivals) >= 5), timeout_s=20)
        mark = len(arrivals)
        end = time.monotonic() + 2.5  # about four chunk boundaries at this rate
        spin_until(ex, feed(lambda: time.monotonic() > end), timeout_s=5)
        moving = arrivals[mark:]
        gaps = np.diff([t for t, _ in moving])
        # Every command moves the robot (no stop, no stall at a boundary), at about the timer's rate:
        # a synchronous node would go quiet for the 200 ms reply at every chunk boundary.
        # (A loaded 2-core CI machine may starve the node's timer for a tick or two: allow two, as
        # for the gaps below; a synchronous node stops at every boundary.)
        assert sum(x <= 0.4 for _, x in moving) <= 2, ([round(x, 2) for _, x in moving], np.round(np.diff([t for t, _ in moving]), 3).tolist())
        assert len(moving) >= 25, len(moving)  # 50 at 20 Hz; a loaded machine gets half
        # The guided blend plays the belief's mean (0.55), not its first choice (0.5): the
        # distribution crossed the wire with every chunk.
        assert abs(np.median([x for _, x in moving]) - 0.55) < 1e-3, [round(x, 3) for _, x in moving]
        assert np.median(gaps) < 2.0 / RATE_HZ, gaps
        assert (gaps > REPLY_S).sum() <= 2, np.round(gaps, 3)  # no reply-length silences (2 hiccups allowed)
        # the first step waits for the model; later short waits happen (9 of 49 commands on a quiet
        # machine at commit fd3abb7, not yet explained: the gap checks above, what the robot feels,
        # pass), but never one in four commands
        assert node.chunks.waits <= max(1, len(moving) // 4), (node.chunks.waits, len(moving))

        mark = len(arrivals)
        killed = time.monotonic()
        # The server dies on its own thread while the robot side keeps spinning (stop() joins the
        # server's threads, which can take seconds with a request in the model).
        killer = threading.Thread(target=server.stop)
        killer.start()
        assert spin_until(ex, feed(lambda: any(x == 0.0 for _, x in arrivals[mark:])), timeout_s=5)
        stopped = next(t for t, x in arrivals[mark:] if x == 0.0)
        assert stopped - killed < DEADLINE_MS / 1000.0, stopped - killed
        assert any(s["state"] == "stopped" and "model" in s["reason"] for s in robot.status)
        killer.join()

        server = serve(endpoint)
        mark = len(arrivals)
        assert spin_until(ex, feed(lambda: sum(x > 0.4 for _, x in arrivals[mark:]) >= 5), timeout_s=20)
    finally:
        server.stop()
        ex.shutdown()
        node.close()
        node.destroy_node()
        robot.node.destroy_node()
