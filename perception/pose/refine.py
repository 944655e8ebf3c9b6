"""Render-and-compare refinement of the cue's 5-DoF pose (Diff-DOPE style, on a CPU).

The parameters are the tip position (3) and the axis direction (3, normalised when used): the
roll about the axis is left out because nothing in an image of a solid of revolution can fix it.
Each Adam step renders the shaft's silhouette (and depth) over a band of pixels around it and
compares with the segmentation mask (and the depth image):

    loss = sum (silhouette - mask)^2 / |mask|  +  w_depth * mean huber(depth_r - depth_o)

Edges start soft (``sigma_start`` pixels) and sharpen to ``sigma_end``, so a pose a few pixels off
still feels a gradient and the final one is pixel-accurate. With depth, pixels where something
stands in front of the rendered cue (an arm, a hand) are left out of the silhouette term: the
mask is missing there because the cue is hidden, not because it is elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from perception.pose.render import pixel_rays, render_frustum


@dataclass
class RefineConfig:
    iters: int = 40  # a few dozen Adam steps from a geometric initial pose
    lr_tip: float = 2e-3  # m per step at the start; cosine-decayed to 5% (Adam steps ~ lr)
    lr_axis: float = 4e-3  # rad-ish per step for the unnormalised axis vector
    sigma_start: float = 2.0  # px: soft edges first, so a few pixels of error still pull
    sigma_end: float = 0.5  # px: sharp at the end
    band_px: float = 10.0  # px each side of the cue's projection that are rendered
    max_pixels: int = 20000  # cap on rendered pixels (speed); the band is subsampled beyond it
    w_depth: float = 1.0  # weight of the depth term against the silhouette term
    depth_delta: float = 0.01  # m: Huber transition; depth noise and edge pixels stay bounded
    occluder_margin: float = 0.01  # m in front of the rendered cue = something occludes it
    threads: int = 1  # torch threads: a few thousand pixels are too few to share; on a busy
    # machine, threads waiting for each other at every tiny op cost 10x (measured)


def _project(K: np.ndarray, P: np.ndarray) -> np.ndarray:
    q = P @ K.T
    return q[:, :2] / q[:, 2:3]


def band_pixels(K: np.ndarray, tip: np.ndarray, axis: np.ndarray, z0: float, z1: float,
                size: tuple[int, int], band_px: float, max_pixels: int) -> np.ndarray:
    """Integer pixels ``[N, 2]`` (u, v) within ``band_px`` of the projected segment z0..z1."""
    H, W = size
    a = tip + z0 * axis
    b = tip + z1 * axis
    if a[2] <= 1e-3 or b[2] <= 1e-3:
        return np.zeros((0, 2), np.int64)
    pa, pb = _project(K, np.stack([a, b]))
    length = float(np.linalg.norm(pb - pa))
    n_along = max(int(length) + 2 * int(band_px), 2)
    d = (pb - pa) / max(length, 1e-6)
    n = np.array([-d[1], d[0]])
    t = np.linspace(-band_px, length + band_px, n_along)
    o = np.arange(-band_px, band_px + 1)
    stride = max(1, int(np.ceil(len(t) * len(o) / max_pixels)))
    t = t[::stride]
    pts = pa + t[:, None, None] * d + o[None, :, None] * n
    pts = np.rint(pts.reshape(-1, 2)).astype(np.int64)
    ok = (pts[:, 0] >= 0) & (pts[:, 0] < W) & (pts[:, 1] >= 0) & (pts[:, 1] < H)
    lin = np.unique(pts[ok, 1] * W + pts[ok, 0])
    return np.stack([lin % W, lin // W], 1)


@dataclass
class RefineResult:
    tip: np.ndarray
    axis: np.ndarray
    loss: float
    iou: float  # silhouette IoU over the band at the final pose: a cheap health check


def refine_cue(tip: np.ndarray, axis: np.ndarray, mask: np.ndarray, K: np.ndarray, model,
               depth: np.ndarray | None = None, cfg: RefineConfig | None = None,
               part_name: str = "shaft", alpha: np.ndarray | None = None) -> RefineResult:
    """Refine (tip, axis) so the rendered part ``part_name`` matches ``mask`` (and ``depth``).

    ``alpha`` (sub-pixel coverage, :func:`perception.pose.segment.coverage`) replaces the hard
    mask as the silhouette target when given: a thin cue is only a few pixels wide, and its
    anti-aliased edge pixels hold half of what there is to know about where it is.
    """
    cfg = cfg or RefineConfig()
    saved = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _refine(tip, axis, mask, K, model, depth, cfg, part_name, alpha)
    finally:
        torch.set_num_threads(saved)


def _refine(tip, axis, mask, K, model, depth, cfg, part_name, alpha) -> RefineResult:
    part = next(p for p in model.parts if p.name == part_name)
    L, r0, r1 = model.dims
    H, W = mask.shape
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    pix = band_pixels(K, np.asarray(tip, float), axis, part.z0, part.z1, (H, W), cfg.band_px,
                      cfg.max_pixels)
    if len(pix) == 0:
        return RefineResult(np.asarray(tip, float), axis, float("inf"), 0.0)
    rays = pixel_rays(pix, K)
    hard = torch.from_numpy(mask[pix[:, 1], pix[:, 0]].astype(np.float32))
    target = hard if alpha is None else torch.from_numpy(alpha[pix[:, 1], pix[:, 0]]
                                                          .astype(np.float32))
    n_mask = target.sum().clamp(min=1.0)
    focal = float(K[0, 0])
    weight = torch.ones(len(pix), dtype=torch.float32)
    d_obs = None
    if depth is not None:
        d_np = depth[pix[:, 1], pix[:, 0]].astype(np.float32)
        d_valid = torch.from_numpy(np.isfinite(d_np) & (d_np > 0))
        d_obs = torch.from_numpy(np.nan_to_num(d_np, nan=0.0, posinf=0.0))
        with torch.no_grad():
            sil0, dep0, _ = render_frustum(rays, torch.tensor(tip, dtype=torch.float32),
                                           torch.tensor(axis, dtype=torch.float32), part.z0, part.z1, L, r0, r1,
                                           focal, cfg.sigma_start)
        occluded = d_valid & (target < 0.05) & (sil0 > 0.2) & (d_obs < dep0 - cfg.occluder_margin)
        weight = weight * (~occluded).float()
        depth_sel = d_valid & (hard > 0.5)

    # The tip moves freely (t) and, separately, along the axis (slide): Adam scales each
    # parameter's step by its own gradient history, and the along-axis gradient (from the few
    # pixels at the shaft's ends) is far weaker than the sideways one (from all of its edges).
    t = torch.tensor(np.asarray(tip, np.float32), requires_grad=True)
    slide = torch.zeros(1, requires_grad=True)
    u = torch.tensor(axis.astype(np.float32), requires_grad=True)
    opt = torch.optim.Adam([{"params": [t, slide], "lr": cfg.lr_tip},
                            {"params": [u], "lr": cfg.lr_axis}])
    base = [cfg.lr_tip, cfg.lr_axis]
    loss_v = float("inf")
    for i in range(cfg.iters):
        frac = i / max(cfg.iters - 1, 1)
        cos = 0.5 * (1 + np.cos(np.pi * frac))
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * (0.05 + 0.95 * cos)
        sigma = cfg.sigma_end + (cfg.sigma_start - cfg.sigma_end) * cos
        tip_now = t + slide * u / u.norm()
        sil, dep, _ = render_frustum(rays, tip_now, u, part.z0, part.z1, L, r0, r1, focal, sigma)
        loss = (weight * (sil - target) ** 2).sum() / n_mask
        if d_obs is not None and bool(depth_sel.any()):
            res = (dep - d_obs)[depth_sel]
            loss = loss + cfg.w_depth * torch.nn.functional.huber_loss(
                res / cfg.depth_delta, torch.zeros_like(res), delta=1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss_v = float(loss.detach())
    with torch.no_grad():
        tip_now = t + slide * u / u.norm()
        sil, _, _ = render_frustum(rays, tip_now, u, part.z0, part.z1, L, r0, r1, focal,
                                   cfg.sigma_end)
        pred = sil > 0.5
        tgt = target > 0.5
        iou = float((pred & tgt).sum()) / max(float((pred | tgt).sum()), 1.0)
    ax = u.detach().numpy()
    return RefineResult(tip_now.numpy().astype(float), ax.astype(float) / np.linalg.norm(ax),
                        loss_v, iou)
