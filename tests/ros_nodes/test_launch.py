"""Launching graphs: configs parse with clear errors, nodes run as processes and stop cleanly on
SIGINT/SIGTERM without the 'terminate called without an active exception' crash."""

import os
import signal
import subprocess
import sys
import time

import pytest

from ros_nodes.launch import READY_FILE_ENV, Graph, LaunchError, load_graph, ros_args


def test_graph_config_parses_and_errors(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text('[[node]]\nnode = "camera"\nname = "cam1"\n[node.params]\nwidth = 64\ncamera = "front"\n')
    (spec,) = load_graph(cfg)
    assert spec.module == "ros_nodes.camera_node"
    assert ros_args(spec) == ["--ros-args", "-r", "__node:=cam1", "-p", "width:=64", "-p", 'camera:="front"']
    bad = tmp_path / "bad.toml"
    bad.write_text("[[node]]\nname = 'x'\n")
    with pytest.raises(LaunchError, match="lacks 'node'"):
        load_graph(bad)
    with pytest.raises(LaunchError, match="no launch config"):
        load_graph(tmp_path / "missing.toml")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_node_process_stops_cleanly(sig, tmp_path):
    ready = tmp_path / "ready"
    env = {**os.environ, "ROS_DOMAIN_ID": str(60 + os.getpid() % 30), READY_FILE_ENV: str(ready)}
    proc = subprocess.Popen([sys.executable, "-m", "ros_nodes.camera_node", "--ros-args", "-p", "width:=32",
                             "-p", "height:=24"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ready.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ready.read_text() == str(proc.pid)
    time.sleep(0.5)  # spinning now
    assert proc.poll() is None, proc.stderr.read()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "terminate called" not in err and "Traceback" not in err


def test_graph_starts_and_stops_all(tmp_path):
    cfg = tmp_path / "g.json"
    cfg.write_text('{"node": [{"node": "camera", "params": {"width": 32, "height": 24}},'
                   ' {"node": "camera", "name": "cam2", "params": {"width": 32, "height": 24, "camera": "b"}}]}')
    graph = Graph(load_graph(cfg), env={"ROS_DOMAIN_ID": str(90 + os.getpid() % 30)}, log_dir=tmp_path / "logs")
    with graph:  # start() returns once every node is ready, however slow the machine
        assert graph.not_ready() == []
        time.sleep(1.0)
        assert graph.poll() == []
    codes = {name: code for name, code in ((s.name or s.node, p.returncode) for s, p in graph.procs)}
    assert codes == {"camera": 0, "cam2": 0}
