"""The QA node over real topics: a checkpoint loaded from disk answers questions about the frames
it received, with request ids; bad requests get an error reply or are dropped, and it keeps serving."""

import json

import numpy as np
from builtin_interfaces.msg import Time
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image
from std_msgs.msg import String

from ros_nodes.convert import image_to_msg
from ros_nodes.qa_node import QANode
from ros_nodes.runtime import RELIABLE_QOS, SENSOR_QOS
from tests.ros_nodes.conftest import spin_until


def _tiny_checkpoint(path):
    import torch

    from tests.video_qa.helpers import tiny_config
    from video_qa.modeling_videolm import VideoLM

    torch.manual_seed(0)
    VideoLM(tiny_config()).save_pretrained(path)
    return path


def test_qa_node_answers_about_received_frames(ros, tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "qa")
    node = QANode(parameter_overrides=[Parameter("checkpoint", value=str(ckpt)),
                                       Parameter("camera", value="player"),
                                       Parameter("memory_frames", value=8)])
    op = ros.create_node("operator")
    answers = []
    op.create_subscription(String, "qa/answer", lambda m: answers.append(json.loads(m.data)), RELIABLE_QOS)
    ask = op.create_publisher(String, "qa/question", RELIABLE_QOS)
    cam = op.create_publisher(Image, "camera/player/image_raw", SENSOR_QOS)
    ex = SingleThreadedExecutor()
    ex.add_node(node)
    ex.add_node(op)

    def request(rid, question):
        ask.publish(String(data=json.dumps({"id": rid, "question": question}, ensure_ascii=False)))
        return spin_until(ex, lambda: any(a.get("id") == rid for a in answers))

    # Before any frame: an error reply, not silence.
    assert request(1, "what happened?")
    assert "empty" in next(a for a in answers if a["id"] == 1)["error"]

    rng = np.random.default_rng(0)
    for i in range(12):  # 10 Hz stamps starting at t = 100 s; the memory keeps the last 8
        img = rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)
        cam.publish(image_to_msg(img, stamp=Time(sec=100, nanosec=i * 100_000_000)))
        spin_until(ex, lambda: node.received > i, timeout_s=2.0)
    assert node.received == 12 and len(node.memory) == 8

    assert request(2, "¿Qué bola entró primero? 🎱")
    a2 = next(a for a in answers if a["id"] == 2)
    assert "error" not in a2 and isinstance(a2["answer"], str) and a2["frames"] == 8
    # The model looked at frames from the kept window (stream time 0.4 s .. 1.1 s).
    times = np.array(a2["frame_times"])
    assert len(times) == 3 and times.min() >= 0.4 - 1e-6 and times.max() <= 1.1 + 1e-6

    bad = Image(height=24, width=32, encoding="rgb8", step=10, data=bytes(10))  # wrong step
    cam.publish(bad)
    assert spin_until(ex, lambda: node.dropped == 1)
    ask.publish(String(data="not json"))  # no id to answer to: logged and dropped
    assert request(3, "")
    assert "question" in next(a for a in answers if a["id"] == 3)["error"]
    assert request(4, "what happened?")  # still serving
    assert "answer" in next(a for a in answers if a["id"] == 4) and node.answered == 2
    ex.shutdown()
    node.destroy_node()
    op.destroy_node()
