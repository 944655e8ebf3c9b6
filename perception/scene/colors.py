"""Per-pixel colour classes: each 8-bit RGB -> the nearest known surface colour.

A matte-and-shiny surface of colour ``rgb`` renders (and photographs) as roughly
``clip(k * rgb + s)``: ``k`` is how much light falls on it (shadowed side .. lit top, over-exposed
next to the wrist camera's own light) and ``s`` the white of a specular highlight, and the
camera clips at 255. A pixel's class is the colour whose whole surface ``{clip(k rgb + s)}`` passes
nearest, measured relative to the pixel's brightness (so that dark pixels are not all "near"
everything). The highlight term matters: close to the wrist camera a purple cube renders
(255, 131, 255), which is purple over-exposed with a highlight, not pink, whose chromaticity is
nearer. Classes are the object colours and the background surfaces (table, receptacles, arm,
gripper): an arm pixel is nearer the arm's grey than any object colour, so the arm never becomes
an object although nothing tells the perceiver where the arm is.

The rule depends on a pixel's RGB alone, so each colour is classified once, the first time it
is seen, and remembered in a table of all 2^24 colours (32 MB): classification is then one gather
per pixel. Filling the whole table up front would cost ~20 s; a rendered scene has a few thousand
distinct colours, a camera's noisy image more, and each new one costs microseconds.
"""

from __future__ import annotations

import functools

import numpy as np

from perception.scene.palette import RGB

K_MIN, K_MAX = 0.1, 2.5  # light levels k: deep shadow .. over-exposed
HIGHLIGHTS = (0.0, 0.1, 0.2, 0.3, 0.45)  # s: white added by a specular highlight
MIN_SUM = 45  # R+G+B below this: too dark for its colour to mean anything
MAX_DIST = 0.35  # relative distance beyond which a pixel has no class
CONF_SCALE = 0.02  # relative distance: below it, "nearer than the next" is within noise
NONE = 255  # class index of "no class"
_UNSEEN = 254  # not classified yet


class ColorTable:
    """``names[i]`` is class ``i``; object colours come first (``i < n_objects``)."""

    def __init__(self, names: tuple[str, ...], n_objects: int, colours: np.ndarray) -> None:
        self.names, self.n_objects = names, n_objects
        self._colours = colours  # [n_classes, 3] in 0..1
        self._cls = np.full(1 << 24, _UNSEEN, np.uint8)
        self._conf = np.zeros(1 << 24, np.uint8)  # confidence * 255

    def classify(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(class uint8 [H, W], confidence float32 [H, W] in 0..1)`` of an RGB uint8 image;
        class ``NONE`` where no colour fits. Confidence:
        ``(d_second - d_nearest) / (d_second + CONF_SCALE)``, 0 for a tie."""
        rgb = np.asarray(image, np.uint8).astype(np.int32)
        idx = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        cls = self._cls[idx]
        new = cls == _UNSEEN
        if new.any():
            self._fill(np.unique(idx[new]))
            cls = self._cls[idx]
        return cls, self._conf[idx].astype(np.float32) / 255.0

    def _fill(self, idx: np.ndarray) -> None:
        c = np.stack([idx >> 16, (idx >> 8) & 255, idx & 255], 1).astype(np.float32) / 255.0
        d = np.stack([_distance(c, rgb) for rgb in self._colours], 1)
        d /= c.mean(1, keepdims=True) + 0.05  # relative to the pixel's brightness
        d[:, :self.n_objects] += 1e-4  # a tie (saturated white fits many) is not an object
        order = np.argsort(d, 1)
        d1 = np.take_along_axis(d, order[:, :1], 1)[:, 0]
        d2 = np.take_along_axis(d, order[:, 1:2], 1)[:, 0]
        cls = order[:, 0].astype(np.uint8)
        cls[(d1 > MAX_DIST) | (c.sum(1) * 255.0 < MIN_SUM)] = NONE
        self._cls[idx] = cls
        conf = (d2 - d1) / (d2 + CONF_SCALE)  # ~1: far nearer this colour than any other; 0: a tie
        self._conf[idx] = np.round(255.0 * np.clip(conf, 0.0, 1.0))


def _distance(c: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """Distance of each pixel ``c`` [N, 3] (0..1) to the surface ``clip(k rgb + s)`` of one colour.

    For each highlight level ``s`` the best light level ``k`` is the least-squares one along the
    ray ``k rgb + s``; channels that this ``k`` drives past 1 are then held at 1 (the camera
    clips them) and ``k`` is solved again from the others, which is exact once the set of
    clipped channels is right.
    """
    best = np.full(len(c), np.inf, np.float32)
    for s in HIGHLIGHTS:
        k = np.clip((c - s) @ rgb / (rgb @ rgb), K_MIN, K_MAX)
        for _ in range(2):
            model = k[:, None] * rgb[None] + s
            free = model < 1.0
            num = ((c - s) * rgb[None] * free).sum(1)
            den = ((rgb[None] ** 2) * free).sum(1)
            k = np.where(den > 1e-6, np.clip(num / np.maximum(den, 1e-6), K_MIN, K_MAX), k)
        model = np.clip(k[:, None] * rgb[None] + s, 0.0, 1.0)
        best = np.minimum(best, np.sqrt(((c - model) ** 2).sum(1)))
    return best


@functools.lru_cache(maxsize=4)
def _build(objects: tuple[tuple[str, RGB], ...], background: tuple[tuple[str, RGB], ...]
           ) -> ColorTable:
    names = tuple(n for n, _ in objects) + tuple(n for n, _ in background)
    colours = np.array([rgb for _, rgb in objects + background], np.float32)
    return ColorTable(names, len(objects), colours)


def color_table(objects: dict[str, RGB], background: dict[str, RGB]) -> ColorTable:
    """The (cached) table for these colours."""
    return _build(tuple(objects.items()), tuple(background.items()))
