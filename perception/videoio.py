"""Writing videos (overlays, test fixtures) with PyAV; reading lives in :mod:`perception.sources`.

perception depends on no other package of ours (``common`` aside), so it carries its own few lines
of encoder. The file is committed atomically (``common.atomic``): a crash or a bad frame never
leaves a truncated video under the final name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np

from common.atomic import atomic_path
from perception.frames import even_size, to_rgb8


def write_video(path: str | Path, frames: Iterable[np.ndarray], fps: float = 30.0,
                codec: str = "libx264", crf: int = 20, faststart: bool = False) -> int:
    """Encode RGB frames to ``path``; returns the number written.

    ``faststart`` puts the index at the front of an mp4, so a file cut short still opens (the
    truncated-video tests rely on that; it costs a second pass over the file).
    """
    path = Path(path)
    # The temporary file keeps the final suffix: PyAV picks the container from it.
    with atomic_path(path, suffix=path.suffix) as tmp:
        return _encode(tmp, frames, fps, codec, crf, faststart)


def _encode(path: Path, frames: Iterable[np.ndarray], fps: float, codec: str, crf: int,
            faststart: bool) -> int:
    import av
    from fractions import Fraction

    opts = {"movflags": "+faststart"} if faststart else {}
    n = 0
    with av.open(str(path), "w", options=opts) as c:
        stream = None
        for img in frames:
            img = even_size(to_rgb8(img))
            if stream is None:
                stream = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
                stream.height, stream.width = img.shape[:2]
                stream.pix_fmt = "yuv420p"
                if codec == "libx264":
                    stream.options = {"crf": str(crf), "preset": "veryfast"}
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
            n += 1
        if stream is not None:
            for packet in stream.encode():
                c.mux(packet)
    return n
