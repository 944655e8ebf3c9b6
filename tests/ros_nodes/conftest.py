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
