"""The camera node replays recordings into the perception node, as a live camera would be.

An RGB-D rosbag2 of a sim tabletop scene (two cameras at 128 px: image, depth, camera_info and the
camera's pose, the topics the sim robot publishes), replayed by the camera node, gives the
perception node the scene's objects at their places, with the recording's stamps moved to now and
their spacing kept; the recorder node records the replay back into a bag. A plain video replays as
RGB only, and the perception node says it has no depth instead of guessing a list.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import String

from ros_nodes.runtime import RELIABLE_QOS
from tests.ros_nodes.conftest import spin_until

TASK, SEED, SIZE, FRAMES, PERIOD_NS = "PickUp", 2, 128, 4, 100_000_000
CAMS = ["agentview", "wrist"]
RECORDED_T0 = 1_000_000_000_000  # the recording's first stamp: 1000 s, long before "now"


@pytest.fixture(scope="module")
def scene():
    """A few frames of the scene (the arm moving a little), and where the simulator put each object."""
    import sim

    env = sim.make(TASK, cameras=tuple(CAMS), image_size=(SIZE, SIZE), depth=True)
    obs, _ = env.reset(seed=SEED)
    u = env.unwrapped
    frames = []
    for i in range(FRAMES):
        frames.append({c: (obs[c], obs[c + "_depth"], u.camera_intrinsics(c), u.camera_pose(c)) for c in CAMS})
        action = np.zeros(env.action_space.shape, np.float32)
        action[2] = 0.2  # up and away from the objects: the scene itself stays still
        obs, *_ = env.step(action)
    truth = {o["name"]: np.asarray(o["position"]) for o in u.ground_truth()["objects"]}
    env.close()
    return frames, truth


def write_rgbd_bag(path, frames) -> None:
    """The sim robot's camera topics, one set per frame at 10 Hz, written with the recorder's writer."""
    from builtin_interfaces.msg import Time

    from ros_nodes.convert import camera_info, image_to_msg, pose_to_msg
    from ros_nodes.recorder import BagWriter

    with BagWriter(path) as bag:
        for i, views in enumerate(frames):
            t_ns = RECORDED_T0 + i * PERIOD_NS
            stamp = Time(sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
            for cam, (image, depth, K, T) in views.items():
                ns = f"camera/{cam}/"
                bag.write(ns + "camera_info", camera_info(K, SIZE, SIZE, stamp, frame_id=cam), t_ns)
                bag.write(ns + "pose", pose_to_msg(T, stamp, frame_id="base"), t_ns)
                bag.write(ns + "depth", image_to_msg(depth.astype(np.float32), stamp, frame_id=cam), t_ns)
                bag.write(ns + "image_raw", image_to_msg(image, stamp, frame_id=cam), t_ns)


def _nodes(ros, camera_params: list, cameras: list[str], perception_params: list = ()):
    from ros_nodes.camera_node import CameraNode
    from ros_nodes.perception_node import PerceptionNode

    perception = PerceptionNode(parameter_overrides=[Parameter("cameras", value=cameras),
                                                     Parameter("track_cue", value=False), *perception_params])
    camera = CameraNode(parameter_overrides=camera_params)
    probe = ros.create_node("probe")
    lists: list[dict] = []
    probe.create_subscription(String, "perception/objects", lambda m: lists.append(json.loads(m.data)), RELIABLE_QOS)
    ex = SingleThreadedExecutor()
    for node in (perception, camera, probe):
        ex.add_node(node)
    return ex, camera, perception, lists


def test_an_rgbd_recording_replays_into_the_object_list(ros, scene, tmp_path):
    from perception.scene.answers import WHERE_TOLERANCE_M
    from perception.sources import RosbagMessages
    from ros_nodes.recorder import RecorderNode

    frames, truth = scene
    bag = tmp_path / "scene_bag"
    write_rgbd_bag(bag, frames)
    topics = [f"camera/{c}/{p}" for c in CAMS for p in ("image_raw", "depth", "camera_info", "pose")]
    # The perception node and the recorder both take the images before the replay starts.
    ex, camera, perception, lists = _nodes(ros, [Parameter("source", value=str(bag)),
                                                 Parameter("wait_subscribers", value=2)], CAMS)
    recorder = RecorderNode(parameter_overrides=[Parameter("out", value=str(tmp_path / "replayed")),
                                                 Parameter("topics", value=topics)])
    ex.add_node(recorder)
    assert sorted(camera.pubs) == sorted("/" + t for t in topics)
    assert spin_until(ex, lambda: camera.done, timeout_s=20.0), "the replay did not finish"
    assert spin_until(ex, lambda: len(lists) >= FRAMES and lists[-1]["status"] == "ok", timeout_s=5.0), lists[-1:]
    recorder.close()

    # Every recorded frame set became one list, with the recorded stamps' spacing, moved to now.
    stamps = np.array([s["stamp"]["sec"] * 10**9 + s["stamp"]["nanosec"] for s in lists[-FRAMES:]])
    assert np.diff(stamps).tolist() == [PERIOD_NS] * (FRAMES - 1)
    assert abs(stamps[-1] - perception.get_clock().now().nanoseconds) < 10 * 10**9
    last = lists[-1]
    assert last["sources"] == CAMS and last["views"] == {c: "ok" for c in CAMS}
    assert sorted(o["name"] for o in last["objects"]) == sorted(truth)
    for o in last["objects"]:
        assert np.linalg.norm(np.asarray(o["position"]) - truth[o["name"]]) <= WHERE_TOLERANCE_M, o

    # The recorder took the replay back: every topic, every message, the stamps as replayed.
    replayed = list(RosbagMessages(tmp_path / "replayed"))
    assert sorted({m.topic for m in replayed}) == sorted("/" + t for t in topics)
    assert len(replayed) == len(topics) * FRAMES
    assert np.all(np.diff([m.time_ns for m in replayed]) >= 0)


def test_a_video_replays_as_rgb_and_perception_says_depth_is_missing(ros, scene, tmp_path):
    """Even from a calibrated fixed camera (intrinsics and extrinsics in files), a video has no depth."""
    from perception.videoio import write_video

    frames, _ = scene
    image, _, K, T = frames[0]["agentview"]
    video = tmp_path / "agentview.mp4"
    write_video(video, [views["agentview"][0] for views in frames], fps=10.0)
    (tmp_path / "K.json").write_text(json.dumps({"K": K.tolist()}))
    (tmp_path / "extrinsics.json").write_text(json.dumps({"agentview": T.tolist()}))
    ex, camera, perception, lists = _nodes(
        ros, [Parameter("source", value=str(video)), Parameter("camera", value="agentview"),
              Parameter("intrinsics", value=str(tmp_path / "K.json")), Parameter("wait_subscribers", value=1)],
        ["agentview"], [Parameter("extrinsics", value=str(tmp_path / "extrinsics.json"))])
    assert camera.count_publishers("camera/agentview/depth") == 0 and camera.count_publishers(
        "camera/agentview/pose") == 0
    # Incomplete sets wait sync_s for their depth, so a newer frame may supersede one: not a list per frame.
    assert spin_until(ex, lambda: camera.done and lists, timeout_s=20.0), "no list from the video's frames"
    spin_until(ex, lambda: False, timeout_s=0.5)  # the last frame's list
    assert all(s["status"] == "nothing_here" and not s["objects"] for s in lists), lists
    assert lists[-1]["views"] == {"agentview": "no depth"} and "no depth" in lists[-1]["reason"], lists[-1]
    assert perception.streams["agentview"].status == "no depth image"


def test_bad_recordings_are_one_line_errors(ros, tmp_path):
    from common.errors import is_user_error
    from ros_nodes.camera_node import CameraNode
    from ros_nodes.recorder import BagWriter

    (tmp_path / "not_a_bag").mkdir()
    with BagWriter(tmp_path / "bag") as bag:
        bag.write("camera/a/image_raw", String(data="x"), 1)
    cases = [(tmp_path / "missing.db3", 0.0, "not found"), (tmp_path / "not_a_bag", 0.0, "cannot read"),
             (tmp_path / "bag", 10.0, "leave rate_hz")]
    for source, rate_hz, message in cases:
        with pytest.raises(Exception, match=message) as err:
            CameraNode(parameter_overrides=[Parameter("source", value=str(source)), Parameter("rate_hz", value=rate_hz)])
        assert is_user_error(err.value)
    with pytest.raises(Exception, match="exists") as err:
        BagWriter(tmp_path / "bag")
    assert is_user_error(err.value)
