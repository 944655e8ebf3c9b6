"""The agent node: operator text in (``agent/request``), routed, answered on ``agent/reply``.

Requests and replies are JSON in ``std_msgs/String`` with a request id: ``{"id": 7, "text": "..."}``
-> ``{"id": 7, "kind": "answer", "text": "..."}``. Questions about the scene are answered from
``sim/ground_truth`` (or perception on a real robot) with the same code as the in-process agent;
commands become the policy node's instruction (``robot/instruction``) and are reported when the
episode ends (``sim/episode``); "stop" publishes ``robot/stop``, which the policy node obeys at once.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from rclpy.node import Node
from std_msgs.msg import Bool, String

from agent.agent import Agent, Reply
from agent.router import route
from agent.world import WorldObject
from perception.buffer import FrameBuffer
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS


class TopicWorld:
    """What the agent knows of a robot it only sees through topics."""

    source = "sim/ground_truth"

    def __init__(self) -> None:
        self.ground_truth: dict[str, Any] | None = None
        self.memory = FrameBuffer(max_frames=256, max_age_s=None)
        self.fps = 10.0

    def objects(self) -> list[WorldObject]:
        gt = self.ground_truth or {}
        return [WorldObject(o["name"], o["color"], o["shape"], np.asarray(o["position"]))
                for o in gt.get("objects", [])]

    def receptacles(self) -> list[str]:
        rec = (self.ground_truth or {}).get("receptacle")
        return [rec["kind"]] if rec else []


class AgentNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("agent", **node_kwargs)
        self.world = TopicWorld()
        self.agent = Agent(self.world)  # questions only: commands go to the policy node
        self.pending: dict[str, Any] | None = None  # the command being executed: its request id
        self.reply_pub = self.create_publisher(String, "agent/reply", RELIABLE_QOS)
        self.instruction_pub = self.create_publisher(String, "robot/instruction", LATCHED_QOS)
        self.stop_pub = self.create_publisher(Bool, "robot/stop", RELIABLE_QOS)
        self.create_subscription(String, "agent/request", self._on_request, RELIABLE_QOS)
        self.create_subscription(String, "sim/ground_truth", self._on_ground_truth, RELIABLE_QOS)
        self.create_subscription(String, "sim/episode", self._on_episode, LATCHED_QOS)

    def _reply(self, rid: Any, reply: Reply) -> None:
        self.reply_pub.publish(String(data=json.dumps({"id": rid, "kind": reply.kind, "text": reply.text,
                                                       "data": reply.data}, default=float)))

    def _on_ground_truth(self, msg: String) -> None:
        try:
            self.world.ground_truth = json.loads(msg.data)
        except json.JSONDecodeError:
            self.get_logger().warning("dropped malformed ground truth JSON")

    def _on_request(self, msg: String) -> None:
        try:
            req = json.loads(msg.data)
            rid, text = req["id"], str(req["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            self.get_logger().warning("dropped a request that is not JSON {\"id\", \"text\"}")
            return
        r = route(text, *self.agent._vocabulary(), world=self.world)
        if r.kind == "stop":
            self.stop_pub.publish(Bool(data=True))
            self._reply(rid, Reply("stopped", "Stopping. The robot holds still."))
            return
        if r.kind == "clarify":
            self._reply(rid, Reply("clarify", r.question))
            return
        if r.kind != "command":
            self._reply(rid, self.agent.handle(text))
            return
        names = [o.name for o in self.world.objects()]
        if r.target not in names:
            self._reply(rid, Reply("refused", f"I cannot see a {r.target or 'target'} here; I see "
                                   f"{', '.join(names) or 'nothing yet'}."))
            return
        self.stop_pub.publish(Bool(data=False))
        self.instruction_pub.publish(String(data=text.strip()))
        self.pending = {"id": rid, "text": text}
        self._reply(rid, Reply("accepted", f"Working on it: {text.strip()}"))

    def _on_episode(self, msg: String) -> None:
        event = json.loads(msg.data)
        if event.get("event") == "end" and self.pending is not None:
            ok = bool(event.get("success"))
            text = (f"Done: {self.pending['text']} ({event.get('steps')} steps)." if ok else
                    f"I did not finish \"{self.pending['text']}\" within {event.get('steps')} steps.")
            self._reply(self.pending["id"], Reply("done" if ok else "stopped", text, event))
            self.pending = None


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(AgentNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
