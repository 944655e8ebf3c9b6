"""A bounded window of recent frames: by count and by age, so memory never grows without limit."""

from __future__ import annotations

from collections import deque
from typing import Iterator

from perception.frames import Frame


class FrameBuffer:
    """Keeps at most ``max_frames`` frames, none older than ``max_age_s`` behind the newest one.

    Age is measured in stream time (``Frame.t``), not wall-clock time, so replaying a file gives
    the same window as watching it live. A frame whose timestamp goes backwards (a restarted
    stream) clears the buffer rather than leaving stale frames in the window.
    """

    def __init__(self, max_frames: int = 256, max_age_s: float | None = 30.0) -> None:
        if max_frames < 1:
            raise ValueError("max_frames must be >= 1")
        if max_age_s is not None and max_age_s <= 0:
            raise ValueError("max_age_s must be > 0 or None")
        self.max_frames = int(max_frames)
        self.max_age_s = max_age_s
        self._frames: deque[Frame] = deque(maxlen=self.max_frames)
        self.dropped = 0  # frames evicted so far (count or age): how much history was lost

    def push(self, frame: Frame) -> None:
        if self._frames and frame.t < self._frames[-1].t:
            self.dropped += len(self._frames)
            self._frames.clear()
        if len(self._frames) == self.max_frames:
            self.dropped += 1
        self._frames.append(frame)
        self._evict_old(frame.t)

    def _evict_old(self, now: float) -> None:
        if self.max_age_s is None:
            return
        while self._frames and now - self._frames[0].t > self.max_age_s:
            self._frames.popleft()
            self.dropped += 1

    def extend(self, frames) -> None:
        for f in frames:
            self.push(f)

    def frames(self) -> list[Frame]:
        return list(self._frames)

    def latest(self) -> Frame | None:
        return self._frames[-1] if self._frames else None

    def clear(self) -> None:
        self._frames.clear()

    def __len__(self) -> int:
        return len(self._frames)

    def __iter__(self) -> Iterator[Frame]:
        return iter(list(self._frames))
