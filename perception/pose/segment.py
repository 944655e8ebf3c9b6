"""Segmentation: which pixels belong to the object. Colour (and depth) based by default, pluggable.

A segmenter is any callable ``(image, depth | None) -> bool[H, W]``; the estimator takes one as
an argument, so a learned segmenter can replace the colour rule without touching the rest.

The default rule for a known-coloured object compares each pixel's chromaticity (colour with the
brightness divided out, so shading and light fall-off matter less) and brightness with the
expected colour, keeps the largest connected blob (or, for a thin cue, the blobs lying along the
largest one's line) and, when depth is given, drops pixels without a valid depth.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, Protocol

import cv2
import numpy as np


class Segmenter(Protocol):
    def __call__(self, image: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray: ...


def chroma_distance(image: np.ndarray, rgb: tuple[float, float, float]) -> tuple[np.ndarray,
                                                                                 np.ndarray]:
    """Per-pixel chromaticity distance to ``rgb`` and brightness ratio to it."""
    img = image.astype(np.float32) + 1.0
    s = img.sum(2, keepdims=True)
    ref = np.asarray(rgb, np.float32) * 255.0 + 1.0
    dist = np.linalg.norm(img / s - ref / ref.sum(), axis=2)
    return dist, s[..., 0] / ref.sum()


def _toward_white(image: np.ndarray, rgb, tol: float) -> np.ndarray:
    """Pixels whose chromaticity lies near the segment from ``rgb``'s to white's (specular
    highlights on a glossy object mix its colour with the light's)."""
    img = image.astype(np.float32) + 1.0
    c = img / img.sum(2, keepdims=True)
    ref = np.asarray(rgb, np.float32) * 255.0 + 1.0
    a, b = ref / ref.sum(), np.full(3, 1 / 3, np.float32)
    ab = b - a
    t = np.clip(((c - a) @ ab) / (ab @ ab), 0.0, 0.85)  # not pure white: white balls exist
    return np.linalg.norm(c - (a + t[..., None] * ab), axis=2) < tol


@dataclass
class ColorSegmenter:
    """Pixels whose colour matches ``rgb`` (chromaticity within ``tol``, brightness in range)."""

    rgb: tuple[float, float, float]
    tol: float = 0.05  # chromaticity distance: shading keeps chroma within ~0.03 for matte colours
    min_brightness: float = 0.35  # relative to the model colour: deep shadow is not the object
    max_brightness: float = 1.6  # specular highlights saturate towards white
    elongated: bool = False  # thin objects: keep blobs along the main blob's line (occlusion gaps)
    min_pixels: int = 8  # fewer means "not visible"
    highlights: bool = False  # also take bright pixels whose colour lies between ours and white

    def __call__(self, image: np.ndarray, depth: np.ndarray | None = None) -> np.ndarray:
        # Find where to look on a 4x smaller picture first, then classify full-resolution pixels
        # only inside that box: the colour maths on all 300k pixels of a 640x480 frame is what
        # would otherwise dominate a tracking step.
        H, W = image.shape[:2]
        y0, y1, x0, x1 = 0, H, 0, W
        if H * W > 50_000:
            small = cv2.resize(image, (W // 4, H // 4), interpolation=cv2.INTER_AREA)
            d, b = chroma_distance(small, self.rgb)
            coarse = (d < 2 * self.tol) & (b > 0.5 * self.min_brightness)
            ys, xs = np.nonzero(coarse)
            if len(xs) == 0:
                return np.zeros((H, W), bool)
            y0, y1 = max(4 * ys.min() - 8, 0), min(4 * ys.max() + 12, H)
            x0, x1 = max(4 * xs.min() - 8, 0), min(4 * xs.max() + 12, W)
        sub = self._classify(image[y0:y1, x0:x1])
        if depth is not None:
            d = depth[y0:y1, x0:x1]
            sub &= np.isfinite(d) & (d > 0)
        # connected components are local: finding them in the box is the same as in the frame
        mask = np.zeros((H, W), bool)
        mask[y0:y1, x0:x1] = keep_main_blobs(sub, self.elongated, self.min_pixels)
        return mask

    def _classify(self, image: np.ndarray) -> np.ndarray:
        if image.dtype == np.uint8 and image.shape[0] * image.shape[1] > _LUT_MIN_PIXELS:
            lut = _class_table(tuple(self.rgb), self.tol, self.min_brightness,
                               self.max_brightness, self.highlights)
            rgb = image.astype(np.int32)
            return lut[(rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]]
        return self._classify_direct(image)

    def _classify_direct(self, image: np.ndarray) -> np.ndarray:
        dist, bright = chroma_distance(image, self.rgb)
        mask = (dist < self.tol) & (bright > self.min_brightness) & (bright < self.max_brightness)
        if self.highlights:
            mask |= _toward_white(image, self.rgb, self.tol) & (bright >= 1.0)
        return mask


# The colour rule is a function of a pixel's 8-bit RGB alone, so for large images it is looked
# up in a table of all 2^24 colours (16 MB, built once per rule in ~1 s) instead of computed:
# the same masks, bit for bit, at a fifth of the cost on a tracker's 640x480 frames.
_LUT_MIN_PIXELS = 20_000


@functools.lru_cache(maxsize=4)
def _class_table(rgb: tuple[float, float, float], tol: float, min_b: float, max_b: float,
                 highlights: bool) -> np.ndarray:
    rule = ColorSegmenter(rgb, tol=tol, min_brightness=min_b, max_brightness=max_b,
                          highlights=highlights)
    table = np.empty(1 << 24, bool)
    step = 1 << 20
    for start in range(0, 1 << 24, step):
        c = np.arange(start, start + step, dtype=np.int64)
        colours = np.stack([c >> 16, (c >> 8) & 255, c & 255], 1).astype(np.uint8)[:, None]
        table[start:start + step] = rule._classify_direct(colours)[:, 0]
    return table


def keep_main_blobs(mask: np.ndarray, elongated: bool, min_pixels: int = 8) -> np.ndarray:
    """The largest connected component; with ``elongated``, also every blob of reasonable size
    whose centre lies on the largest blob's line (an arm across the cue splits it in two)."""
    m = mask.astype(np.uint8)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(m, connectivity=8)
    if n <= 1:
        return np.zeros_like(mask, bool)
    areas = stats[1:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas))
    if areas[main - 1] < min_pixels:
        return np.zeros_like(mask, bool)
    keep = [main]
    if elongated and n > 2:
        def pixels(j):  # (x, y) of component j, looked up in its own bounding box only
            x, y, w, h = stats[j, :4]
            ys, xs = np.nonzero(labels[y:y + h, x:x + w] == j)
            return np.stack([xs + x, ys + y], 1).astype(np.float32)

        pts = pixels(main)
        vx, vy, x0, y0 = cv2.fitLine(pts, cv2.DIST_L2, 0, 0.01, 0.01).ravel()
        normal, along = np.array([-vy, vx]), np.array([vx, vy])
        spread = np.abs((pts - [x0, y0]) @ normal).max() + 2.0
        t = (pts - [x0, y0]) @ along
        lo, hi = t.min(), t.max()
        reach = max(hi - lo, 50.0)  # the widest gap an occluder may leave between two pieces
        big = np.flatnonzero(stats[1:, cv2.CC_STAT_AREA] >= max(4, min_pixels // 2)) + 1
        for j in big:
            if j == main:
                continue
            # a blob whose centre is far off the line cannot have all its pixels near it
            if abs((centroids[j] - [x0, y0]) @ normal) > spread:
                continue
            pj = pixels(j) - [x0, y0]
            tj = pj @ along
            if (np.abs(pj @ normal).max() <= spread and tj.max() >= lo - reach
                    and tj.min() <= hi + reach
                    and np.ptp(tj) >= 2 * np.ptp(pj @ normal)):  # itself along the line
                keep.append(j)
    if len(keep) == 1:
        return labels == main
    return np.isin(labels, keep)


def cue_segmenter(model, tol: float = 0.06) -> Callable[..., np.ndarray]:
    """The cue's maple shaft by colour (its ferrule is as white as the cue ball and its butt as
    dark as the rails and the black ball; the shaft alone fixes the axis and, by the model's
    known part lengths, the tip)."""
    shaft = next(p for p in model.parts if p.name == "shaft")
    return ColorSegmenter(shaft.rgb, tol=tol, elongated=True)


def coverage(image: np.ndarray, mask: np.ndarray, grow: int = 2, window: int = 9) -> np.ndarray:
    """Sub-pixel coverage ``alpha[H, W]`` in [0, 1]: how much of each pixel the object covers.

    Renderers anti-alias, so a thin object's edge pixels are mixtures of its colour and the
    background's; a hard colour mask drops them and makes the object look thinner and shifted.
    Near the mask we unmix each pixel linearly between the object's colour (the median of the
    mask) and the local background (a box average of nearby non-object pixels):
    ``alpha = (p - bg).(obj - bg) / |obj - bg|^2``. Elsewhere alpha is 0.
    """
    H, W = mask.shape
    alpha = np.zeros((H, W), np.float32)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return alpha
    pad = grow + window
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad + 1, H)
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad + 1, W)
    img = image[y0:y1, x0:x1].astype(np.float32)
    m = mask[y0:y1, x0:x1].astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    near = cv2.dilate(m, kernel, iterations=grow).astype(bool)
    bg_valid = (~cv2.dilate(m, kernel, iterations=grow + 1).astype(bool)).astype(np.float32)
    num = cv2.blur(img * bg_valid[..., None], (window, window))
    den = cv2.blur(bg_valid, (window, window))[..., None]
    bg = num / np.maximum(den, 1e-3)
    obj = np.median(img[m.astype(bool)], axis=0)
    diff = obj[None, None] - bg
    a = ((img - bg) * diff).sum(2) / np.maximum((diff ** 2).sum(2), 1.0)
    a = np.clip(a, 0.0, 1.0)
    a[~near] = 0.0
    a[m.astype(bool)] = 1.0
    a[den[..., 0] < 1e-2] = m[den[..., 0] < 1e-2]  # no background seen nearby: keep the mask
    alpha[y0:y1, x0:x1] = a
    return alpha
