"""Synthetic cue frames from our own renderer: ground truth for tests, demos and benchmarks
before (or beside) the simulator. Each of the cue's coloured parts is rendered with
:func:`~perception.pose.render.render_frustum` over a plain table-cloth background."""

from __future__ import annotations

import numpy as np
import torch

from perception.pose.render import pixel_rays, render_frustum

CLOTH = (0.05, 0.45, 0.25)  # the billiards cloth colour


def look_at_cue_pose(tip: np.ndarray, direction: np.ndarray) -> np.ndarray:
    from perception.pose.init import pose_from_axis

    return pose_from_axis(np.asarray(tip, float), np.asarray(direction, float))


def render_cue_scene(T: np.ndarray, K: np.ndarray, size: tuple[int, int], model,
                     background=CLOTH, table_depth: float | None = None, noise: float = 0.0,
                     depth_noise: float = 0.0, occluder: tuple[int, int, int, int] | None = None,
                     occluder_depth: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb uint8[H, W, 3], depth float32[H, W])`` of the cue at ``T`` (object->camera).

    Edge pixels are anti-aliased (colours mixed by coverage), like a real render. ``occluder``
    (y0, y1, x0, x1) paints a grey box ``occluder_depth`` metres from the camera in front of
    everything, standing in for an arm; ``noise`` is the std of Gaussian pixel noise (0-255
    scale) and ``depth_noise`` that of the depth noise in metres.
    """
    H, W = size
    rng = np.random.default_rng(seed)
    L, r0, r1 = model.dims
    img_full = np.tile(np.asarray(background, np.float32) * 255, (H, W, 1))
    depth_full = np.full((H, W), np.inf if table_depth is None else table_depth, np.float32)
    # only pixels near the cue's projection are rendered (the rest is background)
    ends = np.array([T[:3, 3], T[:3, 3] + L * T[:3, 2]])
    ends = ends[ends[:, 2] > 1e-3]
    q = (ends @ K.T)[:, :2] / (ends @ K.T)[:, 2:] if len(ends) else np.zeros((0, 2))
    m = 12
    x0, y0 = (np.floor(q.min(0)).astype(int) - m) if len(q) else (0, 0)
    x1, y1 = (np.ceil(q.max(0)).astype(int) + m) if len(q) else (W, H)
    if len(ends) < 2:
        x0, y0, x1, y1 = 0, 0, W, H
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if x1 <= x0 or y1 <= y0:
        x0 = y0 = x1 = y1 = 0
    h, w = y1 - y0, x1 - x0
    vv, uu = np.mgrid[y0:y1, x0:x1]
    rays = pixel_rays(np.stack([uu.ravel(), vv.ravel()], 1), K)
    img = img_full[y0:y1, x0:x1].reshape(-1, 3)
    depth = depth_full[y0:y1, x0:x1].reshape(-1).copy()
    tip = torch.tensor(T[:3, 3], dtype=torch.float32)
    axis = torch.tensor(T[:3, 2], dtype=torch.float32)
    with torch.no_grad():
        for part in model.parts:
            sil, dep, _ = render_frustum(rays, tip, axis, part.z0, part.z1, L, r0, r1,
                                         float(K[0, 0]), sigma_px=0.3)
            a = sil.numpy()[:, None]
            img = img * (1 - a) + a * np.asarray(part.rgb, np.float32) * 255
            hit = (sil.numpy() > 0.5) & (dep.numpy() < depth)
            depth[hit] = dep.numpy()[hit]
    img_full[y0:y1, x0:x1] = img.reshape(h, w, 3)
    depth_full[y0:y1, x0:x1] = depth.reshape(h, w)
    img, depth = img_full, depth_full
    if occluder is not None:
        y0, y1, x0, x1 = occluder
        img[y0:y1, x0:x1] = (150, 150, 160)
        depth[y0:y1, x0:x1] = occluder_depth
    if noise > 0:
        img = img + rng.normal(0, noise, img.shape)
    if depth_noise > 0:
        depth = depth + rng.normal(0, depth_noise, depth.shape).astype(np.float32)
    depth[~np.isfinite(depth)] = 0.0
    return np.clip(img + 0.5, 0, 255).astype(np.uint8), depth.astype(np.float32)
