"""Initial poses for the cue: a geometric axis fit (3-D with depth, 2-D without) or SQPnP.

The cue is a thin solid of revolution: three of its six degrees of freedom (the axis direction
and the tip position along it) are well observed, its roll is not observable at all, and its
image points are nearly collinear, which is exactly where PnP solvers that iterate from a
guess (OpenCV's default ITERATIVE) diverge. So the default is to fit the axis directly:

* RGB-D: back-project the shaft pixels, take their principal direction, move the line from the
  visible surface back to the axis (for pixels spread evenly across a cylinder's silhouette the
  surface lies on average r*pi/4 in front of the axis), and read the tip off the shaft's thin end.
* RGB: fit the 2-D line of the shaft mask, measure the apparent widths near both ends
  (width = 2 r f / Z gives each end's depth up to noise), then scale both depths so the shaft
  has its known length.
* ``pnp``: both shaft ends and their silhouette edges as 2-D/3-D pairs, solved with SQPnP,
  which finds the global minimum and so copes with near-collinear points.

Which end is the tip: the butt continues past the shaft's thick end in dark wood, the ferrule
past the thin end in white, so the darker continuation marks the butt.
"""

from __future__ import annotations

import cv2
import numpy as np

from perception.errors import PerceptionError


def backproject(mask: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points ``[N, 3]`` of the masked pixels with a valid depth."""
    v, u = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], 1)


def pose_from_axis(tip: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """A 4x4 object->camera pose with origin ``tip`` and +z along ``axis`` (roll: x kept as
    perpendicular to the camera's y axis as possible; the cue's roll is unobservable anyway)."""
    z = np.asarray(axis, float) / np.linalg.norm(axis)
    ref = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    T = np.eye(4)
    T[:3, :3] = np.stack([x, y, z], 1)
    T[:3, 3] = tip
    return T


def _shaft(model):
    return next(p for p in model.parts if p.name == "shaft")


def line_2d(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """2-D line of a mask: a point, the unit direction, and each pixel's (along, across) coords."""
    v, u = np.nonzero(mask)
    if len(u) < 5:
        raise PerceptionError("the object is not visible (segmentation found too few pixels)")
    pts = np.stack([u, v], 1).astype(np.float64)
    vx, vy, x0, y0 = cv2.fitLine(pts.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.01).ravel()
    p0, d = np.array([x0, y0], float), np.array([vx, vy], float)
    rel = pts - p0
    return p0, d, rel @ d, rel @ np.array([-d[1], d[0]])


def butt_is_at_high_end(image: np.ndarray, p0: np.ndarray, d: np.ndarray, lo: float, hi: float,
                        reach: tuple[float, float] = (3.0, 25.0),
                        butt_rgb: tuple[float, float, float] = (0.25, 0.12, 0.05)) -> bool | None:
    """Which end of the shaft the butt continues from: the one followed by butt-coloured pixels
    (by chromaticity, so a dark-brown butt is told from dark-green cloth). None when unclear."""
    H, W = image.shape[:2]
    ref = np.asarray(butt_rgb, np.float32) * 255 + 1
    ref = ref / ref.sum()

    def beyond(t_end: float, sign: float) -> tuple[float, float] | None:
        ts = t_end + sign * np.arange(reach[0], reach[1])
        xy = np.rint(p0 + ts[:, None] * d).astype(int)
        ok = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
        if ok.sum() < 3:
            return None
        px = image[xy[ok, 1], xy[ok, 0]].astype(np.float32) + 1
        chroma = px / px.sum(1, keepdims=True)
        butt_share = float(np.mean(np.linalg.norm(chroma - ref, axis=1) < 0.08))
        return butt_share, float(np.median(px.mean(1)))

    a, b = beyond(lo, -1.0), beyond(hi, +1.0)
    if a is None or b is None:  # an end at the image border: no evidence either way
        return None
    if abs(a[0] - b[0]) >= 0.3:
        return b[0] > a[0]
    return None  # (darkness alone misleads: a sleeve or a shadow is dark too)


def _end_widths(along: np.ndarray, across: np.ndarray, lo: float, hi: float) -> tuple[float, float]:
    span = hi - lo
    near_lo = (along < lo + 0.2 * span)
    near_hi = (along > hi - 0.2 * span)

    def width(sel):  # pixels per unit length in the stretch ~ apparent width
        if sel.sum() < 3:
            return np.nan
        a = along[sel]
        return sel.sum() / max(a.max() - a.min() + 1.0, 1.0)

    return width(near_lo), width(near_hi)


def front_depth(depth: np.ndarray, k: int = 3) -> np.ndarray:
    """Depth with each pixel replaced by the nearest surface in its ``k x k`` window.

    A thin object's edge pixels are coloured like it (anti-aliasing) but their depth sample may
    come from the table or the floor behind; the window minimum recovers the object's depth
    (it is the nearest thing there). Invalid depths (0, inf, nan) never win the minimum.
    """
    import cv2

    d = np.where(np.isfinite(depth) & (depth > 0), depth, np.float32(1e6)).astype(np.float32)
    out = cv2.erode(d, np.ones((k, k), np.uint8))
    out[out >= 1e6] = 0.0
    return out


def init_cue_rgbd(mask: np.ndarray, depth: np.ndarray, K: np.ndarray, model,
                  image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tip, axis) in the camera frame from the shaft's depth points."""
    P = backproject(mask, depth, K)
    if len(P) < 10:
        raise PerceptionError("the cue is not visible (too few depth points)")
    # Robust line: fit, drop points far from it (edge pixels that caught the background's
    # depth), refit. A few stray mask pixels on a far surface (cloth-coloured floor metres
    # behind) would tilt the first fit toward the camera's axis, so points further than a
    # half cue length from the median depth never enter it.
    z = P[:, 2]
    keep = np.abs(z - np.median(z)) < max(0.5 * float(model.dims[0]), 0.3)
    for _ in range(3):
        c = np.median(P[keep], axis=0)
        _, _, vt = np.linalg.svd(P[keep] - c, full_matrices=False)
        d = vt[0]
        rel = P - c
        off = np.linalg.norm(rel - (rel @ d)[:, None] * d, axis=1)
        keep = off < max(3 * np.median(off[keep]), 0.02)
        if keep.sum() < 10:
            raise PerceptionError("the cue is not visible (no consistent depth points)")
    P = P[keep]
    s = (P - c) @ d
    lo, hi = np.percentile(s, [0.1, 99.9])
    part = _shaft(model)
    # surface -> axis: move away from the camera by r * pi / 4 (mean over the silhouette width)
    r_mid = float(model.radius_at(0.5 * (part.z0 + part.z1)))
    view = c - (c @ d) * d
    c = c + view / np.linalg.norm(view) * r_mid * np.pi / 4
    flip = _tip_side_is_high(P, c, d, lo, hi, mask, image, K)
    if flip:
        d, lo, hi = -d, -hi, -lo
    tip = c + d * (lo - part.z0)
    if hi - lo < (part.z1 - part.z0) - 0.01:
        # The shaft looks short: one end is hidden (the cue ball in front of the tip, a hand on
        # the shaft) or out of view. Anchor on the end whose surroundings are not occluded.
        if _end_hidden(c + d * (lo - 0.015), depth, K) and not _end_hidden(c + d * (hi + 0.015),
                                                                           depth, K):
            tip = c + d * (hi - part.z1)
    return tip, d


def _end_hidden(p: np.ndarray, depth: np.ndarray, K: np.ndarray, margin: float = 0.01) -> bool:
    """Whether something nearer than ``p`` (or the image border) covers the pixel of ``p``."""
    if p[2] <= 0:
        return True
    u, v = np.rint((K @ p)[:2] / p[2]).astype(int)
    H, W = depth.shape
    if not (0 <= u < W and 0 <= v < H):
        return True
    patch = depth[max(v - 2, 0):v + 3, max(u - 2, 0):u + 3]
    patch = patch[np.isfinite(patch) & (patch > 0)]
    return bool(len(patch) and np.min(patch) < p[2] - margin)


def _tip_side_is_high(P, c, d, lo, hi, mask, image, K) -> bool:
    """True when the thin (tip) end of the shaft is at the high end of ``s``."""
    if image is not None:
        p0, d2, along, _ = line_2d(mask)
        a = c + lo * d
        b = c + hi * d
        ua, ub = (K @ a)[:2] / a[2], (K @ b)[:2] / b[2]
        # orient the 2-D direction like the 3-D one
        if (ub - ua) @ d2 < 0:
            d2 = -d2
            along = -along
        butt_high = butt_is_at_high_end(image, p0, d2, along.min(), along.max())
        if butt_high is not None:
            return not butt_high
    s = (P - c) @ d
    radial = np.linalg.norm(P - c - s[:, None] * d, axis=1)
    span = hi - lo
    r_lo = np.median(radial[s < lo + 0.25 * span])
    r_hi = np.median(radial[s > hi - 0.25 * span])
    return r_hi < r_lo


def _silhouette_ends(mask: np.ndarray, image: np.ndarray | None):
    """The silhouette's 2-D line ``p0 + s * d2`` with its ends ``lo`` (tip side) < ``hi`` (butt
    side) and the widths there: the butt's colour decides the order when visible, else the taper."""
    p0, d2, along, across = line_2d(mask)
    lo, hi = np.percentile(along, [0.5, 99.5])
    w_lo, w_hi = _end_widths(along, across, lo, hi)
    butt_high = butt_is_at_high_end(image, p0, d2, lo, hi) if image is not None else None
    if butt_high is None:
        butt_high = not (w_hi < w_lo)
    if not butt_high:  # make "lo" the tip side
        d2, lo, hi, w_lo, w_hi = -d2, -hi, -lo, w_hi, w_lo
    return p0, d2, lo, hi, w_lo, w_hi


def init_cue_rgb(mask: np.ndarray, K: np.ndarray, model,
                 image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tip, axis) from the shaft's silhouette alone, using its known length and radii."""
    p0, d2, lo, hi, w_lo, w_hi = _silhouette_ends(mask, image)
    part = _shaft(model)
    f = float(K[0, 0])
    r_a, r_b = float(model.radius_at(part.z0)), float(model.radius_at(part.z1))
    z_a = 2 * r_a * f / w_lo if np.isfinite(w_lo) and w_lo > 0 else 1.0
    z_b = 2 * r_b * f / w_hi if np.isfinite(w_hi) and w_hi > 0 else 1.0
    Kinv = np.linalg.inv(K)
    ray_a = Kinv @ np.array([*(p0 + lo * d2), 1.0])
    ray_b = Kinv @ np.array([*(p0 + hi * d2), 1.0])
    # widths give the ratio of the two depths; the shaft's known length gives the scale
    k = (part.z1 - part.z0) / np.linalg.norm(z_a * ray_a - z_b * ray_b)
    A, B = k * z_a * ray_a, k * z_b * ray_b
    axis = (B - A) / np.linalg.norm(B - A)
    return A - part.z0 * axis, axis


def init_cue_pnp(mask: np.ndarray, K: np.ndarray, model,
                 image: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(tip, axis) by SQPnP on the shaft's ends and their silhouette edges."""
    p0, d2, lo, hi, w_lo, w_hi = _silhouette_ends(mask, image)
    n2 = np.array([-d2[1], d2[0]])
    part = _shaft(model)
    ra, rb = float(model.radius_at(part.z0)), float(model.radius_at(part.z1))
    wa = w_lo if np.isfinite(w_lo) else 2.0
    wb = w_hi if np.isfinite(w_hi) else 2.0
    a, b = p0 + lo * d2, p0 + hi * d2
    img_pts = np.array([a, b, a + n2 * wa / 2, a - n2 * wa / 2, b + n2 * wb / 2, b - n2 * wb / 2])
    obj_pts = np.array([[0, 0, part.z0], [0, 0, part.z1], [ra, 0, part.z0], [-ra, 0, part.z0],
                        [rb, 0, part.z1], [-rb, 0, part.z1]], float)
    ok, rvec, tvec = cv2.solvePnP(obj_pts, img_pts, K, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise PerceptionError("SQPnP found no pose for the cue")
    R = cv2.Rodrigues(rvec)[0]
    return tvec.ravel(), R[:, 2]
