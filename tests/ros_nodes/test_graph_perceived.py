"""The operator's ROS graph with no ground truth on it: the sim robot (cameras, depth, camera poses;
``ground_truth`` off), the perception node, the agent node and the policy node, each its own
process on this test's private ROS_DOMAIN_ID with ROS_LOCALHOST_ONLY=1 (tests/conftest.py). The
operator asks what the robot sees and where an object is, and the answers must match the scene
(scored here, in this process, against the simulator: a scoring tool may read ground truth, the
graph never does); then a command runs to success with the shipped policy.

PickUp seed 2 holds a yellow cylinder and an orange cube; the shipped policy picks the cylinder up
in 14 steps from the sim's 64 px frames (checked in process), while perception reads its own
128 px RGB-D stream (``perception_size``), the size its accuracy was measured at.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
CKPT = ROOT / "checkpoints" / "vla-default"
TASK, SEED, COMMAND = "PickUp", 2, "pick up the yellow cylinder"


def _truth() -> dict[str, np.ndarray]:
    """Scoring only: where the simulator put each object in this scene."""
    import sim

    env = sim.make(TASK, cameras=())
    env.reset(seed=SEED)
    objects = {o["name"]: np.asarray(o["position"]) for o in env.unwrapped.ground_truth()["objects"]}
    env.close()
    return objects


@pytest.mark.skipif(not CKPT.is_dir(), reason="no shipped checkpoint")
def test_the_graph_answers_and_acts_from_perception_alone(tmp_path):
    """Once more, on a fresh ROS domain, if the first graph fails: Fast DDS's local discovery
    sometimes leaves a participant deaf to others, with every transport tried (LARGE_DATA, which
    the nodes use: 9 of 48 in eight starts of six processes here; docs/ros.md, "Known problem"),
    and one deaf node fails this whole graph. A real regression fails both tries; the retry is
    reported as a warning."""
    domain = int(os.environ["ROS_DOMAIN_ID"])
    try:
        _graph_answers_and_acts(tmp_path / "try1", domain)
    except AssertionError as first:
        warnings.warn(f"perceived graph failed once, retried on a fresh ROS domain (DDS discovery, "
                      f"docs/ros.md): {str(first).splitlines()[0][:200]}")
        _graph_answers_and_acts(tmp_path / "try2", domain + 30 if domain + 30 <= 232 else domain - 30)


def _graph_answers_and_acts(tmp_path: Path, domain: int) -> None:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from std_msgs.msg import String
    from visualization_msgs.msg import Marker, MarkerArray

    from perception.scene.answers import WHERE_TOLERANCE_M
    from ros_nodes.launch import Graph, NodeSpec
    from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS
    from tests.ros_nodes.test_ros_demo import _node_logs

    truth = _truth()
    cams = ["agentview", "wrist"]
    specs = [
        NodeSpec("sim_robot", params={"task": TASK, "seed": SEED, "episodes": 1, "exit_when_done": False,
                                      "cameras": cams, "image_size": 64, "perception_size": 128,
                                      "await_command": True, "handshake": True}),
        NodeSpec("perception", params={"cameras": cams, "topics": "camera/{camera}/rgbd", "track_cue": False}),
        NodeSpec("policy", params={"checkpoint": str(CKPT), "mode": "observation", "cameras": cams,
                                   "use_state": True}),
        NodeSpec("agent"),
    ]
    logs = tmp_path / "logs"
    rclpy.init(domain_id=domain)
    op = rclpy.create_node("operator")
    replies, lists, diagnostics, episodes, markers = [], [], [], [], []
    op.create_subscription(MarkerArray, "perception/markers", markers.append, RELIABLE_QOS)
    op.create_subscription(String, "agent/reply", lambda m: replies.append(json.loads(m.data)), RELIABLE_QOS)
    op.create_subscription(String, "perception/objects", lambda m: lists.append(json.loads(m.data)), RELIABLE_QOS)
    op.create_subscription(DiagnosticArray, "diagnostics", diagnostics.append, RELIABLE_QOS)
    op.create_subscription(String, "sim/episode", lambda m: episodes.append(json.loads(m.data)), LATCHED_QOS)
    request = op.create_publisher(String, "agent/request", RELIABLE_QOS)
    graph = Graph(specs, env={"ROS_DOMAIN_ID": str(domain)}, log_dir=logs)

    def spin_until(predicate, timeout_s: float, what) -> None:
        deadline = time.monotonic() + timeout_s
        while not predicate():
            assert time.monotonic() < deadline, \
                f"no {what() if callable(what) else what} within {timeout_s} s\n{_node_logs(logs)}"
            assert not graph.poll(), f"node(s) exited: {graph.poll()}\n{_node_logs(logs)}"
            rclpy.spin_once(op, timeout_sec=0.05)

    def ask(rid: int, text: str, kind: str = "", timeout_s: float = 30.0) -> dict:
        spin_until(lambda: request.get_subscription_count() > 0, 30.0, "agent subscribed to agent/request")
        request.publish(String(data=json.dumps({"id": rid, "text": text})))
        spin_until(lambda: any(r["id"] == rid and (not kind or r["kind"] == kind) for r in replies), timeout_s,
                   f"{kind or 'reply'} to {text!r}")
        return [r for r in replies if r["id"] == rid][-1]

    try:
        graph.start()
        # The first lists may come from one camera (the other's first frame not yet in): wait for
        # a list fused from both, as the agent would after a moment.
        spin_until(lambda: lists and lists[-1]["status"] == "ok" and len(lists[-1]["objects"]) == len(truth)
                   and set(lists[-1]["sources"]) == set(cams),
                   60.0, lambda: f"an object list with the {len(truth)} objects from {cams} (last: "
                   f"{ {k: lists[-1].get(k) for k in ('status', 'sources', 'views')} if lists else None})")
        # Nothing on the graph publishes or reads the simulator's ground truth.
        assert op.count_publishers("sim/ground_truth") == 0 and op.count_subscribers("sim/ground_truth") == 0
        listed = lists[-1]
        assert sorted(o["name"] for o in listed["objects"]) == sorted(truth)
        assert set(listed["sources"]) == set(cams) and listed["frame_id"] == "base"
        assert all(0.0 <= o["color_confidence"] <= 1.0 and len(o["size"]) == 3 for o in listed["objects"])

        # The agent answers from the lists it has received; right after discovery it may have none.
        spin_until(lambda: bool(markers), 10.0, "RViz markers")
        shapes = sorted(m.type for m in markers[-1].markers if m.ns == "objects")
        assert shapes == sorted({"cube": Marker.CUBE, "cylinder": Marker.CYLINDER}[n.split()[1]] for n in truth)
        # The agent answers from the lists it has received: right after it started (discovery on a
        # loaded machine takes seconds) it may honestly have none yet.
        seen, rid, deadline = ask(1, "what do you see?"), 100, time.monotonic() + 30.0
        while "no object list has come" in seen["text"] and time.monotonic() < deadline:
            t = time.monotonic() + 0.5
            spin_until(lambda: time.monotonic() > t, 5.0, "half a second")
            seen, rid = ask(rid, "what do you see?"), rid + 1
        assert seen["kind"] == "answer" and sorted(seen["data"].get("objects", [])) == sorted(truth), seen
        for rid, name in enumerate(sorted(truth), start=2):
            where = ask(rid, f"where is the {name}?")
            error = np.linalg.norm(np.asarray(where["data"]["position_m"]) - truth[name])
            assert error <= WHERE_TOLERANCE_M, (name, where, truth[name])

        accepted = ask(10, COMMAND)
        assert accepted["kind"] == "accepted", accepted
        done = ask(10, COMMAND, kind="done", timeout_s=120.0)
        assert done["data"]["success"] and done["data"]["command_id"] == 10, done
        spin_until(lambda: any(e.get("event") == "end" for e in episodes), 10.0, "the episode's end")
        end = [e for e in episodes if e.get("event") == "end"][-1]
        assert end["success"] and end["instruction"] == COMMAND and end["command_id"] == 10

        spin_until(lambda: bool(diagnostics), 10.0, "diagnostics")
        values = {kv.key: kv.value for kv in diagnostics[-1].status[0].values}
        assert {"rate_hz", "input_rate_hz", "dropped", "last_stamp_age_s", "perceive_ms"} <= set(values)
        assert int(values["dropped_malformed"]) == 0
    finally:
        graph.stop()
        op.destroy_node()
        rclpy.try_shutdown()
