"""The QA node: questions about what a camera saw, answered by the video-QA model.

Subscribes to ``camera/<camera>/image_raw`` (sensor-data QoS) and keeps a bounded window of recent
frames (:class:`perception.buffer.FrameBuffer`, by count and by stream age, so memory is flat
however long the node runs). Questions arrive on ``qa/question`` and answers leave on
``qa/answer``, both JSON in ``std_msgs/String`` with the caller's request id:

    {"id": 7, "question": "which ball was potted first?"}
    -> {"id": 7, "answer": "red", "frame_times": [0.4, ...], "truncated": false, "frames": 120}
    -> {"id": 7, "error": "..."}                      (bad request, empty memory, model error)

A request that is not JSON (so has no id to answer to) is logged and dropped. Answers are computed
in the subscription callback: with the small default model that takes tens of milliseconds, during
which best-effort camera frames may be skipped, which only thins the window.
"""

from __future__ import annotations

import json
from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import Image
from std_msgs.msg import String

from perception.buffer import FrameBuffer
from perception.frames import Frame
from ros_nodes.runtime import RELIABLE_QOS, SENSOR_QOS, declare, receive_image


class QANode(Node):
    def __init__(self, qa: Any = None, **node_kwargs) -> None:
        """``qa``: a loaded :class:`video_qa.ask.VideoQA` (tests); otherwise the ``checkpoint``
        parameter names the directory to load it from."""
        super().__init__("qa", **node_kwargs)
        camera = declare(self, "camera", "agentview")
        checkpoint = declare(self, "checkpoint", "")
        max_frames = int(declare(self, "memory_frames", 600))
        max_age = float(declare(self, "memory_age_s", 0.0))  # 0 = by count only
        self.stride = max(1, int(declare(self, "stride", 1)))  # keep every n-th frame
        if qa is None:
            from video_qa.ask import default_checkpoint, load_qa

            qa = load_qa(checkpoint or default_checkpoint())
        self.qa = qa
        self.memory = FrameBuffer(max_frames=max_frames, max_age_s=max_age or None)
        self.received = 0
        self.dropped = 0
        self.answered = 0
        self._t0: float | None = None
        self.answer_pub = self.create_publisher(String, "qa/answer", RELIABLE_QOS)
        self.create_subscription(Image, f"camera/{camera}/image_raw", self._on_image, SENSOR_QOS)
        self.create_subscription(String, "qa/question", self._on_question, RELIABLE_QOS)

    def _on_image(self, msg: Image) -> None:
        image = receive_image(self, msg)
        if image is None:
            return
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self._t0 = stamp if self._t0 is None else self._t0
        index = self.received
        self.received += 1
        if index % self.stride == 0:
            self.memory.push(Frame(image, stamp - self._t0, index, {}))

    def _reply(self, payload: dict[str, Any]) -> None:
        self.answer_pub.publish(String(data=json.dumps(payload, ensure_ascii=False)))

    def _on_question(self, msg: String) -> None:
        try:
            req = json.loads(msg.data)
        except json.JSONDecodeError:
            self.get_logger().warning("dropped a question that is not JSON {\"id\", \"question\"}")
            return
        rid = req.get("id") if isinstance(req, dict) else None
        question = req.get("question") if isinstance(req, dict) else None
        if not isinstance(question, str) or not question.strip():
            self._reply({"id": rid, "error": "a request needs a non-empty \"question\" string"})
            return
        frames = self.memory.frames()
        if not frames:
            self._reply({"id": rid, "error": "no frames received yet: the video memory is empty"})
            return
        try:
            ans = self.qa.answer(frames, question)
        except Exception as exc:  # noqa: BLE001 - a failed answer is reported; the node keeps serving
            self.get_logger().error(f"question {rid!r} failed: {exc}")
            self._reply({"id": rid, "error": f"{type(exc).__name__}: {exc}"})
            return
        self.answered += 1
        self._reply({"id": rid, "answer": ans.text, "frame_times": list(ans.frame_times),
                     "truncated": bool(getattr(ans, "truncated", False)), "frames": len(frames)})


def main(args: list[str] | None = None) -> int:
    from ros_nodes.runtime import run_node

    return run_node(QANode, args)


if __name__ == "__main__":
    import sys

    sys.exit(main(sys.argv))
