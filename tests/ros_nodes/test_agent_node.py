"""The agent node over real topics: questions answered from ground truth, commands become the
policy's instruction, stop is forwarded, episode ends are reported against the request id."""

import json

from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import Bool, String

from ros_nodes.agent_node import AgentNode
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS
from tests.ros_nodes.conftest import spin_until

GT = {"objects": [{"name": "red cube", "color": "red", "shape": "cube", "position": [0.5, 0.1, 0.02]},
                  {"name": "blue cylinder", "color": "blue", "shape": "cylinder", "position": [0.4, -0.2, 0.025]}],
      "receptacle": None}


def test_agent_node_routes_requests(ros):
    node = AgentNode()
    op = ros.create_node("operator")
    replies, instructions, stops = [], [], []
    op.create_subscription(String, "agent/reply", lambda m: replies.append(json.loads(m.data)), RELIABLE_QOS)
    op.create_subscription(String, "robot/instruction", lambda m: instructions.append(m.data), LATCHED_QOS)
    op.create_subscription(Bool, "robot/stop", lambda m: stops.append(m.data), RELIABLE_QOS)
    req = op.create_publisher(String, "agent/request", RELIABLE_QOS)
    gt = op.create_publisher(String, "sim/ground_truth", RELIABLE_QOS)
    episode = op.create_publisher(String, "sim/episode", LATCHED_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(op)
    assert spin_until(ex, lambda: (gt.publish(String(data=json.dumps(GT))), node.world.ground_truth is not None)[1])

    def ask(rid, text):
        req.publish(String(data=json.dumps({"id": rid, "text": text})))
        return spin_until(ex, lambda: any(r["id"] == rid for r in replies))

    assert ask(1, "where is the red cube?")
    where = next(r for r in replies if r["id"] == 1)
    assert where["kind"] == "answer" and "50 cm" in where["text"] and "left" in where["text"]
    assert ask(2, "pick up the blue cylinder")
    assert next(r for r in replies if r["id"] == 2)["kind"] == "accepted"
    assert spin_until(ex, lambda: instructions and instructions[-1] == "pick up the blue cylinder")
    assert ask(3, "pick up the green cube")
    absent = next(r for r in replies if r["id"] == 3)  # not on the table: asked back, not sent
    assert absent["kind"] == "clarify" and "green cube" in absent["text"]
    assert instructions[-1] == "pick up the blue cylinder"
    episode.publish(String(data=json.dumps({"event": "end", "success": True, "steps": 17})))
    assert spin_until(ex, lambda: sum(r["id"] == 2 for r in replies) == 2)
    assert [r for r in replies if r["id"] == 2][-1]["kind"] == "done"
    assert ask(4, "stop")
    assert spin_until(ex, lambda: True in stops)
    req.publish(String(data="not json"))  # dropped, node keeps serving
    assert ask(5, "what do you see?")
    assert "red cube" in next(r for r in replies if r["id"] == 5)["text"]
    ex.shutdown()
    node.destroy_node()
    op.destroy_node()
