"""A 60-second soak: the policy node keeps bounded memory with one camera dead.

Observation mode waits for one image per camera with the same stamp. With the wrist camera dead
(and junk on the other topic: malformed messages, stamps from the past and the future, odd sizes)
no set ever completes; before sets expired this grew by ~27 MB/s at 640x480 30 Hz until the OOM
killer came. The resident set of this process (node and publisher) must stay within 50 MB over
the 60 s after a warm-up.
"""

import random
import time

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_nodes.convert import image_to_msg
from ros_nodes.policy_node import PENDING_MAX
from ros_nodes.runtime import LATCHED_QOS, SENSOR_QOS
from tests.ros_nodes.test_policy_node import BrightnessPolicy, make_node

WARMUP_S = 5.0
SOAK_S = 60.0
RATE_HZ = 30.0
MAX_GROWTH_MB = 50.0


def rss_mb() -> float:
    """Resident set size of this process (Linux /proc; psutil is not a dependency)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
def test_dead_camera_soak_keeps_memory_bounded(ros):
    backend = BrightnessPolicy()
    node = make_node(backend, cameras=["agentview", "wrist"], mode="observation")
    received = []
    on_image = node._on_image
    node._on_image = lambda cam, msg: (received.append(cam), on_image(cam, msg))
    pub_node = ros.create_node("soak_camera")
    pub = pub_node.create_publisher(Image, "camera/agentview/image_raw", SENSOR_QOS)
    pub_node.create_publisher(String, "robot/instruction", LATCHED_QOS).publish(String(data="go"))
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(pub_node)
    rng = random.Random(0)
    frame = np.zeros((480, 640, 3), np.uint8)
    clock = pub_node.get_clock()
    samples = []
    start = time.monotonic()
    next_pub = start
    n = 0
    try:
        while time.monotonic() - start < WARMUP_S + SOAK_S:
            ex.spin_once(timeout_sec=0.005)
            now = time.monotonic()
            if now < next_pub:
                continue
            next_pub += 1.0 / RATE_HZ
            n += 1
            frame[0, 0, 0] = n % 256
            stamp = clock.now().to_msg()
            pub.publish(image_to_msg(frame, stamp, "agentview"))
            if n % 10 == 0:  # junk: a stamp from the past, one from the future, a malformed message
                old = clock.now().to_msg()
                old.sec -= rng.randint(1, 10_000)
                pub.publish(image_to_msg(frame, old, "agentview"))
                ahead = clock.now().to_msg()
                ahead.sec += rng.randint(60, 10_000)
                pub.publish(image_to_msg(frame, ahead, "agentview"))
                bad = image_to_msg(frame[:8, :8], stamp, "agentview")
                bad.step = 1
                pub.publish(bad)
            if n % 30 == 0 and now - start >= WARMUP_S:
                samples.append(rss_mb())
    finally:
        ex.shutdown()
        node.destroy_node()
        pub_node.destroy_node()
    growth = max(samples) - samples[0]
    print(f"soak: {n} frames published, {len(received)} received, {node.expired} sets expired, "
          f"{node.future_stamps} future stamps dropped, {node.dropped} malformed dropped; RSS "
          f"{samples[0]:.0f} -> max {max(samples):.0f} MB (growth {growth:.1f} MB over {SOAK_S:.0f} s)")
    assert len(received) > 0.5 * n  # the node did receive the stream it had to bound
    assert node.expired > 100 and node.future_stamps > 0 and node.dropped > 0
    assert len(node._pending) <= PENDING_MAX
    assert backend.calls == 0  # no set ever completed: nothing was acted on
    assert growth < MAX_GROWTH_MB, samples
