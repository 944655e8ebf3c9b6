"""The camera node: a video file, a rosbag2 recording or a synthetic pattern as a ROS 2 camera.

Publishes ``camera/<name>/image_raw`` (sensor-data QoS) and ``camera/<name>/camera_info``. Frames go
out at ``rate_hz``, or at the recording's own timing when ``rate_hz`` is 0. The synthetic source
(a moving gradient, cheap to make) is what the transport benchmark uses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator

import numpy as np
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from ros_nodes.convert import camera_info, image_to_msg
from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import SENSOR_QOS, declare


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
        rate_hz = float(declare(self, "rate_hz", 30.0))
        self.loop = bool(declare(self, "loop", False))
        self.count = int(declare(self, "count", 0))  # 0 = until the source ends (or forever)
        width, height = int(declare(self, "width", 640)), int(declare(self, "height", 480))
        # Hold frames until this many subscribers matched (benchmarks and lock-step tests count frames).
        self.wait_subscribers = int(declare(self, "wait_subscribers", 0))
        intrinsics = declare(self, "intrinsics", "")  # JSON file with "K" (3x3), else a 60° pinhole
        if source == "synthetic" and (width < 1 or height < 1):
            raise NodeParameterError(f"parameters width and height must be positive, got {width}x{height}")
        if not 0 <= rate_hz < float("inf"):  # also refuses NaN
            raise NodeParameterError(f"parameter rate_hz must be positive (or 0: the recording's own timing), "
                                     f"got {rate_hz}")
        if self.count < 0 or self.wait_subscribers < 0:
            raise NodeParameterError(f"parameters count and wait_subscribers must be 0 or more, got "
                                     f"{self.count}, {self.wait_subscribers}")
        self.source = source
        self._frames = self._open(source, width, height)
        first = next(self._frames, None)
        if first is None:
            raise NodeParameterError(f"camera source {source!r} has no frames")
        self._next = first
        h, w = first.shape[:2]
        self.K = read_intrinsics(intrinsics) if intrinsics else default_K(w, h)
        self.size = (w, h)
        self.image_pub = self.create_publisher(Image, f"camera/{self.name}/image_raw", SENSOR_QOS)
        self.info_pub = self.create_publisher(CameraInfo, f"camera/{self.name}/camera_info", SENSOR_QOS)
        self.published = 0
        self.done = False
        self.create_timer(1.0 / (rate_hz if rate_hz > 0 else 30.0), self._on_tick)

    def _open(self, source: str, width: int, height: int) -> Iterator[np.ndarray]:
        if source == "synthetic":
            return synthetic_frames(width, height)
        from perception.sources import open_source

        def frames() -> Iterator[np.ndarray]:
            while True:
                for frame in open_source(source):
                    yield frame.image
                if not self.loop:
                    return

        return frames()

    def _on_tick(self) -> None:
        if self.done or self.image_pub.get_subscription_count() < self.wait_subscribers:
            return
        stamp = self.get_clock().now().to_msg()
        self.image_pub.publish(image_to_msg(self._next, stamp, frame_id=self.name))
        self.info_pub.publish(camera_info(self.K, *self.size, stamp, frame_id=self.name))
        self.published += 1
        nxt = next(self._frames, None)
        if nxt is None or (self.count and self.published >= self.count):
            self.done = True
        else:
            self._next = nxt


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(CameraNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
