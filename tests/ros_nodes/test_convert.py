"""Message conversions: exact round trips, and malformed images refused with a reason."""

import numpy as np
import pytest

from ros_nodes.convert import (BadMessage, action_to_twist, camera_info, image_to_msg, K_from_info,
                               msg_to_image, msg_to_pose, pose_to_msg, twist_to_action)


def test_rgb_and_depth_round_trip():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(msg_to_image(image_to_msg(img)), img)
    depth = rng.random((4, 6), dtype=np.float32)
    np.testing.assert_array_equal(msg_to_image(image_to_msg(depth)), depth)


def test_bgr_mono_padded_rows():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    msg = image_to_msg(img)
    msg.encoding = "bgr8"
    np.testing.assert_array_equal(msg_to_image(msg), img[..., ::-1])
    msg = image_to_msg(img)
    rows = np.zeros((2, 12), np.uint8)  # step 12 > 9: padded rows must be cropped
    rows[:, :9] = img.reshape(2, 9)
    msg.step, msg.data = 12, rows.tobytes()
    np.testing.assert_array_equal(msg_to_image(msg), img)
    mono = image_to_msg(img)
    mono.encoding, mono.step, mono.data = "mono8", 3, img[..., 0].tobytes()
    assert msg_to_image(mono).shape == (2, 3, 3)


@pytest.mark.parametrize("field,value,match", [
    ("step", 4, "step"), ("encoding", "yuv422", "encoding"), ("height", 9, "bytes"), ("width", 0, "empty"),
])
def test_malformed_images_are_refused(field, value, match):
    msg = image_to_msg(np.zeros((4, 4, 3), np.uint8))
    setattr(msg, field, value)
    with pytest.raises(BadMessage, match=match):
        msg_to_image(msg)


def test_pose_twist_camera_info_round_trip():
    angle = 0.7
    T = np.eye(4)
    T[:3, :3] = [[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]]
    T[:3, 3] = [0.1, -0.2, 1.5]
    np.testing.assert_allclose(msg_to_pose(pose_to_msg(T)), T, atol=1e-12)
    a = np.array([0.01, -0.02, 0.03, 0.1, 0.2, -0.3, 1.0], np.float32)
    np.testing.assert_allclose(twist_to_action(action_to_twist(a), gripper=1.0), a, atol=1e-7)
    K = np.array([[100.0, 0, 32], [0, 100.0, 24], [0, 0, 1]])
    info = camera_info(K, 64, 48)
    np.testing.assert_array_equal(K_from_info(info), K)
    assert (info.width, info.height) == (64, 48)
