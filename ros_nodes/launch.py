"""`embodied ros up`: start a graph of nodes as processes and stop them cleanly.

``ros2 launch`` does not come with the PyPI wheels, so this stands in for it: a graph is a list
of nodes (module, name, parameters), given as TOML or JSON, started with ``--ros-args`` exactly as
``ros2 run`` would, and stopped with SIGINT, then SIGTERM, then SIGKILL, each after a grace period.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import UserError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10 (ROS 2 Humble on Jetson): the same parser as a package
    import tomli as tomllib

# The launcher names a file per node in this variable; ``ros_nodes.runtime.run_node`` creates it
# once the node is constructed and its signal handlers are in place, so a started graph is one
# that can be stopped cleanly (a signal during a slow import would otherwise kill a node uncleanly).
READY_FILE_ENV = "EMBODIED_READY_FILE"


def isolate_ros_locally(domain_id: int | str) -> None:
    """Keep this process's ROS 2 traffic (and its children's) on this machine, in its own domain.

    Tests, benchmarks and demos call this: a private ``ROS_DOMAIN_ID`` keeps runs apart, and
    ``ROS_LOCALHOST_ONLY=1`` keeps DDS discovery off the network interface. The newer
    ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` lost 640x480 frames with our large-data transport
    (0/150 in one measurement, 111-116/150 in another, where ROS_LOCALHOST_ONLY delivered 150/150;
    docs/ros.md), so it is removed here.
    """
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["ROS_LOCALHOST_ONLY"] = "1"
    os.environ.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    os.environ.pop("ROS_STATIC_PEERS", None)

# Short names for our nodes; a config may also name any importable module with a main().
NODES: dict[str, str] = {
    "sim_robot": "ros_nodes.sim_robot_node",
    "policy": "ros_nodes.policy_node",
    "camera": "ros_nodes.camera_node",
    "perception": "ros_nodes.perception_node",
    "qa": "ros_nodes.qa_node",
    "agent": "ros_nodes.agent_node",
    "recorder": "ros_nodes.recorder",
}


class LaunchError(UserError):
    """A launch description that names an unknown node, a bad parameter or an unreadable file."""


class GraphStalled(UserError):
    """A started graph whose nodes never began talking: a node failed to load, or DDS discovery
    left one deaf to the others (docs/ros.md, "Known problem"). Running it again usually works."""


@dataclass
class NodeSpec:
    node: str
    name: str = ""
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return NODES.get(self.node, self.node)


def load_graph(path: str | Path) -> list[NodeSpec]:
    """Read ``[[node]]`` tables (TOML) or ``{"node": [...]}`` (JSON)."""
    path = Path(path)
    if not path.is_file():
        raise LaunchError(f"no launch config at {path}")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise LaunchError(f"cannot parse {path}: {exc}") from None
    nodes = data.get("node")
    if not isinstance(nodes, list) or not nodes:
        raise LaunchError(f"{path} has no [[node]] entries")
    specs = []
    for entry in nodes:
        if "node" not in entry:
            raise LaunchError(f"a node entry in {path} lacks 'node' (one of {', '.join(NODES)} or a module)")
        specs.append(NodeSpec(entry["node"], entry.get("name", ""), dict(entry.get("params", {}))))
    return specs


def ros_args(spec: NodeSpec) -> list[str]:
    args = ["--ros-args"]
    if spec.name:
        args += ["-r", f"__node:={spec.name}"]
    for key, value in spec.params.items():
        args += ["-p", f"{key}:={json.dumps(value)}"]  # JSON is valid YAML, which rclpy parses
    return args


class Graph:
    """Running node processes; a context manager that always stops them."""

    def __init__(self, specs: list[NodeSpec], env: dict[str, str] | None = None, log_dir: Path | None = None) -> None:
        self.specs = specs
        self.env = {**os.environ, **(env or {})}
        self.log_dir = log_dir
        self.procs: list[tuple[NodeSpec, subprocess.Popen]] = []
        self._ready_dir: Path | None = None

    def start(self, wait_ready_s: float = 120.0) -> "Graph":
        """Start every node, then wait until each is ready (or has exited) for ``wait_ready_s``."""
        self._ready_dir = Path(tempfile.mkdtemp(prefix="embodied-launch-"))
        for i, spec in enumerate(self.specs):
            out = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"{spec.name or spec.node}.log", "w")
            cmd = [sys.executable, "-m", spec.module, *ros_args(spec)]
            env = {**self.env, READY_FILE_ENV: str(self._ready_dir / f"{i}.ready")}
            proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None)
            self.procs.append((spec, proc))
        if wait_ready_s > 0:
            self.wait_ready(wait_ready_s)
        return self

    def not_ready(self) -> list[str]:
        """Nodes still starting up (alive, not yet ready)."""
        return [s.name or s.node for i, (s, p) in enumerate(self.procs)
                if p.poll() is None and not (self._ready_dir / f"{i}.ready").exists()]

    def wait_ready(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.not_ready() and time.monotonic() < deadline:
            time.sleep(0.05)
        return not self.not_ready()

    def poll(self) -> list[tuple[str, int]]:
        """Nodes that have exited, with their exit codes."""
        return [(s.name or s.node, p.returncode) for s, p in self.procs if p.poll() is not None]

    def stop(self, grace_s: float = 5.0) -> dict[str, int]:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [p for _, p in self.procs if p.poll() is None]
            if not alive:
                break
            for p in alive:
                p.send_signal(sig)
            deadline = time.monotonic() + grace_s
            while time.monotonic() < deadline and any(p.poll() is None for p in alive):
                time.sleep(0.05)
        codes = {s.name or s.node: p.wait() for s, p in self.procs}
        if self._ready_dir is not None:
            shutil.rmtree(self._ready_dir, ignore_errors=True)
        return codes

    def __enter__(self) -> "Graph":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
