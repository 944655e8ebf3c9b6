"""The one sampler interface: ``select(frames_or_features, budget, query=None) -> sorted indices``.

Input is any of: a list of :class:`~perception.frames.Frame`, an image array ``[T, H, W, 3]``,
a list of images, or precomputed per-frame features ``[T, D]``. Output is a sorted ``int64``
array of ``budget`` distinct frame indices. A budget larger than the stream is a user error:
silently returning fewer frames would hide a bug in the caller.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import cv2
import numpy as np

from perception.errors import PerceptionError
from perception.frames import Frame

# Motion is measured on thumbnails this wide (height keeps the aspect): big enough to see a
# billiard ball move, small enough that 640x480 sampling stays far above 300 frames/s.
THUMB_WIDTH = 80
# Grey levels of thumbnail difference treated as noise (sensor noise, codec flicker): each pixel's
# |difference| is soft-thresholded by this, so a still but noisy video has near-zero motion.
NOISE_LEVEL = 4.0


def check_budget(n: int, budget: int) -> int:
    budget = int(budget)
    if budget < 1:
        raise PerceptionError(f"budget must be >= 1, got {budget}")
    if n == 0:
        raise PerceptionError("cannot sample from an empty stream")
    if budget > n:
        raise PerceptionError(f"budget {budget} is larger than the stream ({n} frames)")
    return budget


def as_images(x: Any) -> Sequence[np.ndarray] | np.ndarray:
    """Frames -> images; arrays and image lists pass through."""
    if isinstance(x, np.ndarray):
        return x
    if len(x) and isinstance(x[0], Frame):
        return [f.image for f in x]
    return x


def is_features(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.ndim == 2


def thumbnail_gray(image: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """Downscale first (INTER_AREA averages, which also denoises), then grey, as float32."""
    h, w = image.shape[:2]
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    if small.ndim == 3:
        small = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    return small.astype(np.float32)


def motion_signal(x: Any, width: int = THUMB_WIDTH, noise: float = NOISE_LEVEL) -> np.ndarray:
    """Per-frame motion ``m[T]``: mean soft-thresholded absolute difference to the previous frame.

    On images the difference is taken between downscaled grey thumbnails (``max(|d| - noise, 0)``
    per pixel); on features ``[T, D]``
    it is the L2 distance between consecutive rows (MGSampler's two variants). ``m[0] = m[1]``.
    """
    if is_features(x):
        f = np.asarray(x, np.float32)
        m = np.linalg.norm(np.diff(f, axis=0), axis=1) if len(f) > 1 else np.zeros(0, np.float32)
    else:
        imgs = as_images(x)
        m = np.empty(max(len(imgs) - 1, 0), np.float32)
        prev = None
        for i, img in enumerate(imgs):
            g = thumbnail_gray(img, width)
            if prev is not None:
                d = cv2.absdiff(g, prev)
                m[i - 1] = np.maximum(d - noise, 0.0).mean()
            prev = g
    if len(m) == 0:
        return np.zeros(1, np.float32)
    return np.concatenate([m[:1], m]).astype(np.float32)


def unique_sorted(idx: np.ndarray, n: int) -> np.ndarray:
    """Make ``idx`` distinct (moving collisions to the nearest free index) and sort it."""
    idx = np.clip(np.asarray(idx, np.int64), 0, n - 1)
    taken = np.zeros(n, bool)
    out = []
    for i in idx:
        if not taken[i]:
            taken[i] = True
            out.append(i)
            continue
        for d in range(1, n):
            for j in (i + d, i - d):
                if 0 <= j < n and not taken[j]:
                    taken[j] = True
                    out.append(j)
                    break
            else:
                continue
            break
    return np.sort(np.array(out, np.int64))


def inverse_cdf_pick(weights: np.ndarray, budget: int, rng: np.random.Generator | None = None
                     ) -> np.ndarray:
    """Split the cumulative distribution of ``weights`` into ``budget`` equal-mass segments and
    pick one frame per segment: the one at the segment's centre quantile, or (``rng`` given) at a
    random quantile inside it (MGSampler's training-time jitter)."""
    w = np.asarray(weights, np.float64)
    n = len(w)
    cdf = np.cumsum(w)
    cdf = cdf / cdf[-1]
    # frame i covers the mass interval (cdf[i-1], cdf[i]]; a quantile q falls into the first i
    # with cdf[i] >= q.
    u = (np.arange(budget) + (rng.random(budget) if rng is not None else 0.5)) / budget
    idx = np.searchsorted(cdf, u, side="left")
    return unique_sorted(np.minimum(idx, n - 1), n)


class Sampler(ABC):
    """Chooses ``budget`` keyframes out of a stream. Subclasses set ``name``."""

    name: str = "base"

    @abstractmethod
    def select(self, frames_or_features: Any, budget: int, query: Any = None) -> np.ndarray:
        """Sorted, distinct indices of the chosen frames (``len == budget``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
