"""Frame sources: one iterator protocol for video files, arrays, sim envs and rosbag2 recordings.

Every source is an iterable of :class:`~perception.frames.Frame` with increasing ``t`` (seconds
from the start of the stream) and ``index``; consumers never care where frames come from. The live
ROS topic source lives in ``ros_nodes`` (it needs rclpy); here we read recordings.

Video files decode in a background thread into a bounded queue, so decoding overlaps with whatever
the consumer does and a slow consumer never makes memory grow. A corrupt or truncated file yields
the frames that decode and counts the rest in ``source.failed``.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, NamedTuple, Protocol, runtime_checkable

import numpy as np

from perception.errors import PerceptionError
from perception.frames import Frame, to_rgb8


@runtime_checkable
class FrameSource(Protocol):
    """Anything iterable over :class:`Frame` objects (timestamped, RGB uint8)."""

    def __iter__(self) -> Iterator[Frame]: ...


# --------------------------------------------------------------------------- in-memory arrays
class ArraySource:
    """Frames from an array ``[T, H, W(, C)]`` or a list of images, at ``fps``."""

    def __init__(self, frames: Any, fps: float = 30.0, times: Any = None,
                 meta: dict[str, Any] | None = None) -> None:
        if len(frames) == 0:
            raise PerceptionError("the frame array is empty")
        self.frames = frames
        self.fps = float(fps)
        self.times = None if times is None else np.asarray(times, dtype=np.float64)
        self.meta = meta or {}

    def __len__(self) -> int:
        return len(self.frames)

    def __iter__(self) -> Iterator[Frame]:
        for i, img in enumerate(self.frames):
            t = float(self.times[i]) if self.times is not None else i / self.fps
            yield Frame(to_rgb8(img), t, i, dict(self.meta))


# --------------------------------------------------------------------------- video files
_END = object()


class VideoFileSource:
    """Decode a video file with PyAV in a background thread.

    ``max_queue`` bounds the frames decoded ahead of the consumer. After iteration,
    ``decoded`` is the number of frames yielded and ``failed`` the number that could not be
    decoded (corrupt packets, plus frames the container promised but a truncated file lacked).
    ``stride`` keeps every n-th frame (decoding still touches all of them: codecs need it).
    """

    def __init__(self, path: str | Path, max_queue: int = 32, stride: int = 1,
                 max_frames: int | None = None, threads: int = 0) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise PerceptionError(f"video file not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise PerceptionError(f"video file is empty: {self.path}")
        self.max_queue = max(1, int(max_queue))
        self.stride = max(1, int(stride))
        self.max_frames = max_frames
        self.threads = int(threads)  # codec threads; 0 lets FFmpeg choose (benchmarks pin 1)
        self.decoded = 0
        self.failed = 0
        self.fps, self.expected_frames = self._probe()

    def _open(self):
        import av

        try:
            return av.open(str(self.path))
        except Exception as exc:  # noqa: BLE001 - FFmpeg errors of every kind mean "unreadable"
            raise PerceptionError(f"cannot open video {self.path}: {exc}") from exc

    def _probe(self) -> tuple[float, int]:
        with self._open() as c:
            if not c.streams.video:
                raise PerceptionError(f"no video stream in {self.path}")
            s = c.streams.video[0]
            rate = s.average_rate or s.guessed_rate or 30
            return float(rate), int(s.frames or 0)

    def _decode(self, out: "queue.Queue[Any]", stop: threading.Event) -> None:
        import av

        failed, decoded_all, t0 = 0, 0, None
        try:
            with self._open() as c:
                stream = c.streams.video[0]
                if self.threads == 1:
                    stream.thread_count = 1
                else:
                    stream.thread_type = "AUTO"
                    stream.thread_count = self.threads
                packets = c.demux(stream)
                while not stop.is_set():
                    try:
                        packet = next(packets)
                    except StopIteration:
                        break
                    except av.error.FFmpegError:
                        failed += 1  # a broken container: stop here, keep what we have
                        break
                    try:
                        frames = packet.decode()
                    except av.error.FFmpegError:
                        failed += 1
                        continue
                    for vf in frames:
                        if vf.time is not None and t0 is None:
                            t0 = vf.time
                        t = (vf.time - t0) if vf.time is not None else decoded_all / self.fps
                        idx = decoded_all
                        decoded_all += 1
                        if idx % self.stride:
                            continue
                        img = vf.to_ndarray(format="rgb24")
                        out.put(Frame(img, float(t), idx, {"source": str(self.path)}))
        except PerceptionError as exc:
            out.put(exc)
        finally:
            # Frames the container promised but we never decoded also count as failed.
            missing = max(0, self.expected_frames - decoded_all) if self.expected_frames else 0
            self.failed = max(failed, missing)
            out.put(_END)

    def __iter__(self) -> Iterator[Frame]:
        self.decoded, self.failed = 0, 0
        q: "queue.Queue[Any]" = queue.Queue(maxsize=self.max_queue)
        stop = threading.Event()
        worker = threading.Thread(target=self._decode, args=(q, stop), daemon=True)
        worker.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise item
                self.decoded += 1
                yield item
                if self.max_frames is not None and self.decoded >= self.max_frames:
                    break
        finally:
            stop.set()
            while worker.is_alive():  # drain so a blocked put() can see the stop flag
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
        if self.decoded == 0:
            raise PerceptionError(f"no frame could be decoded from {self.path} "
                                  f"({self.failed} failed)")


def read_video(path: str | Path, stride: int = 1,
               max_frames: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Convenience: ``(frames uint8[T, H, W, 3], times[T], failed)`` of a whole (short) file."""
    src = VideoFileSource(path, stride=stride, max_frames=max_frames)
    frames = list(src)
    return (np.stack([f.image for f in frames]), np.array([f.t for f in frames]), src.failed)


# --------------------------------------------------------------------------- sim / gym envs
class EnvSource:
    """Frames from anything with ``reset()``, ``step(action)`` and ``render()`` (Gymnasium-style).

    Actions come from ``policy(obs)`` when given, otherwise the env's ``action_space.sample()``.
    An episode that ends is reset and the stream goes on, until ``max_frames``. Time advances by
    ``1 / fps`` per step (``fps`` defaults to ``env.metadata['render_fps']``).
    """

    def __init__(self, env: Any, max_frames: int = 100, policy: Callable[[Any], Any] | None = None,
                 fps: float | None = None, seed: int | None = 0) -> None:
        for attr in ("reset", "step", "render"):
            if not hasattr(env, attr):
                raise PerceptionError(f"env has no {attr}(): not a frame source")
        self.env, self.max_frames, self.policy, self.seed = env, int(max_frames), policy, seed
        meta = getattr(env, "metadata", None) or {}
        self.fps = float(fps or meta.get("render_fps") or 30.0)

    def __iter__(self) -> Iterator[Frame]:
        obs, _ = self.env.reset(seed=self.seed)
        episode = 0
        for i in range(self.max_frames):
            img = self.env.render()
            yield Frame(to_rgb8(img), i / self.fps, i, {"episode": episode})
            action = self.policy(obs) if self.policy else self.env.action_space.sample()
            obs, _, terminated, truncated, _ = self.env.step(action)
            if terminated or truncated:
                episode += 1
                obs, _ = self.env.reset()


# --------------------------------------------------------------------------- rosbag2
def image_msg_to_array(msg: Any) -> np.ndarray:
    """A ``sensor_msgs/Image`` to ``uint8[H, W, 3]`` RGB (depth encodings to grey for viewing)."""
    enc = msg.encoding.lower()
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    data = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data,
                         dtype=np.uint8)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1,
                "8uc3": 3, "mono16": 2, "16uc1": 2, "32fc1": 4}
    if enc not in channels:
        raise PerceptionError(f"unsupported image encoding {msg.encoding!r}")
    rows = data[: h * step].reshape(h, step)[:, : w * channels[enc]]
    if enc in ("mono16", "16uc1"):
        dt = np.dtype(">u2" if msg.is_bigendian else "<u2")
        img = rows.copy().view(dt).reshape(h, w).astype(np.uint16)
    elif enc == "32fc1":
        dt = np.dtype(">f4" if msg.is_bigendian else "<f4")
        d = rows.copy().view(dt).reshape(h, w)
        img = np.nan_to_num(d / max(float(np.nanmax(d)), 1e-6))
    else:
        img = rows.reshape(h, w, -1)
        if enc.startswith("bgr"):
            img = img[:, :, [2, 1, 0] + ([3] if img.shape[2] == 4 else [])]
    return to_rgb8(img)


class RosbagSource:
    """``sensor_msgs/Image`` messages of one topic in a rosbag2 (or ROS 1) recording.

    Time is the message's header stamp relative to the first message (the bag's receive time
    when the stamp is zero).
    """

    def __init__(self, path: str | Path, topic: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise PerceptionError(f"rosbag not found: {self.path}")
        self.topic = topic

    def __iter__(self) -> Iterator[Frame]:
        from rosbags.highlevel import AnyReader
        from rosbags.typesys import Stores, get_typestore

        store = get_typestore(Stores.ROS2_HUMBLE)
        with AnyReader([self.path], default_typestore=store) as reader:
            conns = [c for c in reader.connections if c.msgtype == "sensor_msgs/msg/Image"
                     and (self.topic is None or c.topic == self.topic)]
            if not conns:
                topics = sorted({c.topic for c in reader.connections})
                raise PerceptionError(f"no sensor_msgs/Image topic {self.topic or ''} in "
                                      f"{self.path}; topics: {topics}")
            t0 = None
            for i, (conn, stamp_ns, raw) in enumerate(reader.messages(connections=conns)):
                msg = reader.deserialize(raw, conn.msgtype)
                s = msg.header.stamp
                t_ns = s.sec * 1_000_000_000 + s.nanosec or stamp_ns
                t0 = t_ns if t0 is None else t0
                yield Frame(image_msg_to_array(msg), (t_ns - t0) / 1e9, i,
                            {"topic": conn.topic, "frame_id": msg.header.frame_id})


class BagMessage(NamedTuple):
    topic: str
    msgtype: str  # "sensor_msgs/msg/Image"
    time_ns: int  # when the recorder received it (the bag's own clock)
    raw: bytes  # the CDR bytes as recorded, what rclpy's deserialize_message reads


class RosbagMessages:
    """Every message of a rosbag2 recording (or of ``topics``), in recorded order, still serialised.

    For replaying a recording as it was (``ros_nodes.camera_node``): RGB, depth, camera_info and
    pose topics alike, each message as the bytes that were on the wire, so a replay needs no
    type-by-type conversion. rosbag2 only (CDR); a ROS 1 ``.bag`` is read as images by
    :class:`RosbagSource`, or converted with ``rosbags-convert``.
    """

    def __init__(self, path: str | Path, topics: list[str] | None = None) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise PerceptionError(f"rosbag not found: {self.path}")
        if self.path.is_file() and self.path.suffix == ".bag":
            raise PerceptionError(f"{self.path} is a ROS 1 bag: convert it with `rosbags-convert --src "
                                  f"{self.path}` to replay it as rosbag2")
        reader = self._open()
        try:
            recorded = {c.topic: c.msgtype for c in reader.connections}
        finally:
            reader.close()
        wanted = [_absolute(t) for t in topics or []]
        missing = sorted(set(wanted) - set(recorded))
        if missing:
            raise PerceptionError(f"{self.path} has no topic {', '.join(missing)}; it has {sorted(recorded)}")
        self.topics = {t: m for t, m in recorded.items() if not wanted or t in wanted}
        if not self.topics:
            raise PerceptionError(f"{self.path} holds no topics")

    def _open(self):
        """The opened reader (a replay that loops reads the bag again from the start)."""
        from rosbags.rosbag2 import Reader, ReaderError

        try:
            reader = Reader(self.path)
            reader.open()
        except (ReaderError, OSError) as exc:
            raise PerceptionError(f"cannot read the rosbag2 recording {self.path}: {exc}") from None
        return reader

    def __iter__(self) -> Iterator[BagMessage]:
        reader = self._open()
        try:
            conns = [c for c in reader.connections if c.topic in self.topics]
            for conn, time_ns, raw in reader.messages(connections=conns):
                yield BagMessage(conn.topic, conn.msgtype, int(time_ns), bytes(raw))
        finally:
            reader.close()


def _absolute(topic: str) -> str:
    return topic if topic.startswith("/") else "/" + topic


def open_source(spec: str | Path, **kwargs: Any) -> FrameSource:
    """A source from a path: a rosbag2 directory / ``.mcap`` / ``.db3`` / ``.bag``, else a video."""
    p = Path(spec)
    if p.is_dir() or p.suffix in (".mcap", ".db3", ".bag"):
        return RosbagSource(p, **kwargs)
    return VideoFileSource(p, **kwargs)
