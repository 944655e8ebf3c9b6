"""Contact sheets and pose overlays: what `embodied perceive` and `embodied pose` draw."""

from __future__ import annotations

import math

import cv2
import numpy as np


def contact_sheet(images: list[np.ndarray], labels: list[str], tile_width: int = 320,
                  columns: int | None = None) -> np.ndarray:
    """A grid of ``images`` (RGB), each with its label (e.g. a timestamp) in the corner."""
    if not images:
        raise ValueError("no images for the contact sheet")
    cols = columns or max(1, math.ceil(math.sqrt(len(images))))
    h0, w0 = images[0].shape[:2]
    th = max(1, round(h0 * tile_width / w0))
    rows = math.ceil(len(images) / cols)
    sheet = np.full((rows * (th + 4) + 4, cols * (tile_width + 4) + 4, 3), 24, np.uint8)
    for k, (img, label) in enumerate(zip(images, labels)):
        tile = cv2.resize(img, (tile_width, th), interpolation=cv2.INTER_AREA)
        cv2.rectangle(tile, (0, 0), (8 + 9 * len(label), 22), (0, 0, 0), -1)
        cv2.putText(tile, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
        r, c = divmod(k, cols)
        y, x = 4 + r * (th + 4), 4 + c * (tile_width + 4)
        sheet[y:y + th, x:x + tile_width] = tile
    return sheet


def draw_cue(image: np.ndarray, T: np.ndarray | None, K: np.ndarray, model,
             color=(255, 0, 255), text: str | None = None) -> np.ndarray:
    """The cue's outline (a tapered quad from tip to butt) and its tip, drawn over ``image``."""
    out = image.copy()
    if T is not None:
        L, r0, r1 = model.dims
        tip, axis = T[:3, 3], T[:3, 2]
        zs = np.linspace(0.0, L, 16)
        P = tip + zs[:, None] * axis
        P = P[P[:, 2] > 1e-3]
        if len(P) >= 2:
            q = (P @ K.T)[:, :2] / (P @ K.T)[:, 2:]
            d = q[-1] - q[0]
            n = np.array([-d[1], d[0]]) / max(np.linalg.norm(d), 1e-6)
            half = (r0 + (r1 - r0) * zs[: len(P)] / L) * K[0, 0] / P[:, 2]
            poly = np.concatenate([q + n * half[:, None], (q - n * half[:, None])[::-1]])
            cv2.polylines(out, [np.rint(poly).astype(np.int32)], True, color, 1, cv2.LINE_AA)
            cv2.circle(out, tuple(np.rint(q[0]).astype(int)), 4, (255, 255, 0), 1, cv2.LINE_AA)
    if text:
        cv2.putText(out, text, (8, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1,
                    cv2.LINE_AA)
    return out
