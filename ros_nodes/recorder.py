"""Recording topics to rosbag2: what the camera node replays (``embodied ros record``).

``BagWriter`` writes ROS 2 messages (rclpy objects, or the CDR bytes a raw subscription hands over)
into a rosbag2 directory with the ``rosbags`` library (pure Python, no ``ros2 bag`` needed: the PyPI
wheels have no rosbag2). The recorder node subscribes to the named topics once they appear on the
graph, in raw mode, so each message goes to the bag as the bytes that were on the wire, stamped
with the time it arrived (the replay paces by that time and keeps the headers' stamps).

A sim robot's RGB-D stream, for the camera node to replay into the perception node::

    embodied ros record --out scene_bag --duration 10 --topics \\
        camera/agentview/image_raw camera/agentview/depth camera/agentview/camera_info \\
        camera/agentview/pose camera/wrist/image_raw camera/wrist/depth camera/wrist/camera_info \\
        camera/wrist/pose
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.serialization import serialize_message

from ros_nodes.errors import NodeParameterError
from ros_nodes.runtime import declare

# Best effort receives from reliable and best-effort publishers alike; a deep queue rides out a slow
# disk write without dropping a burst of one frame set (two cameras x image, depth, info, pose).
RECORD_QOS = QoSProfile(depth=64, reliability=ReliabilityPolicy.BEST_EFFORT)


def type_name(msg_or_class: Any) -> str:
    """``sensor_msgs.msg.Image`` (class or instance) -> ``"sensor_msgs/msg/Image"``."""
    cls = msg_or_class if isinstance(msg_or_class, type) else type(msg_or_class)
    return f"{cls.__module__.split('.')[0]}/msg/{cls.__name__}"


def message_class(msgtype: str) -> type:
    """``"sensor_msgs/msg/Image"`` -> the rclpy class; ``KeyError`` when its package is not installed."""
    package, _, name = msgtype.partition("/msg/")
    try:
        return getattr(importlib.import_module(f"{package}.msg"), name)
    except (ImportError, AttributeError):
        raise KeyError(f"message type {msgtype} is not installed") from None


class BagWriter:
    """A rosbag2 directory (sqlite3 storage, format version 9) being written; ``close()`` finishes it.

    Message definitions come from the ``rosbags`` type store of the ROS 2 release the wheels are
    (Kilted), so ``ros2 bag info`` and other readers see the types; a type the store does not know
    cannot be recorded (``write_raw`` raises ``KeyError``; the node skips that topic with a log line).
    """

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Writer, WriterError
        from rosbags.typesys import Stores, get_typestore

        self.path = Path(path)
        if self.path.exists():
            raise NodeParameterError(f"{self.path} exists: a recording never overwrites another")
        self.store = get_typestore(Stores.ROS2_KILTED)
        self._writer = Writer(self.path, version=9)
        try:
            self._writer.open()
        except (WriterError, OSError) as exc:
            raise NodeParameterError(f"cannot write a recording at {self.path}: {exc}") from None
        self._conns: dict[str, Any] = {}
        self.messages = 0

    def knows(self, msgtype: str) -> bool:
        return msgtype in self.store.types

    def write_raw(self, topic: str, msgtype: str, raw: bytes, time_ns: int) -> None:
        topic = topic if topic.startswith("/") else "/" + topic
        conn = self._conns.get(topic)
        if conn is None:
            if not self.knows(msgtype):
                raise KeyError(f"message type {msgtype} is unknown to the recorder's type store")
            conn = self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)
        self._writer.write(conn, int(time_ns), bytes(raw))
        self.messages += 1

    def write(self, topic: str, msg: Any, time_ns: int) -> None:
        """An rclpy message object (the test helpers' way of writing a recording)."""
        self.write_raw(topic, type_name(msg), serialize_message(msg), time_ns)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> "BagWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RecorderNode(Node):
    def __init__(self, **node_kwargs) -> None:
        super().__init__("recorder", **node_kwargs)
        out = declare(self, "out", "")
        self.topics = ["/" + t.lstrip("/") for t in declare(self, "topics", [""]) if t]
        self.duration_s = float(declare(self, "duration_s", 0.0))  # 0 = until stopped
        if not out:
            raise NodeParameterError("parameter out (the recording's directory) is required")
        if not self.topics:
            raise NodeParameterError("parameter topics is required: the topics to record")
        if not 0 <= self.duration_s < float("inf"):
            raise NodeParameterError(f"parameter duration_s must be 0 (until stopped) or more, got {self.duration_s}")
        self.writer = BagWriter(out)
        self.subscribed: dict[str, str] = {}  # topic -> its message type
        self.done = False
        self._started = time.monotonic()
        self._discover()
        self.create_timer(0.2, self._discover)
        self.get_logger().info(f"recording {', '.join(self.topics)} to {out}")

    def _discover(self) -> None:
        """Subscribe to each wanted topic once the graph says what type it carries."""
        if self.duration_s and time.monotonic() - self._started >= self.duration_s:
            self.done = True
            return
        for topic, types in self.get_topic_names_and_types():
            if topic not in self.topics or topic in self.subscribed or not types:
                continue
            msgtype = types[0]
            self.subscribed[topic] = msgtype
            try:
                if not self.writer.knows(msgtype):
                    raise KeyError(f"its type {msgtype} is unknown to the recorder's type store")
                cls = message_class(msgtype)
            except KeyError as exc:
                self.get_logger().warning(f"not recording {topic}: {exc.args[0]}")
                continue
            self.create_subscription(cls, topic, lambda raw, t=topic, m=msgtype: self._on_message(t, m, raw),
                                     RECORD_QOS, raw=True)
            self.get_logger().info(f"recording {topic} ({msgtype})")

    def _on_message(self, topic: str, msgtype: str, raw: bytes) -> None:
        self.writer.write_raw(topic, msgtype, raw, self.get_clock().now().nanoseconds)

    def close(self) -> None:
        """Called by ``run_node`` on the way out: the bag's metadata is written here."""
        self.writer.close()
        missing = sorted(set(self.topics) - set(self.subscribed))
        note = f"; never seen: {', '.join(missing)}" if missing else ""
        self.get_logger().info(f"recorded {self.writer.messages} message(s) to {self.writer.path}{note}")


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(RecorderNode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
