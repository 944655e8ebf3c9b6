"""numpy <-> standard ROS 2 messages, with the validation a robot needs from untrusted topics.

Only ``sensor_msgs``, ``geometry_msgs`` and ``std_msgs`` types are used, through APIs that exist
the same way in Humble, Jazzy and Kilted, so the nodes also run on a system ROS 2 (Jetson). The
scene perceiver's object list travels as JSON (``percept_to_json`` / ``percept_from_json``; the
schema is in docs/ros.md).
"""

from __future__ import annotations

import json
import math

import numpy as np
from geometry_msgs.msg import PoseStamped, TwistStamped
from sensor_msgs.msg import CameraInfo, Image

from perception.scene import OK, NOTHING_HERE, Receptacle, SceneObject, ScenePercept

# encoding -> (dtype, channels); what we accept from cameras.
_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("uint8", 3), "bgr8": ("uint8", 3), "rgba8": ("uint8", 4), "bgra8": ("uint8", 4),
    "mono8": ("uint8", 1), "32FC1": ("float32", 1), "16UC1": ("uint16", 1),
}


class BadMessage(ValueError):
    """A message that cannot be what it claims (wrong step, encoding or size): log and drop it."""


def image_to_msg(image: np.ndarray, stamp=None, frame_id: str = "camera") -> Image:
    """uint8 HxWx3 RGB -> ``rgb8``; float32 HxW depth (metres) -> ``32FC1``."""
    msg = Image()
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        msg.encoding = "rgb8"
    elif image.ndim == 2 and image.dtype == np.float32:
        msg.encoding = "32FC1"
    else:
        raise BadMessage(f"cannot publish an image of dtype {image.dtype} and shape {image.shape}")
    image = np.ascontiguousarray(image)
    msg.height, msg.width = int(image.shape[0]), int(image.shape[1])
    msg.step = int(image.strides[0])
    msg.is_bigendian = 0
    msg.data = image.tobytes()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """The image as uint8 HxWx3 RGB (colour encodings) or float32 HxW metres (depth encodings)."""
    if msg.encoding not in _ENCODINGS:
        raise BadMessage(f"unsupported encoding {msg.encoding!r} (supported: {', '.join(_ENCODINGS)})")
    dtype, channels = _ENCODINGS[msg.encoding]
    itemsize = np.dtype(dtype).itemsize
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise BadMessage(f"empty image {w}x{h}")
    if step < w * channels * itemsize:
        raise BadMessage(f"step {step} is smaller than width*channels*itemsize = {w * channels * itemsize}")
    data = memoryview(msg.data).cast("B") if not isinstance(msg.data, (bytes, bytearray)) else msg.data
    if len(data) != step * h:
        raise BadMessage(f"data has {len(data)} bytes, expected step*height = {step * h}")
    rows = np.frombuffer(data, dtype=np.uint8).reshape(h, step)[:, : w * channels * itemsize]
    big = bool(msg.is_bigendian)
    arr = rows.copy().view(np.dtype(dtype).newbyteorder(">" if big else "<")).reshape(h, w, channels)
    arr = arr.astype(dtype, copy=False)
    if msg.encoding == "16UC1":  # millimetres, the usual depth-camera convention
        return arr[..., 0].astype(np.float32) / 1000.0
    if msg.encoding == "32FC1":
        return arr[..., 0]
    if msg.encoding == "mono8":
        return np.repeat(arr, 3, axis=2)
    if msg.encoding.startswith("bgr"):
        arr = arr[..., [2, 1, 0]]
    return np.ascontiguousarray(arr[..., :3])


def camera_info(K: np.ndarray, width: int, height: int, stamp=None, frame_id: str = "camera") -> CameraInfo:
    msg = CameraInfo()
    msg.width, msg.height = int(width), int(height)
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [float(v) for v in np.asarray(K, dtype=np.float64).reshape(9)]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    P = np.zeros((3, 4))
    P[:3, :3] = np.asarray(K).reshape(3, 3)
    msg.p = [float(v) for v in P.reshape(12)]
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    return msg


def K_from_info(msg: CameraInfo) -> np.ndarray:
    return np.array(msg.k, dtype=np.float64).reshape(3, 3)


def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """(x, y, z, w), the ROS order, from a rotation matrix (Shepperd's method, numerically safe)."""
    m = R
    tr = np.trace(m)
    if tr > 0:
        s = np.sqrt(tr + 1.0) * 2
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2]) * 2
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2]) * 2
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1]) * 2
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    q = np.array([x, y, z, w])
    return q / np.linalg.norm(q)


def _matrix_from_quat(x: float, y: float, z: float, w: float) -> np.ndarray:
    n = np.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def pose_to_msg(T: np.ndarray, stamp=None, frame_id: str = "camera") -> PoseStamped:
    msg = PoseStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    x, y, z = (float(v) for v in T[:3, 3])
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = x, y, z
    qx, qy, qz, qw = (float(v) for v in _quat_from_matrix(np.asarray(T)[:3, :3]))
    msg.pose.orientation.x, msg.pose.orientation.y = qx, qy
    msg.pose.orientation.z, msg.pose.orientation.w = qz, qw
    return msg


def msg_to_pose(msg: PoseStamped) -> np.ndarray:
    T = np.eye(4)
    o, p = msg.pose.orientation, msg.pose.position
    T[:3, :3] = _matrix_from_quat(o.x, o.y, o.z, o.w)
    T[:3, 3] = [p.x, p.y, p.z]
    return T


def action_to_twist(action: np.ndarray, stamp=None, frame_id: str = "world") -> TwistStamped:
    """The first six action dimensions as a twist (per control step); the gripper travels apart."""
    msg = TwistStamped()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    a = [float(v) for v in np.asarray(action, dtype=np.float64)[:6]]
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = a[0], a[1], a[2]
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = a[3], a[4], a[5]
    return msg


def twist_to_action(msg: TwistStamped, gripper: float) -> np.ndarray:
    t = msg.twist
    return np.array([t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z, gripper],
                     dtype=np.float32)


def stamp_seconds(stamp) -> float:
    """A ``builtin_interfaces/Time`` as float seconds (the perceiver's and the lists' time base)."""
    return int(stamp.sec) + int(stamp.nanosec) * 1e-9


def _floats(values, n: int | None = None) -> list[float]:
    out = [float(v) for v in values]
    if (n is not None and len(out) != n) or not all(math.isfinite(v) for v in out):
        raise BadMessage(f"expected {n or 'some'} finite numbers, got {values!r}")
    return out


def percept_to_json(percept: ScenePercept, stamp, frame_id: str = "base") -> str:
    """The perception node's object list (``perception/objects``): one JSON object per percept.

    ``stamp`` is the camera images' stamp (``{"sec", "nanosec"}``, and ``t`` in seconds); positions
    are metres in ``frame_id`` (the robot base). ``status`` is "ok", or "nothing_here" with the
    ``reason`` (then the lists are empty: no table in view is not an empty table)."""
    return json.dumps({
        "stamp": {"sec": int(stamp.sec), "nanosec": int(stamp.nanosec)}, "t": stamp_seconds(stamp),
        "frame_id": frame_id, "status": percept.status, "reason": percept.reason,
        "sources": list(percept.sources), "views": {name: status for name, status in percept.views},
        "objects": [{
            "id": o.id, "name": o.description, "color": o.color,
            "color_confidence": round(o.color_confidence, 3), "shape": o.shape,
            "shape_confidence": round(o.shape_confidence, 3),
            "position": [round(v, 4) for v in o.position], "size": [round(v, 4) for v in o.size],
            "yaw": None if o.yaw is None else round(o.yaw, 4), "visible": o.visible,
            "last_seen": o.stamp, "sources": list(o.source),
        } for o in percept.objects],
        "receptacles": [{"kind": r.kind, "position": [round(v, 4) for v in r.position],
                         "radius": round(r.radius, 4), "last_seen": r.stamp, "sources": list(r.source)}
                        for r in percept.receptacles],
    })


def percept_from_json(text: str) -> ScenePercept:
    """The ``ScenePercept`` a ``percept_to_json`` list describes; ``BadMessage`` for anything else
    (a list with a missing field or a non-finite number is refused whole, never half-read)."""
    try:
        d = json.loads(text)
        status = d["status"]
        if status not in (OK, NOTHING_HERE):
            raise BadMessage(f"unknown status {status!r}")
        t = _floats([d["t"]])[0]
        objects = tuple(SceneObject(
            id=int(o["id"]), color=str(o["color"]), shape=str(o["shape"]),
            position=tuple(_floats(o["position"], 3)), size=tuple(_floats(o["size"], 3)),
            yaw=None if o.get("yaw") is None else _floats([o["yaw"]])[0],
            color_confidence=float(o.get("color_confidence", 1.0)),
            shape_confidence=float(o.get("shape_confidence", 1.0)),
            stamp=float(o.get("last_seen", t)), source=tuple(o.get("sources", ())),
            visible=bool(o.get("visible", True))) for o in d["objects"])
        receptacles = tuple(Receptacle(
            kind=str(r["kind"]), position=tuple(_floats(r["position"], 3)), radius=float(r["radius"]),
            stamp=float(r.get("last_seen", t)), source=tuple(r.get("sources", ())))
            for r in d["receptacles"])
        return ScenePercept(status, t, objects, receptacles, tuple(d.get("sources", ())),
                            tuple((str(k), str(v)) for k, v in dict(d.get("views", {})).items()),
                            str(d.get("reason", "")))
    except BadMessage:
        raise
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BadMessage(f"not a perception object list: {type(exc).__name__}: {exc}") from None
