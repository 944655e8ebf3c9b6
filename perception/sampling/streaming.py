"""Keyframes of an unbounded stream in fixed memory: an online equal-motion segmentation.

The stream is cut into at most ``K`` segments, each holding its motion mass and one
representative frame. Every new frame opens a segment; when there are ``K + 1``, the adjacent
pair with the least combined motion merges (its representative is the one from the heavier
half). Still stretches collapse into few segments, busy ones keep many: the same goal as
MGSampler's equal-motion split, computed in one pass with ``O(K)`` memory whatever the length.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from perception.frames import Frame
from perception.sampling.base import (NOISE_LEVEL, THUMB_WIDTH, Sampler, as_images, check_budget, is_features,
                                      thumbnail_gray)


@dataclass
class _Segment:
    start: int
    mass: float
    rep: int  # index of the representative frame
    rep_mass: float  # motion of the representative itself: ties go to the busier frame
    frame: Any = None  # the kept Frame (or None when only indices are wanted)


@dataclass
class StreamingKeyframes:
    """Online state: ``push`` frames one by one, read ``keyframes()`` at any time."""

    capacity: int = 16  # K: the most keyframes (and frames) ever held
    width: int = THUMB_WIDTH  # thumbnail width for motion
    floor: float = 0.05  # motion added per frame, relative to the running mean: still time counts
    keep_frames: bool = True  # hold the frames themselves (False: indices only)
    _segments: list[_Segment] = field(default_factory=list)
    _prev: np.ndarray | None = None
    _mean: float = 0.0
    _n: int = 0

    def push(self, frame: Frame | np.ndarray, feature: np.ndarray | None = None) -> None:
        if feature is not None:
            g = np.asarray(feature, np.float32)
            m = float(np.linalg.norm(g - self._prev)) if self._prev is not None else 0.0
        else:
            img = frame.image if isinstance(frame, Frame) else frame
            g = thumbnail_gray(img, self.width)
            m = (float(np.maximum(np.abs(g - self._prev) - NOISE_LEVEL, 0.0).mean())
                 if self._prev is not None else 0.0)
        self._prev = g
        self._n += 1
        self._mean += (m - self._mean) / self._n
        mass = m + self.floor * (self._mean + 1e-6)
        i = self._n - 1
        self._segments.append(_Segment(i, mass, i, m, frame if self.keep_frames else None))
        if len(self._segments) > self.capacity:
            self._merge_lightest_pair()

    def _merge_lightest_pair(self) -> None:
        s = self._segments
        masses = np.array([seg.mass for seg in s])
        j = int(np.argmin(masses[:-1] + masses[1:]))
        a, b = s[j], s[j + 1]
        keep = a if (a.mass, a.rep_mass) >= (b.mass, b.rep_mass) else b
        s[j] = _Segment(a.start, a.mass + b.mass, keep.rep, keep.rep_mass, keep.frame)
        del s[j + 1]

    def keyframes(self) -> list[Any]:
        return [seg.frame for seg in self._segments]

    def indices(self) -> np.ndarray:
        return np.array([seg.rep for seg in self._segments], np.int64)

    def __len__(self) -> int:
        return len(self._segments)


@dataclass
class StreamingSampler(Sampler):
    """The offline face of :class:`StreamingKeyframes` (one pass, ``budget`` = capacity)."""

    width: int = THUMB_WIDTH  # thumbnail width for motion
    floor: float = 0.05  # see StreamingKeyframes

    name = "streaming"

    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        budget = check_budget(len(frames_or_features), budget)
        state = StreamingKeyframes(budget, self.width, self.floor, keep_frames=False)
        if is_features(frames_or_features):
            for f in frames_or_features:
                state.push(None, feature=f)
        else:
            for img in as_images(frames_or_features):
                state.push(img)
        return np.sort(state.indices())
