"""ROS 2 image transport and ZeroMQ policy round trips, against their in-process baselines.

Image hop: the camera node (its own process) publishes 640x480 RGB at 30 Hz with sensor-data QoS;
a subscriber here measures receive time minus header stamp (same clock) and counts missing frame
numbers. ZeroMQ: the same policy called in-process and through the inference server on loopback;
the overhead is the difference of the medians.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from policy.base import BasePolicy

DESCRIPTION = "ROS 2 image hop latency/drops at 640x480 30 Hz, and ZeroMQ policy overhead vs in-process"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", default="checkpoints/vla-default",
                        help="policy for the ZeroMQ round trip (a numpy stand-in if missing)")
    parser.add_argument("--frames", type=int, default=0, help="frames for the image hop (default 300, quick 90)")


def _percentiles(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values)
    return {"p50": float(np.percentile(arr, 50)), "p90": float(np.percentile(arr, 90)),
            "p99": float(np.percentile(arr, 99)), "max": float(arr.max()), "n": int(arr.size)}


def image_hop(frames: int, width: int = 640, height: int = 480, rate_hz: float = 30.0) -> dict:
    import rclpy
    from sensor_msgs.msg import Image

    from ros_nodes.camera_node import synthetic_index
    from ros_nodes.convert import msg_to_image
    from ros_nodes.launch import Graph, NodeSpec, isolate_ros_locally
    from ros_nodes.runtime import SENSOR_QOS

    domain = str(150 + os.getpid() % 80)
    isolate_ros_locally(domain)
    rclpy.init()
    node = rclpy.create_node("bench_image_sink")
    latency: dict[int, float] = {}  # frame number -> ms from publish stamp to our callback

    def on_image(msg: Image) -> None:
        now = node.get_clock().now().nanoseconds
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        latency[synthetic_index(msg_to_image(msg))] = (now - stamp) / 1e6

    node.create_subscription(Image, "camera/bench/image_raw", on_image, SENSOR_QOS)
    # The camera waits for our subscription; the first frames still warm up the transport.
    warmup = 15
    spec = NodeSpec("camera", params={"camera": "bench", "source": "synthetic", "rate_hz": rate_hz,
                                      "count": frames + warmup, "width": width, "height": height,
                                      "wait_subscribers": 1})
    graph = Graph([spec], env={"ROS_DOMAIN_ID": domain}, log_dir=Path("runs/bench_ros"))
    try:
        graph.start()
        deadline = time.monotonic() + 30 + (frames + warmup) / rate_hz
        while time.monotonic() < deadline and not graph.poll():
            rclpy.spin_once(node, timeout_sec=0.01)
        end = time.monotonic() + 1.0
        while time.monotonic() < end:
            rclpy.spin_once(node, timeout_sec=0.01)
    finally:
        graph.stop()
        node.destroy_node()
        rclpy.try_shutdown()
    measured = {i: ms for i, ms in latency.items() if i >= warmup}
    if not measured:
        raise RuntimeError("no image arrived over ROS 2 (see runs/bench_ros/camera.log)")
    return {"frames": frames, "received": len(measured), "drops": frames - len(measured),
            "latency_ms": _percentiles(list(measured.values())), "width": width, "height": height,
            "rate_hz": rate_hz, "qos": "sensor data (best effort, keep last 5)"}


class _NumpyPolicy(BasePolicy):
    """A stand-in when no checkpoint exists: enough work to be a fair comparison of transports."""

    def predict_chunk(self, observations, instructions):
        return np.stack([np.tile(o["agentview"].reshape(-1, 3).mean(0, keepdims=True) / 255.0, (1, 7 // 3 + 1))
                         [:, :7][None].repeat(8, 0)[:, 0] for o in observations]).astype(np.float32)


def zmq_overhead(checkpoint: str, calls: int) -> dict:
    from ros_nodes.services import PolicyService
    from ros_nodes.zmq_client import InferenceClient, RemotePolicy
    from ros_nodes.zmq_server import InferenceServer, ServerConfig

    if Path(checkpoint).is_dir():
        import torch

        from policy.predict import Policy
        from ros_nodes.cli import inference_threads

        # As `embodied serve` does: leave a core to the I/O thread. Both paths use the same setting.
        torch.set_num_threads(inference_threads())

        policy, label = Policy.from_pretrained(checkpoint), checkpoint
        size, cams = policy.cfg.obs_image_size, list(policy.cfg.camera_list)
    else:
        policy, label, size, cams = _NumpyPolicy(), "numpy stand-in", 128, ["agentview"]
    size = size if isinstance(size, int) else int(size[0])
    rng = np.random.default_rng(0)
    obs = {c: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for c in cams}
    if getattr(getattr(policy, "cfg", None), "use_state", False):
        obs["state"] = rng.standard_normal(int(policy.cfg.state_dim)).astype(np.float32)
    instruction = "pick up the red cube"
    inproc, remote = [], []
    for _ in range(5):
        policy.predict_chunk([obs], [instruction])
    for _ in range(calls):
        t0 = time.perf_counter()
        policy.predict_chunk([obs], [instruction])
        inproc.append((time.perf_counter() - t0) * 1e3)
    cfg = ServerConfig(endpoint="tcp://127.0.0.1:*", batch_wait_ms=0.0)
    with InferenceServer([PolicyService(policy)], cfg) as server, \
            InferenceClient(server.endpoint, timeout_ms=10000) as client:
        remote_policy = RemotePolicy(client)
        for _ in range(5):
            remote_policy.predict_chunk([obs], [instruction])
        for _ in range(calls):
            t0 = time.perf_counter()
            remote_policy.predict_chunk([obs], [instruction])
            remote.append((time.perf_counter() - t0) * 1e3)
    a, b = _percentiles(inproc), _percentiles(remote)
    return {"policy": label, "image_size": size, "cameras": cams, "calls": calls,
            "inprocess_ms": a, "zmq_ms": b, "overhead_ms": b["p50"] - a["p50"],
            "ratio_zmq_vs_inprocess": b["p50"] / a["p50"] if a["p50"] > 0 else None}


def run(args: argparse.Namespace) -> dict:
    frames = args.frames or (90 if args.quick else 300)
    hop = image_hop(frames)
    zmq = zmq_overhead(args.checkpoint, 50 if args.quick else 300)
    print(f"ROS image hop 640x480@30Hz: p50 {hop['latency_ms']['p50']:.2f} ms, p99 {hop['latency_ms']['p99']:.2f} ms, "
          f"drops {hop['drops']}/{hop['frames']}")
    print(f"ZeroMQ policy call: in-process p50 {zmq['inprocess_ms']['p50']:.2f} ms, via server "
          f"{zmq['zmq_ms']['p50']:.2f} ms -> overhead {zmq['overhead_ms']:.2f} ms")
    return {"image_hop_ms_p50": hop["latency_ms"]["p50"], "image_hop_ms_p99": hop["latency_ms"]["p99"],
            "drops": hop["drops"], "zmq_overhead_ms": zmq["overhead_ms"], "image_hop": hop, "zmq": zmq}
