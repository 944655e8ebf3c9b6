"""MP4 video in and out through PyAV: frames are ``uint8[H, W, 3]`` RGB, as everywhere in the stack.

Why a module of our own rather than ``imageio``: we need three guarantees the datasets and shot
videos rely on.

* Crash safety: :class:`VideoWriter` encodes into a temporary sibling (``common.atomic``) and
  renames it onto the final name only when the file is complete, so a crash never leaves a
  truncated mp4 under a name a reader trusts. A writer that leaves its ``with`` block on an
  exception deletes its temporary file. ``sync=True`` also fsyncs the file and its folder.
* Exact frame counts: one encoded frame per ``write`` (constant frame rate, pts = frame number), so
  ``read_mp4`` returns exactly as many frames as were written.
* Any size: yuv420p needs even width and height; odd frames are padded by repeating the last
  row/column, the true size is stored in the container's ``comment`` tag and the reader crops back.
* Colour where it matters: ``pix_fmt="yuv444p"`` keeps chroma at full resolution. Datasets use it:
  at 64 px a cube is 3-5 pixels wide, and 4:2:0 subsampling smears its colour into the table
  (mean error ~22/255 on object pixels against ~2 with yuv444p at crf 10), so a policy trained on
  decoded frames would learn colours it never sees live. Rollout videos for people stay yuv420p,
  which every player handles.

H.264 (libx264) is used when the local FFmpeg has it, otherwise MPEG-4 part 2, which every build has.
"""

from __future__ import annotations

import errno
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from common.atomic import replace, temp_sibling
from sim.errors import SimError

PIX_FMTS = ("yuv420p", "yuv444p")
_SIZE_TAG = "embodied-size="  # comment tag "embodied-size=WxH" records the unpadded frame size


def _reason(exc: OSError) -> str:
    return "disk full" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else (exc.strerror or str(exc))


def pick_codec() -> str:
    """The best available encoder: libx264 (small, sharp), else mpeg4 (always built in)."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def effective_pix_fmt(pix_fmt: str, codec: str | None = None) -> str:
    """The pixel format ``codec`` (default: :func:`pick_codec`) will really write for ``pix_fmt``.

    MPEG-4 part 2, the fallback codec, has no 4:4:4 profile, so it always writes yuv420p.
    """
    if pix_fmt not in PIX_FMTS:
        raise SimError(f"unknown pixel format {pix_fmt!r}; known: {', '.join(PIX_FMTS)}")
    return pix_fmt if (codec or pick_codec()) == "libx264" else "yuv420p"


class VideoWriter:
    """Write RGB frames to an mp4, atomically (temporary file renamed on close).

    >>> with VideoWriter("out.mp4", fps=20) as w:
    ...     for frame in frames:
    ...         w.write(frame)
    """

    def __init__(self, path: str | Path, fps: float, crf: int = 18, codec: str | None = None,
                 pix_fmt: str = "yuv420p", sync: bool = False) -> None:
        # crf 18 is visually lossless for x264; datasets want sharp frames more than small files.
        self.path = Path(path)
        self.fps = fps
        self.crf = crf
        self.codec = codec or pick_codec()
        self.pix_fmt = effective_pix_fmt(pix_fmt, self.codec)
        self.sync = sync  # fsync the finished file and its folder (datasets: survive power cuts)
        self.tmp_path: Path | None = None  # created with the first frame
        self.frames_written = 0
        self._container: av.container.OutputContainer | None = None
        self._stream = None
        self._size: tuple[int, int] | None = None  # (height, width) of the frames given to us
        self._closed = False

    def _open(self, height: int, width: int) -> None:
        try:
            self.tmp_path = temp_sibling(self.path)
            self._container = av.open(str(self.tmp_path), mode="w", format="mp4")
        except OSError as exc:
            if self.tmp_path is not None:
                self.tmp_path.unlink(missing_ok=True)
            raise SimError(f"cannot write video {self.path}: {_reason(exc)}") from exc
        self._container.metadata["comment"] = f"{_SIZE_TAG}{width}x{height}"
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(self.codec, rate=rate)
        stream.width = width + (width % 2)
        stream.height = height + (height % 2)
        stream.pix_fmt = self.pix_fmt
        stream.codec_context.time_base = 1 / rate
        if self.codec == "libx264":
            # No B-frames keeps decode order == presentation order and files seekable per frame.
            stream.options = {"crf": str(self.crf), "preset": "veryfast", "bf": "0"}
        else:
            # mpeg4: constant quantiser 2 (near-lossless); global_quality is in lambda units (x118).
            stream.options = {"flags": "+qscale", "global_quality": str(2 * 118)}
        self._stream = stream
        self._size = (height, width)

    def write(self, frame: np.ndarray) -> None:
        """Append one ``uint8[H, W, 3]`` RGB frame; all frames must share the first frame's size."""
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise SimError(f"video frames must be uint8[H, W, 3], got {frame.dtype}{list(frame.shape)}")
        if self._closed:
            raise SimError(f"video writer for {self.path} is already closed")
        if self._container is None:
            self._open(frame.shape[0], frame.shape[1])
        if frame.shape[:2] != self._size:
            raise SimError(f"frame size {frame.shape[:2]} differs from the video's {self._size}")
        h, w = self._size
        if h % 2 or w % 2:  # pad to even by repeating the edge; the reader crops it away
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames_written
        self._encode(vf)
        self.frames_written += 1

    def _encode(self, vf: av.VideoFrame | None) -> None:
        try:
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        except OSError as exc:  # e.g. ENOSPC while muxing
            self.abort()
            raise SimError(f"cannot write video {self.path}: {_reason(exc)}") from exc

    def close(self) -> Path:
        """Flush the encoder and rename the finished file onto ``path``; returns ``path``."""
        if self._closed:
            return self.path
        if self._container is None:
            self._closed = True
            raise SimError(f"no frames were written to {self.path}")
        self._encode(None)
        try:
            self._container.close()
            replace(self.tmp_path, self.path, sync=self.sync)
        except OSError as exc:
            self.abort()
            raise SimError(f"cannot write video {self.path}: {_reason(exc)}") from exc
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Drop the partial file: nothing appears under the final name."""
        self._closed = True
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # noqa: BLE001 - best effort on an already failing path
                pass
        if self.tmp_path is not None:
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: float, crf: int = 18,
              pix_fmt: str = "yuv420p") -> Path:
    """Write all ``frames`` to ``path`` atomically and return the path."""
    with VideoWriter(path, fps=fps, crf=crf, pix_fmt=pix_fmt) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def _open_for_reading(path: str | Path) -> av.container.InputContainer:
    path = Path(path)
    if not path.is_file():
        raise SimError(f"video not found: {path}")
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise SimError(f"cannot read video {path}: {exc}") from exc


def _true_size(container) -> tuple[int, int] | None:
    comment = container.metadata.get("comment", "")
    if comment.startswith(_SIZE_TAG):
        w, h = comment[len(_SIZE_TAG):].split("x")
        return int(h), int(w)
    return None


def iter_mp4(path: str | Path) -> Iterator[np.ndarray]:
    """Yield the frames of ``path`` one by one as ``uint8[H, W, 3]`` RGB (memory stays flat)."""
    container = _open_for_reading(path)
    try:
        size = _true_size(container)
        try:
            for frame in container.decode(video=0):
                rgb = frame.to_ndarray(format="rgb24")
                if size is not None:
                    rgb = rgb[: size[0], : size[1]]
                yield rgb
        except av.error.FFmpegError as exc:
            raise SimError(f"corrupt video {path}: {exc}") from exc
    finally:
        container.close()


def read_mp4(path: str | Path) -> np.ndarray:
    """All frames of ``path`` as ``uint8[T, H, W, 3]``."""
    frames = list(iter_mp4(path))
    if not frames:
        raise SimError(f"video {path} has no frames")
    return np.stack(frames)


def video_info(path: str | Path) -> dict:
    """Frame count, fps, width and height from the container header (no decoding)."""
    container = _open_for_reading(path)
    try:
        stream = container.streams.video[0]
        h, w = _true_size(container) or (stream.height, stream.width)
        return {"frames": int(stream.frames), "fps": float(stream.average_rate or 0),
                "width": w, "height": h, "codec": stream.codec_context.name}
    finally:
        container.close()


def decode_window(path: str | Path, start_s: float, end_s: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Presentation times (s) and ``uint8[H, W, 3]`` frames of ``path`` shown in ``[start_s, end_s]``.

    For files that hold many episodes one after another (LeRobot v3 packs them per camera): seeks
    to a keyframe before ``start_s`` and decodes forward, dropping the frames before the window, so
    the frames returned are exactly those timed inside it whatever the codec (AV1, H.264, HEVC...)
    or keyframe interval. Times come from each frame's own timestamp, never from counting frames
    after the seek. Where the seek lands too late (open-GOP HEVC drops the frames that lead its
    keyframes), it seeks further back and decodes again.
    """
    margin = 0.0
    while True:
        target = start_s - margin
        times, frames, first, period = _decode_from(path, target, start_s, end_s)
        # A frame was skipped only if the first one decoded comes more than a frame period after
        # start_s (at a constant rate, the next frame after start_s is at most one period later).
        if first is None or first <= start_s + period + 1e-6 or target <= 0:
            return np.asarray(times, dtype=np.float64), frames
        margin = max(2 * margin, 1.0)


def _decode_from(path: str | Path, seek_s: float, start_s: float, end_s: float):
    """Seek to the keyframe at or before ``seek_s``, decode to ``end_s``; also the first time seen
    after the seek and the stream's frame period."""
    container = _open_for_reading(path)
    try:
        stream = container.streams.video[0]
        period = 1.0 / float(stream.average_rate) if stream.average_rate else 0.0
        size = _true_size(container)
        if seek_s > 0 and stream.time_base:
            try:
                container.seek(int(seek_s / stream.time_base), stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:  # unseekable file: decode from the start instead
                container.seek(0)
        times, frames, first = [], [], None
        try:
            for frame in container.decode(stream):
                if frame.time is None:
                    raise SimError(f"video {path} has frames without timestamps")
                first = frame.time if first is None else first
                if frame.time < start_s:
                    continue
                if frame.time > end_s:
                    break
                rgb = frame.to_ndarray(format="rgb24")
                times.append(float(frame.time))
                frames.append(rgb[: size[0], : size[1]] if size is not None else rgb)
        except av.error.FFmpegError as exc:
            raise SimError(f"corrupt video {path}: {exc}") from exc
        return times, frames, first, period
    finally:
        container.close()
