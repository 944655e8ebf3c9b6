"""Balls by colour: a per-pixel class table, a coarse search on a subsampled frame, a fine
centroid at full resolution.

Why a table: a pixel's class depends on its colour alone, so every 15-bit colour (5 bits per
channel) is classified once when the tracker starts and each frame costs a few integer ops and one
lookup per pixel. Classes are the balls, the cloth and the known distractors (the cue's ferrule,
shaft and butt); a pixel takes the nearest class, where "near" lets brightness vary (a lit
sphere darkens toward its rim: the colour ``s * c`` for ``s`` in a range), and stays unlabelled
when nothing is near. The nearest-class rule is what keeps a dark red rim out of the maroon ball
and the maple shaft out of the yellow one.

Finding a ball: first a window around where the tracker predicts it (full resolution, a few
hundred pixels); when it is not there, the whole frame subsampled by 2 (the ball is still ~6x6
pixels), then the same fine step around the densest cell of that ball's colour. The fine step
is a disk-masked centroid, iterated: pixels of the ball's class weigh 1, unlabelled ones (the
anti-aliased rim) 1/2, anything else 0, so a touching ball or the cue's tip barely pulls it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

UNLABELLED = 255
CLOTH = 254
DISTRACTOR = 253


def _quantise(image: np.ndarray) -> np.ndarray:
    """uint8 [..., 3] -> 15-bit colour index."""
    q = image >> 3
    return (q[..., 0].astype(np.int32) << 10) | (q[..., 1].astype(np.int32) << 5) | q[..., 2]


@dataclass(frozen=True)
class ColourClasses:
    """The class table: ``lut[colour15]`` is a ball index, ``CLOTH``, ``DISTRACTOR`` or ``UNLABELLED``."""

    lut: np.ndarray  # uint8 [32768]

    @staticmethod
    def build(ball_rgb: np.ndarray, cloth_rgb: np.ndarray, distractors: np.ndarray,
              tol: float = 40.0, ball_range: tuple[float, float] = (0.55, 1.3),
              cloth_range: tuple[float, float] = (0.3, 1.5)) -> "ColourClasses":
        """``ball_rgb`` [N, 3], ``cloth_rgb`` [3], ``distractors`` [M, 3], all in [0, 255].

        ``tol``: largest distance (8-bit units) from a class's colour ray to still belong to it.
        """
        c = np.arange(1 << 15)
        colours = np.stack([(c >> 10) & 31, (c >> 5) & 31, c & 31], 1).astype(np.float64) * 8 + 4
        protos = [np.asarray(ball_rgb, float), np.asarray(cloth_rgb, float)[None],
                  np.asarray(distractors, float).reshape(-1, 3)]
        ranges = ([ball_range] * len(protos[0]) + [cloth_range] + [ball_range] * len(protos[2]))
        labels = (list(range(len(protos[0]))) + [CLOTH] + [DISTRACTOR] * len(protos[2]))
        P = np.concatenate(protos)
        best = np.full(len(colours), np.inf)
        lut = np.full(len(colours), UNLABELLED, np.uint8)
        for proto, (lo, hi), label in zip(P, ranges, labels):
            s = np.clip(colours @ proto / max(proto @ proto, 1e-9), lo, hi)
            d = np.linalg.norm(colours - s[:, None] * proto, axis=1)
            better = (d < best) & (d < tol)
            best = np.where(better, d, best)
            lut[better] = label
        return ColourClasses(lut)

    def classify(self, image: np.ndarray) -> np.ndarray:
        """uint8 [H, W, 3] -> uint8 [H, W] labels."""
        return self.lut[_quantise(image)]


@dataclass(frozen=True)
class Blob:
    """A ball seen in one frame: centre (pixels, sub-pixel) and the share of its disk in its colour."""

    uv: np.ndarray  # [2] x, y
    fill: float  # ball-coloured pixels / the disk's expected area
    covered: float = 0.0  # share of the disk showing a distractor (the cue lying over the ball)


def refine(labels: np.ndarray, x0: int, y0: int, k: int, uv: np.ndarray, r_px: float,
           iters: int = 3) -> Blob | None:
    """Disk-masked centroid of ball ``k`` in a labelled window whose top-left pixel is (x0, y0)."""
    H, W = labels.shape
    ys, xs = np.mgrid[0:H, 0:W]
    xs = xs + x0
    ys = ys + y0
    own = labels == k
    if not own.any():
        return None
    w_all = np.where(own, 1.0, np.where(labels == UNLABELLED, 0.5, 0.0))
    c = np.asarray(uv, float)
    rr = (r_px + 1.0) ** 2
    for _ in range(iters):
        inside = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= rr
        w = w_all * inside
        total = w.sum()
        if total <= 0:
            return None
        c = np.array([(w * xs).sum() / total, (w * ys).sum() / total])
    inside = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= r_px ** 2
    area = max(np.pi * r_px * r_px, 1.0)
    fill = float((own & inside).sum()) / area
    # The cue over the ball, counted inside the disk less its rim: a rim pixel mixes the ball's
    # colour with the cloth's, and red on green reads as the cue butt's brown.
    core = (xs - c[0]) ** 2 + (ys - c[1]) ** 2 <= max(r_px - 1.0, 0.5 * r_px) ** 2
    return Blob(c, fill, float(((labels == DISTRACTOR) & core).sum()) / area)


def find_near(image: np.ndarray, classes: ColourClasses, k: int, uv: np.ndarray, r_px: float,
              half: int) -> Blob | None:
    """Ball ``k`` in the (2 half + 1)^2 window around pixel ``uv`` (full resolution)."""
    H, W = image.shape[:2]
    cx, cy = int(round(uv[0])), int(round(uv[1]))
    x0, x1 = max(cx - half, 0), min(cx + half + 1, W)
    y0, y1 = max(cy - half, 0), min(cy + half + 1, H)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    labels = classes.classify(image[y0:y1, x0:x1])
    own = labels == k
    n = int(own.sum())
    if n == 0:
        return None
    ys, xs = np.nonzero(own)
    start = np.array([xs.mean() + x0, ys.mean() + y0])
    return refine(labels, x0, y0, k, start, r_px)


def coarse_labels(image: np.ndarray, classes: ColourClasses, mask: np.ndarray | None) -> np.ndarray:
    """Labels of the frame subsampled by 2 (``mask``: where balls can be, same subsampled shape)."""
    labels = classes.classify(image[::2, ::2])
    if mask is not None:
        labels = np.where(mask, labels, UNLABELLED)
    return labels


def find_global(image: np.ndarray, coarse: np.ndarray, classes: ColourClasses, k: int, r_px: float,
                min_pixels: int, cell: int = 8) -> Blob | None:
    """Ball ``k`` anywhere: the densest ``cell``-sized square of its colour in the subsampled
    labels, then the fine step around it."""
    ys, xs = np.nonzero(coarse == k)
    if len(xs) < min_pixels:
        return None
    h, w = coarse.shape
    gx, gy = xs // cell, ys // cell
    ncx = w // cell + 1
    counts = np.bincount(gy * ncx + gx, minlength=(h // cell + 1) * ncx).reshape(-1, ncx)
    # a ball straddling cells: sum 2x2 neighbourhoods
    pad = np.pad(counts, ((0, 1), (0, 1)))
    sums = pad[:-1, :-1] + pad[1:, :-1] + pad[:-1, 1:] + pad[1:, 1:]
    j = int(np.argmax(sums))
    cy, cx = divmod(j, sums.shape[1])
    if sums[cy, cx] < min_pixels:
        return None
    sel = (gx >= cx) & (gx <= cx + 1) & (gy >= cy) & (gy <= cy + 1)
    uv = np.array([xs[sel].mean(), ys[sel].mean()]) * 2.0
    return find_near(image, classes, k, uv, r_px, int(np.ceil(2 * r_px)) + 3)
