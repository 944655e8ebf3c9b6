"""The perception node: what is on the table, from the cameras, as ROS 2 messages.

The scene perceiver (``perception.scene``) runs on the RGB-D topics of each camera in ``cameras``
under the ``topics`` prefix (default ``camera/<cam>/``): ``image_raw``, ``depth`` (32FC1 metres or
16UC1 millimetres, aligned to the image, same stamp), ``camera_info`` (intrinsics) and ``pose``
(``PoseStamped``: the camera's optical frame in the robot base frame, same stamp; a fixed camera
may instead have its 4x4 camera -> base transform in the ``extrinsics`` JSON file). The parts of
one camera are paired by stamp, and the cameras' views of one moment go to the perceiver together:
a set is perceived as soon as every camera has its image, depth and pose, or ``sync_s`` after its
first image arrived with what has come by then.

Publishes:
- ``perception/objects`` (``std_msgs/String``, JSON, schema in docs/ros.md): every object with its
  id, colour and confidence, shape, size, position (base frame), yaw, and the images' stamp; or
  ``"status": "nothing_here"`` with the reason when no camera shows the table (depth missing or
  with another stamp, extrinsics unknown, the table out of view): never an older list.
- ``perception/markers`` (``visualization_msgs/MarkerArray``) for RViz, in ``base_frame``.
- ``diagnostics`` (``diagnostic_msgs/DiagnosticArray``) every ``diagnostics_period_s``: the rate
  of lists, the input rate, drops, the age of the last list, the perceiver's time per set and
  each camera's status (keys in docs/ros.md).

Each kind of bad input is one log line when it starts (and one when it clears), not one per frame.

The billiards cue (unchanged): with ``track_cue``, ``camera/<camera>/image_raw`` (+ ``depth`` when
``use_depth``) gives ``perception/cue_pose`` (``PoseStamped``, cue -> camera) and
``perception/keyframes`` (JSON: the streaming sampler's keyframe indices).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import String
from visualization_msgs.msg import Marker, MarkerArray

from perception.frames import Frame
from perception.pose.track import CueTracker
from perception.sampling import StreamingKeyframes
from perception.scene import CameraView, ScenePercept, ScenePerceiver
from perception.scene.palette import OBJECT_COLORS, BACKGROUND_COLORS
from ros_nodes.convert import K_from_info, msg_to_pose, percept_to_json, pose_to_msg, stamp_seconds
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import RELIABLE_QOS, SENSOR_QOS, declare, receive_image

MAX_KEYS = 8  # stamps kept per camera while their parts arrive (a dead depth topic cannot grow memory)


def _key(stamp) -> tuple[int, int]:
    return int(stamp.sec), int(stamp.nanosec)


def read_extrinsics(path: str) -> dict[str, np.ndarray]:
    """``{camera: 4x4 camera -> base}`` from a JSON file ``{"<camera>": [[...], ...], ...}``."""
    file = Path(path)
    if not file.is_file():
        raise NodeParameterError(f"extrinsics file {file} not found")
    try:
        data = json.loads(file.read_text())
        out = {str(cam): np.asarray(T, dtype=np.float64).reshape(4, 4) for cam, T in dict(data).items()}
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, ValueError) as exc:
        raise NodeParameterError(f'extrinsics file {file} needs {{"<camera>": 4x4 matrix}}: {exc}') from None
    bad = [cam for cam, T in out.items() if not np.all(np.isfinite(T))]
    if bad:
        raise NodeParameterError(f"extrinsics file {file}: non-finite values for {', '.join(bad)}")
    return out


class SceneStream:
    """One camera's parts (image, depth, pose) by stamp, until a view is made of them."""

    def __init__(self) -> None:
        self.parts: dict[tuple[int, int], dict[str, Any]] = {}
        self.K: np.ndarray | None = None
        self.last: tuple[int, int] = (-1, -1)  # the stamp of the last view perceived
        self.status = "ok"  # the last view's status, for logging changes only

    def add(self, key: tuple[int, int], part: str, value: Any) -> int:
        """Store a part; returns how many images were dropped to stay within MAX_KEYS."""
        if key <= self.last:
            return 0  # a re-sent copy of a perceived set, or late
        entry = self.parts.setdefault(key, {"arrived": time.monotonic()})
        entry[part] = value
        dropped = 0
        while len(self.parts) > MAX_KEYS:
            oldest = min(self.parts)
            dropped += "image" in self.parts.pop(oldest)
        return dropped

    def newest_image(self) -> tuple[int, int] | None:
        keys = [k for k, p in self.parts.items() if "image" in p]
        return max(keys) if keys else None

    def consume(self, key: tuple[int, int]) -> int:
        """Forget everything up to ``key``; returns how many older images were never perceived."""
        self.last = key
        old = [k for k in self.parts if k <= key]
        dropped = sum("image" in self.parts[k] for k in old if k < key)
        for k in old:
            del self.parts[k]
        return dropped


class PerceptionNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("perception", **node_kwargs)
        # -- the scene perceiver -------------------------------------------------------------
        self.cameras = [str(c) for c in declare(self, "cameras", ["agentview", "wrist"]) if c]
        topics = declare(self, "topics", "camera/{camera}")  # prefix of each camera's topics
        extrinsics = declare(self, "extrinsics", "")  # JSON file: fixed cameras' 4x4 camera -> base
        self.sync_s = float(declare(self, "sync_s", 0.15))
        self.base_frame = declare(self, "base_frame", "base")
        diag_period = float(declare(self, "diagnostics_period_s", 1.0))
        memory_s = float(declare(self, "memory_s", 1.0))
        if not all(0 < x < float("inf") for x in (self.sync_s, diag_period, memory_s)):
            raise NodeParameterError(f"parameters sync_s, diagnostics_period_s and memory_s must be positive, "
                                     f"got {self.sync_s}, {diag_period}, {memory_s}")
        if "{camera}" not in topics:
            raise NodeParameterError(f"parameter topics must contain {{camera}}, got {topics!r}")
        self.extrinsics = read_extrinsics(extrinsics) if extrinsics else {}
        self.perceiver = ScenePerceiver(memory_s=memory_s)
        self.streams = {c: SceneStream() for c in self.cameras}
        self.poses: dict[str, dict[tuple[int, int], np.ndarray]] = {c: {} for c in self.cameras}
        self.percept: ScenePercept | None = None
        self.percept_stamp = None  # the ROS stamp of the last list
        self.dropped = 0  # malformed images (receive_image counts them)
        self.superseded = 0  # images never perceived: a newer set came first, or their stamp's parts overflowed
        self.published = 0
        self.received = 0
        self._perceive_s = 0.0
        self._window = (time.monotonic(), 0, 0, 0.0)  # (since, published, received, perceive seconds)
        self._scene_state = ""  # "ok:<n>" | "empty" | "blind: <reason>", for logging changes
        self.objects_pub = self.create_publisher(String, "perception/objects", RELIABLE_QOS)
        self.markers_pub = self.create_publisher(MarkerArray, "perception/markers", RELIABLE_QOS)
        self.diag_pub = self.create_publisher(DiagnosticArray, "diagnostics", RELIABLE_QOS)
        for cam in self.cameras:
            ns = topics.format(camera=cam).rstrip("/") + "/"
            self.create_subscription(Image, ns + "image_raw", lambda m, c=cam: self._on_scene_image(c, m), SENSOR_QOS)
            self.create_subscription(Image, ns + "depth", lambda m, c=cam: self._on_scene_depth(c, m), SENSOR_QOS)
            self.create_subscription(CameraInfo, ns + "camera_info", lambda m, c=cam: self._on_scene_info(c, m),
                                     SENSOR_QOS)
            self.create_subscription(PoseStamped, ns + "pose", lambda m, c=cam: self._on_scene_pose(c, m), SENSOR_QOS)
        if self.cameras:
            self.create_timer(min(0.05, self.sync_s / 2), self._try_perceive)
            self.create_timer(diag_period, self._publish_diagnostics)

        # -- the billiards cue (keyframes of its camera and the cue's pose) ----------------------
        cam = declare(self, "camera", "player")
        self.use_depth = bool(declare(self, "use_depth", True))
        self.track_cue = bool(declare(self, "track_cue", True))
        self.keyframes = StreamingKeyframes(capacity=int(declare(self, "keyframes", 16)), keep_frames=False)
        self.tracker = CueTracker()
        self.K: np.ndarray | None = None
        self._depth: dict[tuple[int, int], np.ndarray] = {}
        self._t0: float | None = None
        self.frames = 0
        self.pose_pub = self.create_publisher(PoseStamped, "perception/cue_pose", RELIABLE_QOS)
        self.key_pub = self.create_publisher(String, "perception/keyframes", RELIABLE_QOS)
        self.create_subscription(CameraInfo, f"camera/{cam}/camera_info", self._on_info, SENSOR_QOS)
        self.create_subscription(Image, f"camera/{cam}/image_raw", self._on_image, SENSOR_QOS)
        if self.use_depth:
            self.create_subscription(Image, f"camera/{cam}/depth", self._on_depth, SENSOR_QOS)
        self.get_logger().info(f"perception node up: scene cameras {self.cameras or 'none'}; keyframes"
                               f"{' and the cue' if self.track_cue else ''} from camera {cam}")

    # -- the scene: inputs -----------------------------------------------------------------------
    def _on_scene_image(self, cam: str, msg: Image) -> None:
        image = receive_image(self, msg, where=f"camera {cam}")
        if image is None:
            return
        self.received += 1
        self.superseded += self.streams[cam].add(_key(msg.header.stamp), "image", (image, msg.header.stamp))
        self._try_perceive()

    def _on_scene_depth(self, cam: str, msg: Image) -> None:
        depth = receive_image(self, msg, colour=False, where=f"camera {cam}'s depth")
        if depth is not None:
            self.superseded += self.streams[cam].add(_key(msg.header.stamp), "depth", depth)
            self._try_perceive()

    def _on_scene_info(self, cam: str, msg: CameraInfo) -> None:
        K = K_from_info(msg)
        if K[0, 0] > 0 and K[1, 1] > 0 and np.all(np.isfinite(K)):
            self.streams[cam].K = K

    def _on_scene_pose(self, cam: str, msg: PoseStamped) -> None:
        T = msg_to_pose(msg)
        if not np.all(np.isfinite(T)):
            return
        poses = self.poses[cam]
        poses[_key(msg.header.stamp)] = T
        while len(poses) > MAX_KEYS:
            poses.pop(min(poses))
        self._try_perceive()

    def _pose(self, cam: str, key: tuple[int, int]) -> np.ndarray | None:
        """The camera's pose at the image's stamp (a moving wrist camera needs that exact one), or its
        fixed extrinsics from the file."""
        T = self.poses[cam].get(key)
        return T if T is not None else self.extrinsics.get(cam)

    # -- the scene: perceiving -------------------------------------------------------------------
    def _try_perceive(self) -> None:
        """Perceive the newest set once every camera has all its parts, or once its first image
        has waited ``sync_s`` (then with what came: a missing part is the view's stated problem)."""
        new = {c: s.newest_image() for c, s in self.streams.items()}
        new = {c: k for c, k in new.items() if k is not None}
        if not new:
            return
        complete = all("depth" in self.streams[c].parts[k] and self._pose(c, k) is not None
                       and self.streams[c].K is not None for c, k in new.items())
        waited = max(time.monotonic() - self.streams[c].parts[k]["arrived"] for c, k in new.items())
        if not ((complete and len(new) == len(self.cameras)) or waited > self.sync_s):
            return
        views, stamps = [], []
        for cam, key in new.items():
            stream = self.streams[cam]
            parts = stream.parts[key]
            image, stamp = parts["image"]
            K = stream.K if stream.K is not None else np.zeros((3, 3))
            views.append(CameraView(cam, image, parts.get("depth"), K, self._pose(cam, key), stamp_seconds(stamp)))
            stamps.append(stamp)
            self._explain(cam, key, parts)
            self.superseded += stream.consume(key)
        stamp = max(stamps, key=_key)
        t0 = time.perf_counter()
        percept = self.perceiver.perceive(views, stamp_seconds(stamp))
        self._perceive_s += time.perf_counter() - t0
        self.percept, self.percept_stamp = percept, stamp
        self.objects_pub.publish(String(data=percept_to_json(percept, stamp, self.base_frame)))
        self.markers_pub.publish(self._markers(percept, stamp))
        self.published += 1
        self._log_scene(percept)

    def _explain(self, cam: str, key: tuple[int, int], parts: dict) -> None:
        """One log line when a camera's view becomes unusable for a reason the node can see (and
        one when it is usable again); the perceiver adds its own reasons to the list."""
        stream = self.streams[cam]
        if "depth" not in parts:
            others = [k for k, p in stream.parts.items() if "depth" in p and k != key]
            status = "no depth image"
            if others:
                gap = min(abs((k[0] - key[0]) + (k[1] - key[1]) * 1e-9) for k in others)
                status = f"no depth image with the colour image's stamp (the nearest is {gap:.3f} s away)"
        elif self._pose(cam, key) is None:
            status = "extrinsics unknown (no pose with the image's stamp, none in the extrinsics file)"
        elif stream.K is None:
            status = "no camera_info (intrinsics unknown)"
        else:
            status = "ok"
        if status != stream.status:
            if status == "ok":
                self.get_logger().info(f"camera {cam}: view usable again")
            else:
                self.get_logger().warning(f"camera {cam}: {status}; its view is not used")
            stream.status = status

    def _log_scene(self, percept: ScenePercept) -> None:
        if not percept.ok:
            state, line = f"blind: {percept.reason}", f"I can't see the table: {percept.reason}"
        elif not percept.objects:
            state, line = "empty", "the table is in view and empty: no objects on it"
        else:
            state = f"ok:{len(percept.objects)}"
            line = f"{len(percept.objects)} object(s) on the table: " + ", ".join(
                f"{o.id}: {o.description}" for o in percept.objects)
        if state != self._scene_state:
            if state.startswith("blind"):  # (rclpy: one severity per call site)
                self.get_logger().warning(line)
            else:
                self.get_logger().info(line)
            self._scene_state = state

    def _markers(self, percept: ScenePercept, stamp) -> MarkerArray:
        """A cube or cylinder per object (its colour, size and yaw), a label above it, a flat disc
        per receptacle; the first marker clears the last list's."""
        out = MarkerArray()
        clear = Marker()
        clear.action = Marker.DELETEALL
        out.markers.append(clear)

        def marker(ns: str, mid: int, kind: int, position, rgb, scale) -> Marker:
            m = Marker()
            m.header.frame_id, m.header.stamp = self.base_frame, stamp
            m.ns, m.id, m.type, m.action = ns, mid, kind, Marker.ADD
            m.pose.position.x, m.pose.position.y, m.pose.position.z = (float(v) for v in position)
            m.pose.orientation.w = 1.0
            m.scale.x, m.scale.y, m.scale.z = (float(v) for v in scale)
            m.color.r, m.color.g, m.color.b, m.color.a = (*(float(v) for v in rgb), 1.0)
            return m

        for o in percept.objects:
            kind = Marker.CUBE if o.shape == "cube" else Marker.CYLINDER
            m = marker("objects", o.id, kind, o.position, OBJECT_COLORS.get(o.color, (0.5, 0.5, 0.5)), o.size)
            if o.yaw is not None:
                m.pose.orientation.z, m.pose.orientation.w = float(np.sin(o.yaw / 2)), float(np.cos(o.yaw / 2))
            if not o.visible:
                m.color.a = 0.4  # remembered, not seen in this frame
            out.markers.append(m)
            label = marker("labels", o.id, Marker.TEXT_VIEW_FACING,
                           (o.position[0], o.position[1], o.position[2] + o.size[2] / 2 + 0.03),
                           (1.0, 1.0, 1.0), (0.0, 0.0, 0.025))
            label.text = f"{o.id}: {o.description} ({o.color_confidence:.2f})"
            out.markers.append(label)
        for i, r in enumerate(percept.receptacles):
            out.markers.append(marker("receptacles", i, Marker.CYLINDER, r.position,
                                      BACKGROUND_COLORS.get(r.kind, (0.8, 0.8, 0.8)),
                                      (2 * r.radius, 2 * r.radius, 0.005)))
        return out

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        since, published, received, perceive_s = self._window
        elapsed = max(now - since, 1e-9)
        n = self.published - published
        rate, input_rate = n / elapsed, (self.received - received) / elapsed
        self._window = (now, self.published, self.received, self._perceive_s)
        p = self.percept
        age = (self.get_clock().now().nanoseconds * 1e-9 - stamp_seconds(self.percept_stamp)
               if self.percept_stamp is not None else float("inf"))
        status = DiagnosticStatus()
        status.name, status.hardware_id = "perception: scene", self.get_name()
        if n == 0:
            status.level, status.message = DiagnosticStatus.ERROR, "no object list in the last period"
        elif not p.ok:
            status.level, status.message = DiagnosticStatus.WARN, f"the table is not visible: {p.reason}"
        else:
            status.level, status.message = DiagnosticStatus.OK, f"{len(p.objects)} object(s)"
        values = {
            "rate_hz": f"{rate:.2f}", "input_rate_hz": f"{input_rate:.2f}",
            "published": str(self.published), "received": str(self.received),
            "dropped": str(self.dropped + self.superseded), "dropped_malformed": str(self.dropped),
            "dropped_unperceived": str(self.superseded),
            "perceive_ms": f"{1000 * (self._perceive_s - perceive_s) / n:.1f}" if n else "nan",
            "last_stamp_age_s": f"{age:.3f}", "status": p.status if p else "none",
            "objects": str(len(p.objects)) if p else "0",
        }
        values.update({f"view.{cam}": s.status for cam, s in self.streams.items()})
        if p is not None:
            values.update({f"perceiver.{cam}": why for cam, why in p.views})
        status.values = [KeyValue(key=k, value=v) for k, v in values.items()]
        msg = DiagnosticArray()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.status = [status]
        self.diag_pub.publish(msg)

    # -- the billiards cue -----------------------------------------------------------------------
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
