"""The sim-robot node in lock-step: the same actions through ROS topics give exactly the images an
in-process env gives, and episode results arrive on sim/episode."""

import json

import numpy as np
from geometry_msgs.msg import TwistStamped
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import String

import sim
from ros_nodes.convert import action_to_twist, msg_to_image
from ros_nodes.runtime import LATCHED_QOS, RELIABLE_QOS, SENSOR_QOS
from ros_nodes.sim_robot_node import SimRobotNode
from tests.ros_nodes.conftest import spin_until

SEED, SIZE, STEPS = 11, 48, 6


def scripted(k: int) -> np.ndarray:
    return np.array([0.01 * np.cos(k), 0.01 * np.sin(k), -0.005, 0, 0, 0.02, float(k > 3)], np.float32)


def test_lockstep_equals_in_process(ros):
    node = SimRobotNode(parameter_overrides=[
        Parameter("task", value="Reach"), Parameter("seed", value=SEED), Parameter("episodes", value=1),
        Parameter("cameras", value=["agentview"]), Parameter("image_size", value=SIZE),
        Parameter("resend_s", value=0.05), Parameter("max_steps", value=STEPS)])
    test = ros.create_node("test_driver")
    images, infos, episodes = {}, [], []
    test.create_subscription(Image, "camera/agentview/image_raw",
                             lambda m: images.setdefault((m.header.stamp.sec, m.header.stamp.nanosec),
                                                         msg_to_image(m)), SENSOR_QOS)
    test.create_subscription(CameraInfo, "camera/agentview/camera_info", infos.append, SENSOR_QOS)
    test.create_subscription(String, "sim/episode", lambda m: episodes.append(json.loads(m.data)), LATCHED_QOS)
    twist_pub = test.create_publisher(TwistStamped, "robot/cmd_twist", RELIABLE_QOS)
    grip_pub = test.create_publisher(JointState, "robot/cmd_gripper", RELIABLE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(test)
    seen = []  # images in the order we acted on them
    for k in range(STEPS):
        assert spin_until(ex, lambda: any(s not in [x[0] for x in seen] for s in images)), f"no image {k}"
        stamp_key = next(s for s in sorted(images) if s not in [x[0] for x in seen])
        seen.append((stamp_key, images[stamp_key]))
        from builtin_interfaces.msg import Time

        stamp = Time(sec=stamp_key[0], nanosec=stamp_key[1])
        action = scripted(k)
        twist_pub.publish(action_to_twist(action, stamp))
        grip = JointState()
        grip.header.stamp, grip.name, grip.position = stamp, ["gripper"], [float(action[6])]
        grip_pub.publish(grip)
    assert spin_until(ex, lambda: any(e.get("event") == "end" for e in episodes))
    end = next(e for e in episodes if e.get("event") == "end")
    assert end["seed"] == SEED and end["steps"] == STEPS
    assert infos and np.allclose(np.array(infos[0].k).reshape(3, 3), node.env.unwrapped.camera_intrinsics("agentview"))
    ex.shutdown()
    node.close()
    node.destroy_node()
    test.destroy_node()

    env = sim.make("Reach", cameras=("agentview",), image_size=(SIZE, SIZE), max_steps=STEPS)
    obs, info = env.reset(seed=SEED)
    assert info["instruction"] == next(e for e in episodes if e.get("event") == "reset")["instruction"]
    for k in range(STEPS):
        np.testing.assert_array_equal(seen[k][1], obs["agentview"])
        obs, _, terminated, truncated, info = env.step(scripted(k))
    assert truncated and end["success"] == info["success"]
    env.close()


def test_handshake_holds_first_images_until_the_policy_acks_the_reset(ros):
    """With ``handshake`` the first observation of an episode waits for the policy's reset ack, so a
    policy can never see a new episode's images before it has reset (no cross-topic ordering in DDS)."""
    import time

    node = SimRobotNode(parameter_overrides=[
        Parameter("task", value="Reach"), Parameter("seed", value=SEED), Parameter("episodes", value=1),
        Parameter("cameras", value=["agentview"]), Parameter("image_size", value=SIZE),
        Parameter("resend_s", value=0.05), Parameter("handshake", value=True)])
    test = ros.create_node("test_handshake")
    images, resets = [], []
    test.create_subscription(Image, "camera/agentview/image_raw", images.append, SENSOR_QOS)
    test.create_subscription(String, "sim/episode",
                             lambda m: resets.append(json.loads(m.data)), LATCHED_QOS)
    status = test.create_publisher(String, "policy/status", RELIABLE_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(test)
    assert spin_until(ex, lambda: resets)
    end = time.monotonic() + 1.0  # 20 resend periods
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.02)
    assert images == []
    # Unacknowledged, the reset is re-sent (an ack sent before discovery matched is lost).
    assert len(resets) >= 5 and all(r == resets[0] for r in resets)
    status.publish(String(data=json.dumps({"state": "reset", "episode": 1})))  # the wrong episode
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        ex.spin_once(timeout_sec=0.02)
    assert images == []
    status.publish(String(data=json.dumps({"state": "reset", "episode": resets[0]["episode"]})))
    assert spin_until(ex, lambda: images)
    assert (images[0].header.stamp.sec, images[0].header.stamp.nanosec) == tuple(resets[0]["stamp"])
    ex.shutdown()
    node.close()
    node.destroy_node()
    test.destroy_node()
