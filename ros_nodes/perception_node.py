"""The perception node: keyframes of the camera stream and the cue's pose, as ROS 2 messages.

Subscribes to ``camera/<cam>/image_raw`` and ``camera/<cam>/camera_info`` (and, when
``use_depth``, ``camera/<cam>/depth``, 32FC1 metres with the same stamp). Publishes
``perception/cue_pose`` (``geometry_msgs/PoseStamped``, cue -> camera, in the camera's frame) and
``perception/keyframes`` (JSON: the streaming sampler's current keyframe indices and times).
Bad images are logged and dropped; a frame where the cue is not found publishes nothing.
"""

from __future__ import annotations

import json

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String

from perception.frames import Frame
from perception.pose.track import CueTracker
from perception.sampling import StreamingKeyframes
from ros_nodes.convert import K_from_info, pose_to_msg
from ros_nodes.runtime import RELIABLE_QOS, SENSOR_QOS, declare, receive_image


class PerceptionNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("perception", **node_kwargs)
        cam = declare(self, "camera", "player")
        self.use_depth = bool(declare(self, "use_depth", True))
        self.track_cue = bool(declare(self, "track_cue", True))
        self.keyframes = StreamingKeyframes(capacity=int(declare(self, "keyframes", 16)), keep_frames=False)
        self.tracker = CueTracker()
        self.K: np.ndarray | None = None
        self._depth: dict[tuple[int, int], np.ndarray] = {}
        self._t0: float | None = None
        self.frames = 0
        self.dropped = 0
        self.pose_pub = self.create_publisher(PoseStamped, "perception/cue_pose", RELIABLE_QOS)
        self.key_pub = self.create_publisher(String, "perception/keyframes", RELIABLE_QOS)
        self.create_subscription(CameraInfo, f"camera/{cam}/camera_info", self._on_info, SENSOR_QOS)
        self.create_subscription(Image, f"camera/{cam}/image_raw", self._on_image, SENSOR_QOS)
        if self.use_depth:
            self.create_subscription(Image, f"camera/{cam}/depth", self._on_depth, SENSOR_QOS)

    def _on_info(self, msg: CameraInfo) -> None:
        K = K_from_info(msg)
        if K[0, 0] > 0 and K[1, 1] > 0:
            self.K = K

    def _on_depth(self, msg: Image) -> None:
        depth = receive_image(self, msg, colour=False, where="the depth topic")
        if depth is None:
            return
        key = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        self._depth[key] = depth
        while len(self._depth) > 8:  # depth waits for its colour image, but not for ever
            self._depth.pop(next(iter(self._depth)))

    def _on_image(self, msg: Image) -> None:
        image = receive_image(self, msg)
        if image is None:
            return
        stamp = msg.header.stamp
        t = stamp.sec + stamp.nanosec * 1e-9
        self._t0 = t if self._t0 is None else self._t0
        self.keyframes.push(Frame(image, t - self._t0, self.frames, {}))
        self.frames += 1
        if self.frames % 10 == 0:
            self.key_pub.publish(String(data=json.dumps({
                "frames": self.frames, "keyframes": self.keyframes.indices().tolist()})))
        if not self.track_cue or self.K is None:
            return
        depth = self._depth.pop((stamp.sec, stamp.nanosec), None) if self.use_depth else None
        pose = self.tracker.update(image, depth, self.K)
        if pose is not None:
            self.pose_pub.publish(pose_to_msg(pose, stamp, frame_id=msg.header.frame_id or "camera"))


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(PerceptionNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
