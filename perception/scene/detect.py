"""One camera view -> the objects and receptacles in it (no memory; the tracker adds that).

1. Check the view: extrinsics known, depth present, the same size as the image, mostly valid.
2. Back-project every pixel into the base frame and find the table: the table-coloured pixels
   near z = 0 give its height. Too few of them: the table is not in view, and the view says so.
3. Classify pixels by colour (``colors``). Object pixels are object-coloured and above the table.
4. Connected components of object pixels, split by colour (clear pixels vote; two touching
   objects of different colours part here); pieces of one colour that an occluder (a finger)
   cut apart are joined again when they touch in 3-D; a piece too wide for one object (two
   touching objects of one colour) is split by k-means on its footprint.
5. Each cluster is measured from its 3-D points: height (table to top), footprint (minimum-area
   rectangle: cube edge and yaw), a cube-or-cylinder score, and the centre from the top face.
Receptacles: the bowl by its colour, the plate as white pixels a few millimetres above the table;
each one's centre from the smallest circle enclosing its footprint.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.scene.colors import ColorTable
from perception.scene.palette import Palette
from perception.scene.types import CameraView, Detection, Receptacle

MIN_VALID_DEPTH = 0.5  # share of pixels with a usable depth, else the depth is refused
MIN_TABLE_SHARE = 0.02  # share of pixels that must be table at z ~ 0
TABLE_BAND = 0.03  # m: how far from z = 0 the table may appear (calibration error)
ABOVE_TABLE = 0.004  # m: object pixels are at least this high
MAX_HEIGHT = 0.45  # m: higher than this is not on the table (the arm's reach)
JOIN_GAP = 0.025  # m: same-colour pieces this close are one object cut by an occluder (a finger is 1.6 cm)
MAX_FOOTPRINT = 0.066  # m: a cluster wider than this (diagonal) is more than one object
MIN_PIXEL_CONFIDENCE = 0.2  # a pixel votes for a colour only when it beats the next one clearly
MIN_COLOR_PIXELS = 4
CLIPPED_WEIGHT = 0.1  # a pixel with a clipped channel votes a tenth: its colour is partly lost
MIN_COLOR_SHARE = 0.02  # of a component's clear pixels (and at least MIN_COLOR_PIXELS), for a colour to count
RECEPTACLE_MIN_SHARE = 0.3  # of the receptacle's expected footprint area, seen


def _check(view: CameraView) -> str:
    """"ok", or why the view cannot be used."""
    if view.T_base_cam is None:
        return "extrinsics unknown"
    T = np.asarray(view.T_base_cam)
    if T.shape != (4, 4) or not np.all(np.isfinite(T)):
        return "extrinsics are not a finite 4x4 transform"
    if view.depth is None:
        return "no depth"
    if view.depth.shape != view.image.shape[:2]:
        return f"depth {view.depth.shape} does not match image {view.image.shape[:2]}"
    K = np.asarray(view.K)
    if K.shape != (3, 3) or K[0, 0] <= 0 or K[1, 1] <= 0:
        return "intrinsics are not a 3x3 matrix with positive focal lengths"
    d = view.depth
    if np.mean(np.isfinite(d) & (d > 0)) < MIN_VALID_DEPTH:
        return "depth mostly invalid"
    return "ok"


def _backproject(view: CameraView) -> tuple[np.ndarray, np.ndarray]:
    """Base-frame points ``[H, W, 3]`` and the valid-depth mask."""
    H, W = view.depth.shape
    K = np.asarray(view.K, np.float64)
    z = view.depth.astype(np.float32)
    valid = np.isfinite(z) & (z > 0)
    z = np.where(valid, z, 0.0).astype(np.float32)
    u = ((np.arange(W, dtype=np.float32) - K[0, 2]) / K[0, 0])[None, :]
    v = ((np.arange(H, dtype=np.float32) - K[1, 2]) / K[1, 1])[:, None]
    T = np.asarray(view.T_base_cam, np.float32)
    R, t = T[:3, :3], T[:3, 3]
    P = np.empty((H, W, 3), np.float32)
    for i in range(3):  # R @ (u z, v z, z) + t, channel by channel (no [H, W, 3, 3] temporary)
        P[..., i] = (R[i, 0] * u + R[i, 1] * v + R[i, 2]) * z + t[i]
    return P, valid


def _components(mask: np.ndarray, min_pixels: int) -> list[tuple[np.ndarray, bool]]:
    """Pixel index arrays (flat) of the connected components, and whether each touches the border."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    H, W = mask.shape
    out = []
    for j in range(1, n):
        x, y, w, h, area = stats[j]
        if area < min_pixels:
            continue
        ys, xs = np.nonzero(labels[y:y + h, x:x + w] == j)
        flat = (ys + y) * W + (xs + x)
        border = x == 0 or y == 0 or x + w == W or y + h == H
        out.append((flat, bool(border)))
    return out


def _diameter(xy: np.ndarray) -> float:
    """Largest distance between two of the points (over their convex hull: a handful of points)."""
    if len(xy) < 2:
        return 0.0
    hull = cv2.convexHull(np.ascontiguousarray(xy, np.float32)).reshape(-1, 2)
    d = hull[:, None] - hull[None]
    return float(np.sqrt((d ** 2).sum(2).max()))


def _by_color(flat: np.ndarray, cls: np.ndarray, conf: np.ndarray, vote: np.ndarray, W: int
              ) -> list[tuple[int, np.ndarray]]:
    """Split one object-coloured component by colour. Only pixels whose colour is clear vote
    (a highlight can make pink and purple render the same white-ish pink); a colour counts when
    it has ``MIN_COLOR_SHARE`` of the clear pixels, and every other pixel joins the colour of the
    nearest clear pixel in the image."""
    c, w = cls[flat], conf[flat]
    clear = w >= MIN_PIXEL_CONFIDENCE
    if clear.sum() < 3:
        return []  # no colour can be told: not called rather than guessed
    colours, counts = np.unique(c[clear], return_counts=True)
    keep = colours[counts >= max(MIN_COLOR_PIXELS, MIN_COLOR_SHARE * clear.sum())]
    if len(keep) > 1:  # a colour seen only in clipped pixels may be another's over-exposure
        weight = np.array([vote[flat][clear & (c == k)].sum() for k in colours])
        keep = colours[(counts >= max(MIN_COLOR_PIXELS, MIN_COLOR_SHARE * clear.sum()))
                       & (weight >= CLIPPED_WEIGHT * MIN_COLOR_PIXELS)]
    if len(keep) == 0:
        return []
    if len(keep) == 1:
        return [(int(keep[0]), flat)]
    seeds = clear & np.isin(c, keep)
    sy, sx = np.divmod(flat[seeds], W)
    py, px = np.divmod(flat, W)
    nearest = ((py[:, None] - sy[None]) ** 2 + (px[:, None] - sx[None]) ** 2).argmin(1)
    label = c[seeds][nearest]
    return [(int(k), flat[label == k]) for k in keep]


def _min_xy_gap(a: np.ndarray, b: np.ndarray) -> float:
    d = a[:, None, :2] - b[None, :, :2]
    return float(np.sqrt((d ** 2).sum(2).min()))


def _join(parts: list[tuple[np.ndarray, bool]], P: np.ndarray) -> list[tuple[np.ndarray, bool]]:
    """Join pieces of one colour that touch in 3-D and together still fit one object."""
    parts = list(parts)
    merged = True
    while merged and len(parts) > 1:
        merged = False
        for i in range(len(parts)):
            for j in range(i + 1, len(parts)):
                a, b = P[parts[i][0]], P[parts[j][0]]
                both = np.concatenate([a, b])[:, :2]
                if _min_xy_gap(a, b) < JOIN_GAP and _diameter(both) < MAX_FOOTPRINT:
                    parts[i] = (np.concatenate([parts[i][0], parts[j][0]]), parts[i][1] or parts[j][1])
                    del parts[j]
                    merged = True
                    break
            if merged:
                break
    return parts


def _split(flat: np.ndarray, P: np.ndarray, depth: int = 0) -> list[np.ndarray]:
    """Split a cluster whose footprint is too wide for one object (k-means, k = 2, recursively)."""
    xy = P[flat, :2]
    if depth >= 2 or len(flat) < 8 or _diameter(xy) <= MAX_FOOTPRINT:
        return [flat]
    crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 20, 1e-4)
    _, lab, _ = cv2.kmeans(xy.astype(np.float32), 2, None, crit, 2, cv2.KMEANS_PP_CENTERS)
    lab = lab.ravel()
    if lab.min() == lab.max():
        return [flat]
    return _split(flat[lab == 0], P, depth + 1) + _split(flat[lab == 1], P, depth + 1)


def _with_washed_out(pts: np.ndarray, flat: np.ndarray, washed: np.ndarray, Pf: np.ndarray,
                     W: int, grow: int = 3) -> np.ndarray:
    """Add the object's washed-out pixels to its points: a highlight saturates a bright top face
    (pink, yellow) to white, which no colour claims, and without it the top face, which fixes
    the centre, is missing. Taken: white pixels next to the object in the image whose 3-D points
    sit on it (within ``JOIN_GAP`` across, no higher than its top + 1.5 cm)."""
    ys, xs = np.divmod(flat, W)
    H = len(washed) // W
    y0, y1 = max(ys.min() - grow, 0), min(ys.max() + grow + 1, H)
    x0, x1 = max(xs.min() - grow, 0), min(xs.max() + grow + 1, W)
    box = washed.reshape(H, W)[y0:y1, x0:x1]
    if not box.any():
        return pts
    by, bx = np.nonzero(box)
    cand = Pf[(by + y0) * W + (bx + x0)].astype(np.float64)
    ok = cand[:, 2] <= pts[:, 2].max() + 0.015
    if not ok.any():
        return pts
    cand = cand[ok]
    d = cand[:, None, :2] - pts[None, :, :2]
    near = np.sqrt((d ** 2).sum(2)).min(1) < JOIN_GAP
    return np.concatenate([pts, cand[near]]) if near.any() else pts


def _wrap_quarter(angle: float) -> float:
    """A cube's yaw is defined modulo 90 degrees: wrap to [-pi/4, pi/4)."""
    q = np.pi / 2
    return float((angle + q / 2) % q - q / 2)


def _measure(pts: np.ndarray, table_z: float, palette: Palette, cam_pos: np.ndarray
             ) -> tuple[np.ndarray, tuple[float, float, float], float | None, float]:
    """Centre, size, cube yaw and the cube-vs-cylinder score of one object's points."""
    z = pts[:, 2] - table_z
    top, bottom = float(z.max()), float(z.min())
    resting = bottom < 0.015
    height = top if resting else top - bottom
    xy = pts[:, :2].astype(np.float32)
    (cx, cy), (w, d), angle = cv2.minAreaRect(xy)
    cube, cyl = palette.shapes["cube"], palette.shapes["cylinder"]
    # Height separates the shapes best (4 cm vs 5 cm here); a lifted object seen without its
    # bottom counts for less.
    mid = 0.5 * (cube.height + cyl.height)
    gap = 0.5 * abs(cyl.height - cube.height) or 0.005
    score = float(np.clip((mid - height) / gap, -1.0, 1.0)) * (1.0 if resting else 0.5)
    if not resting and height < 0.6 * min(cube.height, cyl.height):
        score = 0.0  # seen from above without its bottom: its height says nothing
    if cyl.height < cube.height:
        score = -score
    shape = "cube" if score >= 0 else "cylinder"
    top_pts = pts[z > top - 0.004]
    if len(top_pts) >= 3:
        centre_xy = top_pts[:, :2].mean(0)
    else:  # top face hidden: the visible side's centre, pushed back by half a width
        away = pts[:, :2].mean(0) - cam_pos[:2]
        away /= np.linalg.norm(away) or 1.0
        centre_xy = pts[:, :2].mean(0) + away * 0.5 * palette.shapes[shape].width
    centre = np.array([centre_xy[0], centre_xy[1], table_z + top - 0.5 * palette.shapes[shape].height])
    yaw = None
    if shape == "cube":
        src = top_pts[:, :2].astype(np.float32) if len(top_pts) >= 5 else xy
        yaw = _wrap_quarter(np.deg2rad(cv2.minAreaRect(src)[2]))
    return centre, (float(max(w, d)), float(min(w, d)), float(height)), yaw, score


def _circle(pts: np.ndarray, radius: float) -> tuple[np.ndarray, float] | None:
    """Centre and radius of a round receptacle's footprint, or None when too little of it shows."""
    xy = pts[:, :2].astype(np.float32)
    if len(xy) < 10:
        return None
    hull = cv2.convexHull(xy)
    if cv2.contourArea(hull) < RECEPTACLE_MIN_SHARE * np.pi * radius ** 2:
        return None
    (cx, cy), r = cv2.minEnclosingCircle(xy)
    return np.array([cx, cy]), float(r)


def detect_view(view: CameraView, table: ColorTable, palette: Palette
                ) -> tuple[str, list[Detection], list[Receptacle]]:
    """``(status, detections, receptacles)`` of one view; status is "ok" or why not."""
    status = _check(view)
    if status != "ok":
        return status, [], []
    P, valid = _backproject(view)
    cls, conf = table.classify(view.image)
    names = table.names
    H, W = cls.shape
    Z = P[..., 2]
    t_idx = names.index("table")
    on_table = valid & (cls == t_idx) & (np.abs(Z) < TABLE_BAND)
    if on_table.sum() < MIN_TABLE_SHARE * H * W:
        return "table not in view", [], []
    table_z = float(np.median(Z[on_table]))
    Pf = P.reshape(-1, 3)
    cam_pos = np.asarray(view.T_base_cam, float)[:3, 3]
    min_pixels = max(4, (H * W) // 4000)

    above = valid & (Z > table_z + ABOVE_TABLE) & (Z < table_z + MAX_HEIGHT)
    img = view.image.astype(np.int16)
    white = (img.min(2) > 170) & (img.max(2) - img.min(2) < 30)
    washed = (white & above).reshape(-1)
    objects = above & (cls < table.n_objects)
    cls_f, conf_f = cls.reshape(-1), conf.reshape(-1)
    # A pixel's vote for its colour: its confidence, a tenth of it where a channel is clipped
    # (over-exposed orange renders (255, 255, 80), which is yellow's colour).
    vote_f = (conf * np.where(view.image.max(2) >= 250, CLIPPED_WEIGHT, 1.0)).reshape(-1)
    by_color: dict[int, list[tuple[np.ndarray, bool]]] = {}
    for flat, border in _components(objects, min_pixels):
        for c, piece in _by_color(flat, cls_f, conf_f, vote_f, W):
            by_color.setdefault(c, []).append((piece, border))
    dets: list[Detection] = []
    for c, parts in by_color.items():
        for flat, border in _join(parts, Pf):
            for sub in _split(flat, Pf):
                if len(sub) < min_pixels:
                    continue
                pts = _with_washed_out(Pf[sub].astype(np.float64), sub, washed, Pf, W)
                centre, size, yaw, score = _measure(pts, table_z, palette, cam_pos)
                w = vote_f[sub]
                votes = float(w[cls_f[sub] == c].sum())
                color_conf = votes / max(float(w.sum()), 1e-6)
                dets.append(Detection(
                    color=names[c], color_confidence=color_conf, color_votes=votes,
                    shape="cube" if score >= 0 else "cylinder", cube_score=score, position=centre,
                    size=size, yaw=yaw, pixels=len(sub), truncated=border, camera=view.name,
                    points=pts))
    recs: list[Receptacle] = []
    for kind in ("bowl", "plate"):
        if kind not in names or kind not in palette.receptacles:
            continue
        if kind == "bowl":
            mask = valid & (cls == names.index(kind)) & (Z > table_z + 0.002)
        else:  # a thin white disc; saturated white fits several classes, so white is the rule
            mask = valid & white & (Z > table_z + 0.002) & (Z < table_z + 0.02)
        comps = _components(mask, min_pixels)
        if not comps:
            continue
        flat, _ = max(comps, key=lambda fc: len(fc[0]))
        fit = _circle(Pf[flat], palette.receptacles[kind])
        if fit is None:
            continue
        centre, r = fit
        recs.append(Receptacle(kind, (float(centre[0]), float(centre[1]), table_z), r,
                               view.stamp, (view.name,)))
    return "ok", dets, recs
