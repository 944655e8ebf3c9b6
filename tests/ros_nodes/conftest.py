import pytest


@pytest.fixture
def ros():
    """A fresh rclpy context per test (real ROS 2, private domain from tests/conftest.py)."""
    import rclpy

    rclpy.init()
    yield rclpy
    rclpy.try_shutdown()


def spin_until(executor, predicate, timeout_s: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.02)
        if predicate():
            return True
    return False


def restartable_endpoint() -> str:
    """A loopback endpoint for a server that a test stops and starts again on the same port.

    Why not ``tcp://127.0.0.1:*``: that port comes from the kernel's ephemeral range, and a ZeroMQ
    client reconnecting to it while the server is down can be handed the same port as its own
    source port and connect to itself (TCP self-connection, libzmq issue 4588), so the restarted
    server's bind fails with "Address already in use". A port below the ephemeral range is never
    handed out as a source port; the one picked here is free when probed.
    """
    import random
    import socket

    low = 32768
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            low = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        pass
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(max(1024, low - 12000), low)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return f"tcp://127.0.0.1:{port}"
    raise RuntimeError("no free loopback port below the ephemeral range")
