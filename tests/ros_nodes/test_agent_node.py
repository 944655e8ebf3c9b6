"""The agent node over real topics: questions answered from the perception node's object list,
commands become the policy's instruction (and a structured ``agent/command``), stop is forwarded,
episode ends are reported against the request id; a list older than ``max_view_age_s``, or one
where the table is not in view, is never presented as what is there now."""

import json

from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import Bool, String

from perception.scene import NOTHING_HERE, OK, SceneObject, ScenePercept
from ros_nodes.agent_node import AgentNode
from ros_nodes.convert import percept_to_json
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS
from tests.ros_nodes.conftest import spin_until

OBJECTS = (SceneObject(1, "red", "cube", (0.5, 0.1, 0.02), (0.04, 0.04, 0.04), 0.1),
           SceneObject(2, "blue", "cylinder", (0.4, -0.2, 0.025), (0.04, 0.04, 0.05)))


class Operator:
    """Talks to the agent node; with ``listen`` (default) it also stands in for the robot side,
    subscribing to ``robot/instruction`` and ``robot/stop`` as a policy node would."""

    def __init__(self, ros, node: AgentNode, listen: bool = True) -> None:
        self.node, self.op = node, ros.create_node("operator")
        self.replies, self.instructions, self.stops, self.commands = [], [], [], []
        op = self.op
        op.create_subscription(String, "agent/reply", lambda m: self.replies.append(json.loads(m.data)), RELIABLE_QOS)
        if listen:
            op.create_subscription(String, "robot/instruction", lambda m: self.instructions.append(m.data),
                                   LATCHED_QOS)
            op.create_subscription(Bool, "robot/stop", lambda m: self.stops.append(m.data), RELIABLE_QOS)
        op.create_subscription(String, "agent/command", lambda m: self.commands.append(json.loads(m.data)),
                               RELIABLE_QOS)
        self.req = op.create_publisher(String, "agent/request", RELIABLE_QOS)
        self.lists = op.create_publisher(String, "perception/objects", RELIABLE_QOS)
        self.episode = op.create_publisher(String, "sim/episode", LATCHED_QOS)
        self.ex = SingleThreadedExecutor()
        self.ex.add_node(node)
        self.ex.add_node(op)
        self.rid = 0

    def see(self, objects=OBJECTS, age_s: float = 0.0, status: str = OK, reason: str = "") -> None:
        """Publish a list stamped ``age_s`` before now, and wait until the agent holds it."""
        now = self.node.get_clock().now().nanoseconds * 1e-9
        stamp = self.node.get_clock().now().to_msg()
        t = now - age_s
        stamp.sec, stamp.nanosec = int(t), int((t % 1) * 1e9)
        percept = ScenePercept(status, t, objects if status == OK else (), sources=("agentview",), reason=reason)
        text = percept_to_json(percept, stamp)
        assert spin_until(self.ex, lambda: (self.lists.publish(String(data=text)), self.node.world.percept is not None
                                            and abs(self.node.world.percept.stamp - t) < 1e-6)[1])

    def ask(self, text: str) -> dict:
        self.rid += 1
        rid = self.rid
        self.req.publish(String(data=json.dumps({"id": rid, "text": text})))
        assert spin_until(self.ex, lambda: any(r["id"] == rid for r in self.replies), 60.0), text
        return next(r for r in self.replies if r["id"] == rid)

    def close(self) -> None:
        self.ex.shutdown()
        self.node.destroy_node()
        self.op.destroy_node()


def test_agent_node_routes_requests(ros):
    o = Operator(ros, AgentNode())
    o.see()
    where = o.ask("where is the red cube?")
    assert where["kind"] == "answer" and "50 cm" in where["text"] and "left" in where["text"]
    assert "agent-view camera" in where["text"]
    accepted = o.ask("pick up the blue cylinder")
    assert accepted["kind"] == "accepted"
    assert spin_until(o.ex, lambda: o.instructions and o.instructions[-1] == "pick up the blue cylinder")
    assert spin_until(o.ex, lambda: bool(o.commands))
    assert o.commands[-1] == {"id": accepted["id"], "text": "pick up the blue cylinder", "family": "pick_up",
                              "target": "blue cylinder", "side": "", "receptacle": ""}
    absent = o.ask("pick up the green cube")  # not on the table: asked back, not sent
    assert absent["kind"] == "clarify" and "green cube" in absent["text"]
    assert o.instructions[-1] == "pick up the blue cylinder"
    o.episode.publish(String(data=json.dumps({"event": "end", "success": True, "steps": 17})))
    assert spin_until(o.ex, lambda: sum(r["id"] == accepted["id"] for r in o.replies) == 2)
    assert [r for r in o.replies if r["id"] == accepted["id"]][-1]["kind"] == "done"
    assert o.ask("stop")["kind"] == "stopped"
    assert spin_until(o.ex, lambda: True in o.stops)
    o.req.publish(String(data="not json"))  # dropped, node keeps serving
    o.lists.publish(String(data='{"status": "ok"}'))  # a malformed list is dropped, the last one kept
    seen = o.ask("what do you see?")
    assert "red cube" in seen["text"] and "blue cylinder" in seen["text"]
    o.close()


def test_a_stale_view_refuses_commands_and_is_not_presented_as_current(ros):
    node = AgentNode(parameter_overrides=[Parameter("max_view_age_s", value=1.0)])
    o = Operator(ros, node)
    o.see(age_s=5.0)  # the last list is 5 s old: a perception node that stopped
    cmd = o.ask("pick up the red cube")
    assert cmd["kind"] == "refused" and "can't see the table" in cmd["text"] and "s old (older than 1 s)" in cmd["text"]
    assert not o.commands and not o.instructions
    seen = o.ask("what do you see?")
    assert "can't see the table" in seen["text"] and "red cube" not in seen["text"]
    o.see(age_s=0.0)  # fresh again: the same command goes through
    assert o.ask("pick up the red cube")["kind"] == "accepted"
    o.close()


def test_no_table_in_view_is_an_honest_answer(ros):
    o = Operator(ros, AgentNode())
    assert "can't see the table" in o.ask("what do you see?")["text"]  # no list at all yet
    o.see(status=NOTHING_HERE, reason="the table is not visible (agentview: no depth)")
    seen = o.ask("what do you see?")
    assert "can't see the table" in seen["text"] and "no depth" in seen["text"]
    cmd = o.ask("pick up the red cube")
    assert cmd["kind"] == "refused" and "can't see the table" in cmd["text"] and not o.commands
    o.see(objects=())  # the table in view and empty: that is an answer, not blindness
    assert o.ask("what do you see?")["text"].startswith("I see nothing on the table")
    o.close()


def test_nothing_is_promised_that_no_node_will_hear(ros):
    """No subscriber on robot/instruction or robot/stop (no policy node, or a deaf one): a command
    is refused and a stop is an error, instead of "working on it" and "the robot holds still"."""
    o = Operator(ros, AgentNode(), listen=False)
    o.see()
    command = o.ask("pick up the red cube")
    assert command["kind"] == "refused" and "No robot is listening" in command["text"], command
    assert o.node.pending is None and not o.commands
    stop = o.ask("stop")
    assert stop["kind"] == "error" and "no node is listening on robot/stop" in stop["text"], stop
    o.close()
