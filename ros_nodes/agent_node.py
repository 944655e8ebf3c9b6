"""The agent node: operator text in (``agent/request``), routed, answered on ``agent/reply``.

Requests and replies are JSON in ``std_msgs/String`` with a request id: ``{"id": 7, "text": "..."}``
-> ``{"id": 7, "kind": "answer", "text": "..."}``. The agent's world is what the perception node
reports on ``perception/objects`` (``agent.world.PerceivedWorld``), answered with the same code as
the in-process agent; nothing here reads the simulator's ground truth. A list older than
``max_view_age_s`` (a perception node that stopped, a camera that froze) is never presented as
current: questions about the scene get "I can't see the table" and commands are refused.

A command the agent accepts goes to the policy node as ``robot/instruction`` and, as JSON, on
``agent/command`` (id, text, family, target, side, receptacle: what a simulator scores it against);
it is reported when the episode ends (``sim/episode``). "stop" publishes ``robot/stop``, which the
policy node obeys at once.

Nothing is promised that no node will hear: a command is refused while no subscriber has matched
``robot/instruction`` (no policy node running, or one that DDS discovery has left deaf to this
node: docs/ros.md, "Known problem"), and a stop that no subscriber of ``robot/stop`` can receive
is answered as an error, not as "the robot holds still".
"""

from __future__ import annotations

import json
from typing import Any

from rclpy.node import Node
from std_msgs.msg import Bool, String

from agent.agent import Agent, AgentConfig, Reply
from agent.router import get_router, route
from agent.world import PerceivedWorld
from ros_nodes.convert import BadMessage, percept_from_json
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS, declare


# Why a topic may have no subscriber although the graph was launched: said in every such reply.
NOBODY = ("no policy node has connected (is it running? on one machine, Fast DDS discovery sometimes "
          "leaves a node deaf to the others: restart it, docs/ros.md)")


class AgentNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("agent", **node_kwargs)
        max_view_age_s = float(declare(self, "max_view_age_s", AgentConfig.max_view_age_s))
        if not 0 < max_view_age_s < float("inf"):
            raise NodeParameterError(f"parameter max_view_age_s must be positive, got {max_view_age_s}")
        self.world = PerceivedWorld(clock=lambda: self.get_clock().now().nanoseconds * 1e-9)
        # Questions only: commands go to the policy node.
        self.agent = Agent(self.world, config=AgentConfig(max_view_age_s=max_view_age_s))
        get_router()  # load the sentence encoder now (seconds), not while the first request waits
        self.pending: dict[str, Any] | None = None  # the command being executed: its request id
        self.bad_lists = 0
        self.reply_pub = self.create_publisher(String, "agent/reply", RELIABLE_QOS)
        self.instruction_pub = self.create_publisher(String, "robot/instruction", LATCHED_QOS)
        self.command_pub = self.create_publisher(String, "agent/command", RELIABLE_QOS)
        self.stop_pub = self.create_publisher(Bool, "robot/stop", RELIABLE_QOS)
        self.create_subscription(String, "agent/request", self._on_request, RELIABLE_QOS)
        self.create_subscription(String, "perception/objects", self._on_objects, RELIABLE_QOS)
        self.create_subscription(String, "sim/episode", self._on_episode, LATCHED_QOS)

    def _reply(self, rid: Any, reply: Reply) -> None:
        self.reply_pub.publish(String(data=json.dumps({"id": rid, "kind": reply.kind, "text": reply.text,
                                                       "data": reply.data}, default=float)))

    def _on_objects(self, msg: String) -> None:
        try:
            self.world.update(percept_from_json(msg.data))
        except BadMessage as exc:
            self.bad_lists += 1
            self.get_logger().warning(f"dropped a malformed object list ({self.bad_lists} so far): {exc}",
                                      throttle_duration_sec=5.0)

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
            if self.stop_pub.get_subscription_count() == 0:
                self._reply(rid, Reply("error", "Stop sent, but no node is listening on robot/stop: "
                                       f"{NOBODY}. Stop the robot by other means."))
                return
            if self.pending is not None:  # the command ends here, whatever the episode does next
                self._reply(self.pending["id"], Reply("stopped", f"Stopped \"{self.pending['text']}\" "
                                                      "at the operator's request."))
                self.pending = None
            self._reply(rid, Reply("stopped", "Stopping. The robot holds still."))
            return
        if r.kind != "command":  # questions, clarifications, help: the in-process agent's answers
            self._reply(rid, self.agent.respond(text))
            return
        refusal = self.agent.check_command(r)
        if refusal is not None:
            self.get_logger().info(f"refused {text!r}: {refusal.text}")
            self._reply(rid, refusal)
            return
        if self.pending is not None:
            self._reply(rid, Reply("refused", f"I am still working on \"{self.pending['text']}\"; "
                                   "say stop first."))
            return
        if self.instruction_pub.get_subscription_count() == 0:
            self._reply(rid, Reply("refused", f"No robot is listening on robot/instruction: {NOBODY}."))
            return
        instruction = text.strip()
        self.stop_pub.publish(Bool(data=False))
        self.command_pub.publish(String(data=json.dumps({
            "id": rid, "text": instruction, "family": r.family, "target": r.target, "side": r.side,
            "receptacle": r.receptacle})))
        self.instruction_pub.publish(String(data=instruction))
        self.pending = {"id": rid, "text": instruction}
        self._reply(rid, Reply("accepted", f"Working on it: {instruction}"))

    def _on_episode(self, msg: String) -> None:
        try:
            event = json.loads(msg.data)
        except json.JSONDecodeError:
            return
        if event.get("event") == "end" and self.pending is not None:
            ok = bool(event.get("success"))
            if event.get("error"):
                text = f"I cannot do \"{self.pending['text']}\" here: {event['error']}"
            elif ok:
                text = f"Done: {self.pending['text']} ({event.get('steps')} steps)."
            else:
                text = f"I did not finish \"{self.pending['text']}\" within {event.get('steps')} steps."
            self._reply(self.pending["id"], Reply("done" if ok else "stopped", text, event))
            self.pending = None


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(AgentNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
