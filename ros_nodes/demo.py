"""`embodied ros demo`: the closed loop sim robot <-> policy through ROS 2 topics, scored.

The sim runs in lock-step with the same held-out seeds as `embodied eval`, so its success rate
should match in-process evaluation of the same checkpoint within the confidence interval.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ros_nodes.launch import Graph, GraphStalled, NodeSpec, isolate_ros_locally


@dataclass
class RosDemoConfig:
    checkpoint: str = ""  # a policy checkpoint directory (or use server)
    server: str = ""  # an `embodied serve` endpoint instead of a local model
    task: str = "PickUp"
    episodes: int = 10
    seed: int = 100000  # held-out evaluation seeds start here, as in `embodied eval`
    image_size: int = 128
    cameras: tuple[str, ...] = ("agentview", "wrist")
    instruction_split: str = "train"
    use_state: bool = False  # read from the checkpoint when one is given
    domain_id: int = 0  # 0 = pick one from the process id, so parallel runs never cross-talk
    timeout_s: float = 900.0  # give up if the loop stalls
    # no episode event from the sim this long after the nodes are up: stop and say why, instead of
    # waiting out timeout_s (a deaf node never recovers; docs/ros.md, "Known problem")
    start_timeout_s: float = 120.0
    log_dir: str = "runs/ros_demo"


def run_ros_demo(cfg: RosDemoConfig, progress: bool = True) -> dict[str, Any]:
    import rclpy
    from std_msgs.msg import String

    from ros_nodes.runtime import LATCHED_QOS

    if cfg.checkpoint:  # cameras, image size and proprioception follow what the checkpoint was trained on
        vla = json.loads((Path(cfg.checkpoint) / "config.json").read_text())["vla"]
        cfg = RosDemoConfig(**{**cfg.__dict__, "cameras": tuple(vla["cameras"].split(",")) if isinstance(
            vla["cameras"], str) else tuple(vla["cameras"]), "image_size": int(vla["obs_image_size"]),
            "use_state": bool(vla["use_state"])})
    domain = cfg.domain_id or (1 + os.getpid() % 200)
    isolate_ros_locally(domain)
    cams = list(cfg.cameras)
    specs = [
        NodeSpec("sim_robot", params={"task": cfg.task, "seed": cfg.seed, "episodes": cfg.episodes,
                                      "cameras": cams, "image_size": cfg.image_size, "lockstep": True,
                                      "handshake": True, "depth": False,  # the policy reads no depth
                                      "instruction_split": cfg.instruction_split}),
        NodeSpec("policy", params={"checkpoint": cfg.checkpoint, "server": cfg.server,
                                   "mode": "observation", "cameras": cams, "use_state": cfg.use_state}),
    ]
    results: list[dict] = []
    rclpy.init()
    node = rclpy.create_node("ros_demo_monitor")
    events: list[str] = []  # every sim/episode message: the graph is talking
    node.create_subscription(String, "sim/episode",
                             lambda m: (events.append(m.data), _on_episode(m, results, progress)), LATCHED_QOS)
    graph = Graph(specs, env={"ROS_DOMAIN_ID": str(domain)}, log_dir=Path(cfg.log_dir))
    started = time.monotonic()
    died: list[tuple[str, int]] = []
    try:
        graph.start()
        up = time.monotonic()
        while len(results) < cfg.episodes and time.monotonic() - started < cfg.timeout_s:
            rclpy.spin_once(node, timeout_sec=0.1)
            died = [d for d in graph.poll() if d[1] != 0]
            if died:
                break
            if not events and time.monotonic() - up > cfg.start_timeout_s:
                raise GraphStalled(
                    f"no episode began within {cfg.start_timeout_s:.0f} s of the nodes starting: a node "
                    f"did not load or did not discover the others (Fast DDS sometimes leaves one deaf, "
                    f"docs/ros.md); see the logs in {cfg.log_dir} and run it again")
    finally:
        graph.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    if died:
        raise RuntimeError(f"ROS node(s) exited with errors: {died}; see logs in {cfg.log_dir}")
    wins = sum(r["success"] for r in results)
    n = len(results)
    from common.stats import wilson_interval

    lo, hi = wilson_interval(wins, n)
    return {"task": cfg.task, "episodes": n, "success_rate": wins / n if n else 0.0, "ci95": [lo, hi],
            "mean_length": sum(r["steps"] for r in results) / n if n else 0.0,
            "seeds": [r["seed"] for r in results], "per_episode": results, "ros_domain_id": domain,
            "wall_s": round(time.monotonic() - started, 1), "complete": n == cfg.episodes}


def _on_episode(msg, results: list[dict], progress: bool) -> None:
    event = json.loads(msg.data)
    if event.get("event") == "end" and all(r["episode"] != event["episode"] for r in results):
        results.append(event)
        if progress:
            mark = "success" if event["success"] else "failure"
            print(f"  episode {event['episode']} (seed {event['seed']}): {mark} in {event['steps']} steps",
                  flush=True)
