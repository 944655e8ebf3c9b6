"""Every user mistake in `embodied serve` and `embodied ros node ...` exits 2 with one line on stderr,
no traceback; and the robot-side client stays free of torch and transformers."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import zmq

ROOT = Path(__file__).resolve().parents[2]
CKPT = ROOT / "checkpoints" / "vla-default"


def embodied(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "PYTHONPATH": str(ROOT)})


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "error:" in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, words", [
    (["--bind", "garbage"], ["garbage", "tcp://HOST:PORT"]),
    (["--bind", "tcp://127.0.0.1:70000"], ["1-65535"]),
    (["--bind", "tcp://127.0.0.1:0"], ["1-65535"]),
    (["--max-batch", "0"], ["max_batch", "at least 1"]),
])
def test_serve_bad_settings(args, words):
    # The settings are checked before any model loads, so the checkpoint need not exist.
    assert_one_line_error(embodied("serve", "--policy", "no/such/ckpt", *args), *words)


def test_serve_missing_checkpoint():
    assert_one_line_error(embodied("serve", "--policy", "no/such/ckpt", "--bind", "tcp://127.0.0.1:*"),
                          "no/such/ckpt")


@pytest.mark.skipif(not CKPT.is_dir(), reason="no shipped checkpoint")
def test_serve_busy_port():
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    try:
        proc = embodied("serve", "--policy", str(CKPT), "--bind", f"tcp://127.0.0.1:{port}")
    finally:
        sock.close()
    assert_one_line_error(proc, f"tcp://127.0.0.1:{port}", "in use")


@pytest.mark.parametrize("node, params, words", [
    ("camera", ["source=/no/such/video.mp4"], ["not found", "/no/such/video.mp4"]),
    ("camera", ["intrinsics=/no/such/K.json"], ["intrinsics", "not found"]),
    ("camera", ["intrinsics={bad}"], ["intrinsics", "not JSON"]),
    ("camera", ["intrinsics={no_k}"], ["intrinsics", '"K"']),
    ("camera", ["width=0"], ["width", "positive"]),
    ("camera", ["rate_hz=fast"], ["rate_hz", "a number"]),
    ("policy", ["mode=sometimes", "server=tcp://127.0.0.1:5555"], ["mode", "sometimes"]),
    ("policy", [], ["checkpoint", "server"]),
    ("policy", ["checkpoint=/no/such/ckpt"], ["/no/such/ckpt"]),
    ("policy", ["server=tcp://127.0.0.1:5555", "rate_hz=0.0"], ["rate_hz", "positive"]),
    ("policy", ["mode=warp", "server=tcp://127.0.0.1:5555"], ["mode", "warp"]),
    # An integer where a number is declared is that number: 0 is then refused for its value.
    ("policy", ["server=tcp://127.0.0.1:5555", "deadline_ms=0"], ["deadline_ms", "positive"]),
    ("policy", ["server=tcp://127.0.0.1:5555", "rate_hz=10", "deadline_ms=-5"], ["deadline_ms", "positive"]),
    ("policy", ["server=tcp://127.0.0.1:5555", "deadline_ms=true"], ["deadline_ms", "a number"]),
    ("policy", ["server=tcp://127.0.0.1:5555", "use_state=maybe"], ["use_state", "true or false"]),
    ("camera", ["rate_hz=-30"], ["rate_hz", "positive"]),
    ("camera", ["count=-1"], ["count", "0 or more"]),
    ("policy", ["server=tcp://127.0.0.1:5555", "rate_hz=NaN"], ["rate_hz", "positive"]),
    ("sim_robot", ["episodes=-2"], ["episodes", "0 (no limit) or more"]),
    ("sim_robot", ["rate_hz=0.0", "lockstep=false"], ["rate_hz", "positive"]),
    ("sim_robot", ["task=Teleport"], ["Teleport"]),
])
def test_node_bad_parameters(tmp_path, node, params, words):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "no_k.json").write_text(json.dumps({"k": [1, 2, 3]}))
    files = {"{bad}": str(tmp_path / "bad.json"), "{no_k}": str(tmp_path / "no_k.json")}
    args = []
    for p in params:
        for key, path in files.items():
            p = p.replace(key, path)
        args += ["-p", p]
    assert_one_line_error(embodied("ros", "node", node, *args), *words)


def test_unknown_node_and_bad_param_syntax():
    assert_one_line_error(embodied("ros", "node", "teleporter"), "teleporter", "camera")
    assert_one_line_error(embodied("ros", "node", "camera", "-p", "rate_hz"), "KEY=VALUE")


@pytest.mark.parametrize("module", ["ros_nodes.zmq_client", "policy.executor", "agent.agent"])
def test_robot_side_modules_import_neither_torch_nor_transformers(module):
    code = (f"import sys, {module}; heavy = [m for m in ('torch', 'transformers') if m in sys.modules]; "
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == ""


def test_eval_on_a_device_this_machine_lacks():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA GPU")
    assert_one_line_error(embodied("eval", "--device", "cuda", "--episodes", "1"), "cuda", "no CUDA GPU")
    assert_one_line_error(embodied("eval", "--device", "warp", "--episodes", "1"), "warp", "not a torch device")


def test_integer_where_a_double_is_declared_is_accepted(ros_context):
    from rclpy.parameter import Parameter

    from ros_nodes.runtime import declare

    node = ros_context.create_node("declare_test", parameter_overrides=[
        Parameter("rate_hz", value=10), Parameter("count", value=3), Parameter("flag", value=True)])
    try:
        rate = declare(node, "rate_hz", 30.0)
        assert rate == 10.0 and isinstance(rate, float)
        assert node.get_parameter("rate_hz").value == 10.0
        assert declare(node, "count", 0) == 3
        from ros_nodes.errors import NodeParameterError

        with pytest.raises(NodeParameterError, match="flag must be a number"):
            declare(node, "flag", 1.0)
    finally:
        node.destroy_node()


@pytest.fixture
def ros_context():
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


@pytest.mark.parametrize("env, warns", [
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, True),
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "localhost", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
      "ROS_LOCALHOST_ONLY": "1"}, True),
    ({"ROS_LOCALHOST_ONLY": "1", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, False),
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA"}, False),
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_BUILTIN_TRANSPORTS": "DEFAULT"}, False),
    ({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "FASTDDS_BUILTIN_TRANSPORTS": "LARGE_DATA",
      "RMW_IMPLEMENTATION": "rmw_cyclonedds_cpp"}, False),
])
def test_discovery_warning(env, warns):
    from ros_nodes.runtime import discovery_warning

    message = discovery_warning(env)
    assert (message is not None) == warns
    if warns:
        assert "ROS_LOCALHOST_ONLY=1" in message and "docs/ros.md" in message


def test_node_warns_at_start_up_when_discovery_will_not_deliver_images():
    """A node that starts (a camera sending two small frames) logs one warning line for the setting."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    env.pop("ROS_LOCALHOST_ONLY", None)
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "ros", "node", "camera", "-p", "count=2",
                           "-p", "width:=64", "-p", "height=48"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if "ROS_AUTOMATIC_DISCOVERY_RANGE" in ln]
    assert len(lines) == 1 and "WARN" in lines[0], proc.stderr
