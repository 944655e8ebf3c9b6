"""The camera node: a video file, a rosbag2 recording or a synthetic pattern as a ROS 2 camera.

- **A rosbag2 recording** (a directory, ``.db3`` or ``.mcap``; ``ros_nodes.recorder`` writes them)
  is replayed as it was recorded: every topic in it (or those in ``topics``), under its recorded
  name and type, so an RGB-D recording of the sim robot gives the perception node the
  ``camera/<cam>/image_raw``, ``depth``, ``camera_info`` and ``pose`` it reads. Messages go out at
  the recorded rate (the times the recorder received them), and each message's header stamp is
  moved by one offset per pass so the first stamp is "now": stamps keep their recorded spacing and
  their pairing (an image and its depth still share a stamp), and a replayed view is current, not
  hours old. The node ends after the last message (or starts again with ``loop``).
- **A video file** (or a ROS 1 ``.bag``: its images) is RGB only: ``camera/<name>/image_raw`` and
  ``camera/<name>/camera_info`` (``intrinsics``, else a 60° pinhole), stamped when sent. Nothing
  invents depth or a pose: the perception node says it has no depth rather than guess a list.
- **synthetic**: a moving gradient, cheap to make, what the transport benchmark uses.

Frames go out at ``rate_hz`` (video, synthetic), or at the recording's own timing when ``rate_hz``
is 0 (the default; 30 Hz for the synthetic pattern). Images use sensor-data QoS, as a driver's do.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
from rclpy.node import Node
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, Image

from ros_nodes.convert import camera_info, image_to_msg
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import RELIABLE_QOS, SENSOR_QOS, declare


LINGER_S = 0.5  # after the last message, before the node reports done (and its process exits)


def synthetic_frames(width: int, height: int) -> Iterator[np.ndarray]:
    """A horizontal gradient that scrolls one column per frame: changing, and free to compute.

    The frame counter is written into the first two pixels (6 bytes, little-endian) so a receiver
    can count exactly which frames it missed (see :func:`synthetic_index`).
    """
    base = np.tile(np.arange(width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    i = 0
    while True:
        frame = np.roll(base, i, axis=1)
        frame[0, :2, :] = np.frombuffer(i.to_bytes(6, "little"), dtype=np.uint8).reshape(2, 3)
        yield frame
        i += 1


def synthetic_index(image: np.ndarray) -> int:
    return int.from_bytes(image[0, :2, :].tobytes(), "little")


def default_K(width: int, height: int, fov_deg: float = 60.0) -> np.ndarray:
    f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])


def read_intrinsics(path: str) -> np.ndarray:
    """The 3x3 camera matrix ``K`` from a JSON file ``{"K": [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]}``."""
    file = Path(path)
    if not file.is_file():
        raise NodeParameterError(f"intrinsics file {file} not found")
    try:
        K = np.asarray(json.loads(file.read_text())["K"], dtype=np.float64).reshape(3, 3)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise NodeParameterError(f"intrinsics file {file} is not JSON: {exc}") from None
    except (KeyError, TypeError, ValueError):
        raise NodeParameterError(f'intrinsics file {file} needs "K": a 3x3 matrix of numbers') from None
    if not np.all(np.isfinite(K)):
        raise NodeParameterError(f"intrinsics file {file}: K has non-finite values")
    return K


class CameraNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("camera", **node_kwargs)
        self.name = declare(self, "camera", "camera")
        source = declare(self, "source", "synthetic")
        rate_hz = float(declare(self, "rate_hz", 0.0))  # 0: the recording's own timing
        self.loop = bool(declare(self, "loop", False))
        self.count = int(declare(self, "count", 0))  # 0 = until the source ends (or forever)
        width, height = int(declare(self, "width", 640)), int(declare(self, "height", 480))
        # Hold frames until this many subscribers matched (benchmarks and lock-step tests count frames).
        self.wait_subscribers = int(declare(self, "wait_subscribers", 0))
        intrinsics = declare(self, "intrinsics", "")  # JSON file with "K" (3x3), else a 60° pinhole
        topics = [t for t in declare(self, "topics", [""]) if t]  # a recording's topics to replay; none = all
        if source == "synthetic" and (width < 1 or height < 1):
            raise NodeParameterError(f"parameters width and height must be positive, got {width}x{height}")
        if not 0 <= rate_hz < float("inf"):  # also refuses NaN
            raise NodeParameterError(f"parameter rate_hz must be positive (or 0: the recording's own timing), "
                                     f"got {rate_hz}")
        if self.count < 0 or self.wait_subscribers < 0:
            raise NodeParameterError(f"parameters count and wait_subscribers must be 0 or more, got "
                                     f"{self.count}, {self.wait_subscribers}")
        self.source = source
        self.rate_hz = rate_hz
        self.published = 0  # frames (video, synthetic) or messages (a recording)
        self.done = False  # True: run_node ends the process
        self._ended: float | None = None  # when the source ran out
        self._origin: tuple[int, float, float] | None = None  # (pass, wall time, recorded time) of a pass's start
        self.recording = _is_rosbag2(source)
        if self.recording:
            if rate_hz or self.count:
                raise NodeParameterError("a recording replays whole at its recorded rate: leave rate_hz and "
                                         "count at 0")
            self._open_recording(source, topics)
        else:
            if topics:
                raise NodeParameterError("parameter topics is for replaying a rosbag2 recording")
            self._items = self._frames(source, width, height)
            first = next(self._items, None)
            if first is None:
                raise NodeParameterError(f"camera source {source!r} has no frames")
            self._next = first
            h, w = first[2].shape[:2]
            self.K = read_intrinsics(intrinsics) if intrinsics else default_K(w, h)
            self.size = (w, h)
            self.image_pub = self.create_publisher(Image, f"camera/{self.name}/image_raw", SENSOR_QOS)
            self.info_pub = self.create_publisher(CameraInfo, f"camera/{self.name}/camera_info", SENSOR_QOS)
            self._image_pubs = [self.image_pub]
        # At a fixed rate one frame per tick; at recorded timing a fine tick sends what is due.
        self.create_timer(1.0 / rate_hz if rate_hz > 0 else 0.005, self._on_tick)

    # -- sources: items are (pass, recorded time in s, payload) ----------------------------------
    def _frames(self, source: str, width: int, height: int) -> Iterator[tuple[int, float, np.ndarray]]:
        if source == "synthetic":
            for i, frame in enumerate(synthetic_frames(width, height)):
                yield 0, i / 30.0, frame
            return
        from perception.sources import open_source

        for n in itertools.count():
            for frame in open_source(source):
                yield n, frame.t, frame.image
            if not self.loop:
                return

    def _open_recording(self, source: str, topics: list[str]) -> None:
        from perception.sources import RosbagMessages
        from ros_nodes.recorder import message_class

        bag = RosbagMessages(source, topics or None)
        self.pubs: dict[str, Any] = {}
        self.classes: dict[str, type] = {}
        for topic, msgtype in sorted(bag.topics.items()):
            try:
                self.classes[topic] = message_class(msgtype)
            except KeyError as exc:
                self.get_logger().warning(f"not replaying {topic}: {exc.args[0]}")
                continue
            # Camera topics as a driver publishes them (sensor-data QoS); the rest reliable, which
            # best-effort subscribers also match.
            sensor = msgtype.startswith("sensor_msgs/") or topic.startswith("/camera/")
            self.pubs[topic] = self.create_publisher(self.classes[topic], topic, SENSOR_QOS if sensor else RELIABLE_QOS)
        if not self.pubs:
            raise NodeParameterError(f"nothing in {source} can be replayed")
        self._image_pubs = [p for t, p in self.pubs.items() if bag.topics[t] == "sensor_msgs/msg/Image"]
        self._image_pubs = self._image_pubs or list(self.pubs.values())

        def items() -> Iterator[tuple[int, float, Any]]:
            for n in itertools.count():
                for m in bag:
                    if m.topic in self.pubs:
                        yield n, m.time_ns * 1e-9, m
                if not self.loop:
                    return

        self._items = items()
        self._next = next(self._items, None)
        if self._next is None:
            raise NodeParameterError(f"the recording {source} has no messages")
        self._stamp_offset: tuple[int, int] | None = None  # (pass, ns added to each header stamp)
        self.get_logger().info(f"replaying {len(self.pubs)} topic(s) of {source}: {', '.join(self.pubs)}")

    # -- sending -----------------------------------------------------------------------------
    def _on_tick(self) -> None:
        now = time.monotonic()
        if self._ended is not None:  # the last messages may still be in flight: exit a moment later
            self.done = self.done or now - self._ended > LINGER_S
            return
        if min(p.get_subscription_count() for p in self._image_pubs) < self.wait_subscribers:
            return
        while self._next is not None:
            n, t, payload = self._next
            if self.rate_hz == 0:
                if self._origin is None or self._origin[0] != n:
                    self._origin = (n, now, t)  # a pass's first item goes out at once
                if now < self._origin[1] + (t - self._origin[2]):
                    return
            (self._send_recorded if self.recording else self._send_frame)(n, payload)
            self.published += 1
            self._next = next(self._items, None)
            if self._next is None or (self.count and self.published >= self.count):
                self._ended = now
                return
            if self.rate_hz > 0:
                return  # one frame per tick

    def _send_frame(self, n: int, image: np.ndarray) -> None:
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_to_msg(image, stamp, frame_id=self.name))
        self.info_pub.publish(camera_info(self.K, *self.size, stamp, frame_id=self.name))

    def _send_recorded(self, n: int, m: Any) -> None:
        msg = deserialize_message(m.raw, self.classes[m.topic])
        header = getattr(msg, "header", None)
        if header is not None:
            recorded, now = header.stamp.sec * 1_000_000_000 + header.stamp.nanosec, self.get_clock().now().nanoseconds
            if recorded and (self._stamp_offset is None or self._stamp_offset[0] != n):
                self._stamp_offset = (n, now - recorded)
            stamp = recorded + self._stamp_offset[1] if recorded else now  # an unset stamp stays "when sent"
            header.stamp.sec, header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        self.pubs[m.topic].publish(msg)


def _is_rosbag2(source: str) -> bool:
    p = Path(source)
    return p.is_dir() or p.suffix in (".db3", ".mcap")


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(CameraNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
