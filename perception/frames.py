"""The unit every source yields and every consumer takes: one RGB image with its time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Frame:
    """One camera image at one time.

    ``image`` is always ``uint8[H, W, 3]`` RGB (sources convert grey, RGBA and odd layouts so
    nothing downstream has to), ``t`` is seconds since the start of the stream, ``index`` counts
    frames from 0, and ``meta`` carries what the source knows besides (depth, camera, topic, ...).
    """

    image: np.ndarray
    t: float
    index: int
    meta: dict[str, Any] = field(default_factory=dict)


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """Any common image layout to contiguous ``uint8[H, W, 3]`` RGB.

    Accepts grey ``[H, W]`` or ``[H, W, 1]``, RGBA ``[H, W, 4]`` (alpha dropped), float images in
    ``[0, 1]`` and 16-bit images (scaled down). Odd widths/heights are kept as they are: only the
    encoder for a video file needs even sizes, and :func:`even_size` handles that.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ValueError(f"expected an image [H, W], [H, W, 1|3|4], got shape {a.shape}")
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8)
        elif a.dtype == np.uint16:
            a = (a >> 8).astype(np.uint8)
        else:
            a = np.clip(a, 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    return np.ascontiguousarray(a)


def even_size(image: np.ndarray) -> np.ndarray:
    """Crop one row/column if needed: yuv420p video needs even width and height."""
    h, w = image.shape[:2]
    return image[: h - h % 2, : w - w % 2]
