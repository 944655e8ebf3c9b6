"""Shared test set-up: headless MuJoCo, few threads (CI has 2 cores), a private ROS domain."""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# A unique ROS domain per test session so parallel runs on one host never cross-talk.
# Discovery stays on loopback (without it DDS also multicasts on the network interface).
from ros_nodes.launch import isolate_ros_locally  # noqa: E402 - imports neither rclpy nor torch

isolate_ros_locally(os.environ.get("ROS_DOMAIN_ID") or 100 + os.getpid() % 100)

try:
    import torch

    torch.set_num_threads(2)
except ImportError:  # pragma: no cover
    pass
